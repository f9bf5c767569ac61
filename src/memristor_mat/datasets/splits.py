"""A train/test split of a dataset and its file format: one ``.npz``.

Two views of one split: :class:`SplitArrays` (numpy arrays) is what the dataset builders make and
what :func:`save_prepared` writes; :class:`DatasetSplits` (torch tensors over the same memory) is
what training and evaluation read (:func:`load_prepared`). The builders and the file need no torch,
so a job that only prepares an embedded or synthetic dataset does not import it (about 2 s a
process).

Images stay raw pixels scaled to [0, 1] (float32, N x C x H x W): the study feeds the
network unnormalised intensities, so no mean/std normalisation happens here. Event sequences
are float32 N x T x channels. A prepared dataset is written once by the prepare rule
(:func:`save_prepared`) and read by every job (:func:`load_prepared`), which checks it is
complete and consistent.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from memristor_mat.datasets.errors import DataError
from memristor_mat.io import atomic_path

if TYPE_CHECKING:
    import torch

__all__ = ["DatasetSplits", "SplitArrays", "load_prepared", "save_prepared"]

# Keys of the prepared ``.npz``; bump the version when the layout changes so that stale
# files are rejected with a clear message instead of being misread.
_FORMAT_VERSION = 1
_ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test")
_META_KEYS = ("format_version", "name", "description", "num_classes")


#: the kind of array a split holds: numpy's (SplitArrays) or torch's (DatasetSplits)
Array = TypeVar("Array")


@dataclass(frozen=True)
class _Splits(Generic[Array]):
    """A train/test split of samples (float32 in [0, 1]: images N x C x H x W, or event
    sequences N x T x channels) and int64 labels, checked at construction."""

    name: str
    x_train: Array
    y_train: Array
    x_test: Array
    y_test: Array
    num_classes: int
    description: str

    def __post_init__(self) -> None:
        # Validate once here so every consumer (training, evaluation, load_prepared) can rely
        # on the invariants instead of re-checking them.
        problem = self._problem()
        if problem is not None:
            raise ValueError(f"dataset {self.name!r}: {problem}")

    def _problem(self) -> str | None:
        raise NotImplementedError

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, as a model's first layer needs it: (C, H, W) for images,
        (time steps, channels) for event sequences."""
        return tuple(int(d) for d in self.x_train.shape[1:])


class SplitArrays(_Splits[np.ndarray]):
    """The split as numpy arrays: what the builders make and the ``.npz`` holds (no torch)."""

    def _problem(self) -> str | None:
        return _splits_problem(self, np.ndarray, np.float32, np.int64, "numpy arrays")


class DatasetSplits(_Splits["torch.Tensor"]):
    """The split as torch tensors: what training and evaluation read."""

    def _problem(self) -> str | None:
        import torch

        return _splits_problem(self, torch.Tensor, torch.float32, torch.int64, "torch tensors")

    @classmethod
    def from_arrays(cls, arrays: SplitArrays) -> DatasetSplits:
        """Tensors over ``arrays``' memory (no copy)."""
        import torch

        return cls(name=arrays.name, **{key: torch.from_numpy(getattr(arrays, key)) for key in _ARRAY_KEYS},
                   num_classes=arrays.num_classes, description=arrays.description)


