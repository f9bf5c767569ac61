"""The errors of the dataset builders and of the prepared-data files (no torch: the command
line reports them without importing the builders)."""

from __future__ import annotations

__all__ = ["DataError", "DatasetUnavailableError"]


class DataError(RuntimeError):
    """A dataset file is missing, corrupt or inconsistent."""


class DatasetUnavailableError(DataError):
    """A dataset could not be fetched (typically: no network) and is not on disk either."""
