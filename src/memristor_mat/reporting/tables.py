"""Tables written beside the figures and summaries: full-precision CSV and readable Markdown."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from memristor_mat.io import atomic_path, write_text_atomic

__all__ = ["write_table"]


def _stem_paths(stem_path: str | os.PathLike) -> tuple[Path, Path]:
    # Append, never with_suffix: stems such as "sigma_0.2" contain dots.
    stem = os.fspath(stem_path)
    return Path(stem + ".csv"), Path(stem + ".md")


def write_table(df: pd.DataFrame, stem_path: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``df`` as ``<stem>.csv`` (full precision) and ``<stem>.md`` (Markdown, 2 decimals),
    each atomically; parent directories are created. Returns ``(csv_path, md_path)``."""
    csv_path, md_path = _stem_paths(stem_path)
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False)
    if df.empty:
        markdown = "| " + " | ".join(map(str, df.columns)) + " |\n" if len(df.columns) else ""
        markdown += "\n_(no rows)_\n"
    else:
        markdown = df.to_markdown(index=False, floatfmt=".2f") + "\n"
    write_text_atomic(md_path, markdown)
    return csv_path, md_path