def _splits_problem(splits: _Splits, array_type: type, float32: Any, int64: Any, kind: str) -> str | None:
    """Describe the first broken invariant of ``splits`` (arrays of ``array_type``, samples of dtype
    ``float32``, labels of ``int64``), or return None if it is sound."""
    if isinstance(splits.num_classes, bool) or not isinstance(splits.num_classes, int):
        return f"num_classes must be an int, got {splits.num_classes!r}"
    if splits.num_classes < 2:
        return f"num_classes must be at least 2, got {splits.num_classes}"
    for part in ("train", "test"):
        x, y = getattr(splits, f"x_{part}"), getattr(splits, f"y_{part}")
        if not isinstance(x, array_type) or not isinstance(y, array_type):
            return f"x_{part} and y_{part} must be {kind}"
        if x.dtype != float32 or x.ndim < 2:
            return f"x_{part} must be float32 N x (sample shape), got {x.dtype} {tuple(x.shape)}"
        if y.dtype != int64 or y.ndim != 1:
            return f"y_{part} must be int64 of shape (N,), got {y.dtype} {tuple(y.shape)}"
        if len(x) == 0 or len(x) != len(y):
            return f"x_{part} has {len(x)} images but y_{part} has {len(y)} labels (need equal, > 0)"
        # `not (a >= b)` also catches NaN pixels.
        if not (x.min() >= 0.0 and x.max() <= 1.0):
            return f"x_{part} pixels must lie in [0, 1]"
        if y.min() < 0 or y.max() >= splits.num_classes:
            low, high = int(y.min()), int(y.max())
            return f"y_{part} labels must lie in [0, {splits.num_classes}), got [{low}, {high}]"
    if splits.x_train.shape[1:] != splits.x_test.shape[1:]:
        train_shape, test_shape = tuple(splits.x_train.shape[1:]), tuple(splits.x_test.shape[1:])
        return f"train images {train_shape} and test images {test_shape} differ in shape"
    return None


# --------------------------------------------------------------------------- prepared .npz


def save_prepared(splits: SplitArrays | DatasetSplits, path: str | os.PathLike) -> None:
    """Write ``splits`` to one ``.npz`` (no pickles) atomically at exactly ``path``."""
    arrays = {key: np.asarray(getattr(splits, key)) for key in _ARRAY_KEYS}  # a tensor's memory: no copy
    meta = {
        "format_version": np.array(_FORMAT_VERSION, dtype=np.int64),
        "name": np.array(splits.name),
        "description": np.array(splits.description),
        "num_classes": np.array(splits.num_classes, dtype=np.int64),
    }
    # An open handle stops np.savez from appending ".npz" to the temporary name.
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays, **meta)


def load_prepared(path: str | os.PathLike) -> DatasetSplits:
    """Read a file written by :func:`save_prepared`, checking it is complete and consistent."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"prepared dataset {path} is a directory; give the .npz file the prepare rule wrote")
    if not path.is_file():
        raise DataError(
            f"prepared dataset {path} does not exist; run the prepare rule "
            f"(prepare_dataset + save_prepared) first."
        )
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError(
                f"prepared dataset {path} is a single .npy array, not an .npz archive; rerun the prepare rule."
            )
        with archive:
            missing = [key for key in _ARRAY_KEYS + _META_KEYS if key not in archive.files]
            if missing:
                keys = ", ".join(missing)
                raise DataError(f"prepared dataset {path} lacks key(s) {keys}; rerun the prepare rule.")
            # Members are read lazily, so corruption inside the zip surfaces here, within the try.
            contents = {key: archive[key] for key in _ARRAY_KEYS + _META_KEYS}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise DataError(
            f"prepared dataset {path} is corrupt or unreadable ({err}); delete it and rerun the prepare rule."
        ) from err
    try:
        return _splits_from_arrays(contents)
    except (ValueError, TypeError) as err:
        raise DataError(f"prepared dataset {path} is inconsistent: {err}; rerun the prepare rule.") from err


def _splits_from_arrays(contents: dict[str, np.ndarray]) -> DatasetSplits:
    """Rebuild DatasetSplits from the archive's arrays; ValueError/TypeError on bad content."""
    for key in _META_KEYS:
        if contents[key].shape != ():
            raise ValueError(f"{key} should be a scalar, got shape {contents[key].shape}")
    if int(contents["format_version"]) != _FORMAT_VERSION:
        version = int(contents["format_version"])
        raise ValueError(f"format version {version}, this code reads version {_FORMAT_VERSION}")
    # DatasetSplits checks dtypes, shapes and label range itself.
    import torch

    return DatasetSplits(
        name=str(contents["name"]),
        x_train=torch.from_numpy(contents["x_train"]),
        y_train=torch.from_numpy(contents["y_train"]),
        x_test=torch.from_numpy(contents["x_test"]),
        y_test=torch.from_numpy(contents["y_test"]),
        num_classes=int(contents["num_classes"]),
        description=str(contents["description"]),
    )
