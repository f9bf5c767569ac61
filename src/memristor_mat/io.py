"""Atomic file writes: a reader never sees a half-written file, a kill never leaves one."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from glob import escape as glob_escape
from pathlib import Path
from typing import Iterator


def check_output_path(path: str | os.PathLike) -> None:
    """Refuse an output path that names a directory (``os.replace`` cannot put a file there): a
    command line checks its outputs before its work, :func:`atomic_path` after it."""
    if Path(path).is_dir():
        raise ValueError(f"{path} is a directory; give the path of the file to write")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds.

    The temporary file lives in the same directory so that ``os.replace`` is atomic. Temporary
    files of earlier writes of the same target are removed first: a writer killed with SIGKILL
    runs no ``finally`` and leaves its temporary file behind (each output of the pipeline has a
    single writer, so they cannot belong to a live one).
    """
    target = Path(path)
    check_output_path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{glob_escape(target.name)}.*.tmp"):
        stale.unlink(missing_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp makes the file private (0600); results are meant to be read by others
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 sum of a file's bytes (hex), read in blocks of 1 MiB."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
