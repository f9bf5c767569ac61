"""Choice of compute device and of reproducible seeds."""

from __future__ import annotations

import zlib

import numpy as np
import torch


def select_device(preference: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit choice must be available."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference not in ("cpu", "cuda", "mps") and not preference.startswith("cuda:"):
        raise ValueError(f"unknown device {preference!r}; expected auto, cpu, cuda, cuda:N or mps")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {preference!r} was requested but CUDA is not available here")
    if preference == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was requested but MPS is not available here")
    return torch.device(preference)


def derive_seed(*key: int | str) -> int:
    """A 63-bit seed from a key such as (seed, "noise", epoch): independent streams per purpose."""
    words = [zlib.crc32(part.encode()) if isinstance(part, str) else int(part) for part in key]
    return int(np.random.SeedSequence(words).generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> 1)


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)
