"""Checkpoints that carry their own architecture, written atomically, loaded safely.

A checkpoint is a plain dict of tensors and primitive values, loaded with
``torch.load(..., weights_only=True)``: no pickled code runs at load time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .io import atomic_path
from .models import build_model

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "arch", "arch_options", "state_dict")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model asked for."""


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    missing = [k for k in REQUIRED_KEYS if k not in payload and k != "format_version"]
    if missing:
        raise ValueError(f"checkpoint payload lacks {missing}")
    with atomic_path(path) as tmp:
        torch.save({"format_version": FORMAT_VERSION, **payload}, tmp)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise CheckpointError(
            f"checkpoint {path} is unreadable ({type(error).__name__}: {error}); "
            "it is corrupt or not a checkpoint of this project: delete it and rerun its rule"
        ) from error
    if not isinstance(payload, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(payload).__name__}, not a checkpoint dict")
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks the entries {missing}")
    if not (isinstance(payload["format_version"], int) and payload["format_version"] == FORMAT_VERSION):
        raise CheckpointError(
            f"checkpoint {path} has format version {payload['format_version']}, "
            f"this library reads version {FORMAT_VERSION}"
        )
    return payload


def model_from_checkpoint(payload: dict[str, Any], path: str | os.PathLike = "<checkpoint>") -> nn.Module:
    """Rebuild the model from the checkpoint alone (no run config needed)."""
    try:
        model = build_model(payload["arch"], **payload["arch_options"])
    except (ValueError, TypeError) as error:  # TypeError: arch_options that are no mapping
        raise CheckpointError(f"checkpoint {path}: {error}") from error
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError) as error:  # TypeError: a state_dict that is no mapping
        raise CheckpointError(
            f"checkpoint {path}: weights do not fit architecture {payload['arch']!r} "
            f"{payload['arch_options']}: {error}"
        ) from error
    return model
