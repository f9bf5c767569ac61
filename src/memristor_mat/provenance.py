"""Where a result came from: config hash, library, torch and git versions."""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

from . import __version__


def config_hash(section: Any) -> str:
    """Stable short hash of a config section (key order does not matter)."""
    canonical = json.dumps(section, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


#: what makes a result: the library, the workflow and its environment (not the results themselves)
CODE_PATHS = ("src", "scripts", "rules", "notebooks", "envs", "Snakefile", "pyproject.toml")


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the checkout this library runs from, '+dirty' if it has changes."""
    root = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        # Only code counts: the pipeline rewrites committed results (figures, tables) while it runs.
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
            cwd=top, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def provenance(config_section: Any, *, torch_version: str | None = None) -> dict[str, str]:
    """What made a result. ``torch_version``: the torch that computed it, where that is not this
    process's (aggregation reads it from its shards and imports no torch)."""
    if torch_version is None:
        import torch  # here, not at the top: this module serves torch-free jobs too

        torch_version = str(torch.__version__)
    return {
        "config_hash": config_hash(config_section),
        "library_version": __version__,
        "torch_version": torch_version,
        "python_version": platform.python_version(),
        "git_commit": git_commit(),
    }
