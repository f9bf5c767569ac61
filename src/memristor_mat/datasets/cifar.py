"""CIFAR-10 and CIFAR-100 (SPEC §3 CIFAR) through torchvision's own dataset classes.

torchvision's part (``torchvision.datasets.CIFAR10`` / ``CIFAR100``, unchanged): downloading the
tarball from the class's ``url``, checking its MD5 (``tgz_md5``) and extracting it into
``<raw_dir>/cifar-10-batches-py/`` or ``<raw_dir>/cifar-100-python/``, checking the MD5 of every
extracted file (``train_list``, ``test_list``, ``meta``), and unpickling the batches (the
original Python 2 pickles, read with ``encoding="latin1"``).

Our part: torchvision reports every missing or damaged file with one generic RuntimeError
("Dataset not found or corrupted"); here that becomes

* :class:`~memristor_mat.datasets.DatasetUnavailableError` when nothing is on disk and nothing could
  be downloaded, with where to place which tarball (name, URL, MD5);
* :class:`~memristor_mat.datasets.DataError` naming each file with a wrong MD5 or missing from the
  folder, or the file that does not unpickle or holds wrong shapes or labels.

Then the conversion to :class:`~memristor_mat.datasets.splits.SplitArrays`: the official split (50,000
train / 10,000 test), pixels uint8 H x W x C -> float32 N x 3 x 32 x 32 in [0, 1] with no
mean/std normalisation (the models normalise their own input), int64 labels (CIFAR-100: the 100
fine labels).

torchvision is imported on first use, not with this module: importing it costs a second.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Any

import numpy as np

from memristor_mat.datasets.errors import DataError, DatasetUnavailableError
from memristor_mat.datasets.splits import SplitArrays

__all__ = ["build_cifar10", "build_cifar100", "fetch_cifar10", "fetch_cifar100"]

_PIXELS_PER_IMAGE = 3 * 32 * 32  # one row of a batch's "data": R plane, G plane, B plane, row-major

# What unpickling and torchvision's vstack/reshape raise on a file that is not a CIFAR batch.
_PARSE_ERRORS = (
    pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, AttributeError, IndexError,
    ImportError, OverflowError,
)


@dataclass(frozen=True)
class _Variant:
    name: str  # registry name and SplitArrays.name
    title: str  # for messages
    num_classes: int
    label_key: str  # the labels torchvision reads from each batch


_CIFAR10 = _Variant("cifar10", "CIFAR-10", 10, "labels")
_CIFAR100 = _Variant("cifar100", "CIFAR-100", 100, "fine_labels")
_VARIANTS = {variant.name: variant for variant in (_CIFAR10, _CIFAR100)}


@functools.lru_cache(maxsize=len(_VARIANTS))
def _checked_cifar_class(name: str) -> type:
    """torchvision's CIFAR10 or CIFAR100 (``name`` "cifar10"/"cifar100"), with download failures
    turned into this module's errors.

    Download, MD5 checks and unpickling stay torchvision's. File names and MD5 sums are read
    from the class attributes at run time, so a test may patch them on the returned class.
    """
    from torchvision.datasets import CIFAR10, CIFAR100

    variant = _VARIANTS[name]
    base = {"cifar10": CIFAR10, "cifar100": CIFAR100}[name]

    class CheckedCIFAR(base):
        def download(self) -> None:
            try:
                super().download()
            # torchvision raises RuntimeError for a download with the wrong MD5; URLError and
            # timeouts are OSErrors; a connection dropped mid-body is an HTTPException.
            except (RuntimeError, OSError, HTTPException) as err:
                raise _not_loadable(type(self), variant, Path(self.root), f"the download failed: {err}") from err

    CheckedCIFAR.__name__ = CheckedCIFAR.__qualname__ = f"Checked{base.__name__}"
    return CheckedCIFAR


# --------------------------------------------------------------------------- diagnosis


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _expected_files(cls: type) -> list[tuple[str, str]]:
    """(file name, MD5) of every file torchvision needs in the extracted folder."""
    listed = [*cls.train_list, *cls.test_list, (cls.meta["filename"], cls.meta["md5"])]
    return [(str(name), str(md5)) for name, md5 in listed]


def _damaged_files(cls: type, folder: Path) -> tuple[list[str], list[str]]:
    """Names of the expected files absent from ``folder``, and descriptions of those whose MD5
    differs from the one torchvision expects."""
    missing, wrong = [], []
    for name, expected in _expected_files(cls):
        path = folder / name
        if not path.is_file():
            missing.append(name)
        else:
            actual = _md5(path)
            if actual != expected:
                wrong.append(f"{name} (MD5 {actual}, expected {expected})")
    return missing, wrong


def _tarball_hint(cls: type, root: Path, download: bool = True) -> str:
    """Where to place the tarball, and what is wrong with the one already there, if any."""
    tarball = root / cls.filename
    placement = (
        f"place {cls.filename} from {cls.url} (MD5 {cls.tgz_md5}), unchanged, as {tarball}: "
        f"on the next run torchvision verifies its MD5 and extracts it into {root / cls.base_folder}{os.sep}"
    )
    if not tarball.is_file():
        return placement + "."
    actual = _md5(tarball)
    if actual != cls.tgz_md5:
        return f"{placement}. The {tarball} there now has MD5 {actual}, not {cls.tgz_md5}: replace it."
    if not download:
        # torchvision extracts only inside download(), so a correct tarball sits unused.
        return f"{placement}. {tarball} is already there and intact: rerun with download enabled to extract it."
    return placement + "."


def _not_loadable(cls: type, variant: _Variant, root: Path, cause: str, download: bool = True) -> DataError:
    """The error for a folder torchvision's integrity check rejects (after any download attempt):
    unavailable when no expected file is on disk, damaged when some are."""
    folder = root / cls.base_folder
    missing, wrong = _damaged_files(cls, folder)
    if len(missing) == len(_expected_files(cls)):
        return DatasetUnavailableError(
            f"{variant.title} is not in {folder} ({cause}). Without network access, "
            f"{_tarball_hint(cls, root, download)} The embedded demo (config.yaml) does not need "
            f"{variant.title}: it uses a stand-in dataset."
        )
    problems = [f"{name} is missing" for name in missing] + [f"{name} is damaged" for name in wrong]
    if not problems:  # every file checks out by now: report what torchvision said
        problems = [f"torchvision rejected them ({cause})"]
    return DataError(
        f"{variant.title} files in {folder} are missing or damaged ({cause}): {'; '.join(problems)}. "
        f"{'Delete the damaged files (or the whole folder) and rerun' if wrong else 'Rerun'} to download "
        f"and extract the archive again; or, without network access, {_tarball_hint(cls, root, download)}"
    )


def _file_problem(path: Path, variant: _Variant, label_key: str | None, meta_key: str | None) -> str | None:
    """Why ``path`` is not a CIFAR batch (``label_key`` given) or meta file (``meta_key``), read
    as torchvision reads it; None if it is sound."""
    try:
        with open(path, "rb") as stream:
            entry = pickle.load(stream, encoding="latin1")
    except (*_PARSE_ERRORS, OSError) as err:
        return f"cannot be unpickled ({str(err) or type(err).__name__})"
    if not isinstance(entry, dict):
        return f"holds a {type(entry).__name__}, not a dict"
    if meta_key is not None:
        names = entry.get(meta_key)
        if not isinstance(names, (list, tuple)) or len(names) != variant.num_classes:
            count = len(names) if isinstance(names, (list, tuple)) else "no"
            return f"lists {count} class names under '{meta_key}', expected {variant.num_classes}"
        return None
    data, labels = entry.get("data"), entry.get(label_key)
    rows_ok = isinstance(data, np.ndarray) and data.ndim == 2 and data.shape[1] == _PIXELS_PER_IMAGE
    if not rows_ok or data.dtype != np.uint8:
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        return f"holds 'data' of {found}, expected uint8 N x {_PIXELS_PER_IMAGE}"
    if not isinstance(labels, (list, tuple, np.ndarray)):
        return f"has no '{label_key}' list"
    if len(labels) != len(data):
        return f"holds {len(data)} images but {len(labels)} '{label_key}'"
    return _labels_problem(np.asarray(labels), variant, label_key)


def _labels_problem(labels: np.ndarray, variant: _Variant, label_key: str) -> str | None:
    if len(labels) and labels.dtype.kind not in "iu":
        return f"holds '{label_key}' of type {labels.dtype}, expected integers"
    if len(labels) and (labels.min() < 0 or labels.max() >= variant.num_classes):
        return f"holds '{label_key}' outside 0..{variant.num_classes - 1} ({labels.min()}..{labels.max()})"
    return None


def _unreadable(cls: type, variant: _Variant, folder: Path, train: bool, cause: str) -> DataError:
    """Name the first file of the split (or the meta file) that torchvision could not use."""
    batches = [name for name, _ in (cls.train_list if train else cls.test_list)]
    checks = [(name, variant.label_key, None) for name in batches] + [(cls.meta["filename"], None, cls.meta["key"])]
    for name, label_key, meta_key in checks:
        problem = _file_problem(folder / name, variant, label_key, meta_key)
        if problem is not None:
            return DataError(
                f"{variant.title} file {folder / name} {problem}, although its MD5 matches. Replace it: "
                f"delete it and rerun to extract the archive again ({cause})."
            )
    return DataError(
        f"{variant.title} files {', '.join(str(folder / name) for name in batches)} could not be read "
        f"({cause}). Delete the folder and rerun to extract the archive again."
    )


# --------------------------------------------------------------------------- loading


def _load_cifar_part(variant: _Variant, root: Path, train: bool, download: bool) -> tuple[np.ndarray, np.ndarray]:
    """uint8 N x 3 x 32 x 32 images and int64 labels of one official split."""
    cls = _checked_cifar_class(variant.name)
    folder = root / cls.base_folder
    try:
        dataset: Any = cls(root=root, train=train, download=download)
        # torchvision reshapes whatever the pickles hold; insist on CIFAR's layout and labels.
        images, labels = dataset.data, np.asarray(dataset.targets)
        sound = (
            images.dtype == np.uint8 and labels.shape == (len(images),)
            and _labels_problem(labels, variant, variant.label_key) is None
            and len(dataset.classes) == variant.num_classes
        )
    except DataError:
        raise
    except RuntimeError as err:
        # torchvision's generic "Dataset (metadata file) not found or corrupted"; a RuntimeError
        # with every file intact can only come from reading them.
        missing, wrong = _damaged_files(cls, folder)
        if not (missing or wrong):
            raise _unreadable(cls, variant, folder, train, str(err)) from err
        if download:
            cause = f"still after torchvision's download step: {err}"
        else:
            cause = "download=False, so nothing is downloaded or extracted"
        raise _not_loadable(cls, variant, root, cause, download) from err
    except _PARSE_ERRORS as err:
        raise _unreadable(cls, variant, folder, train, str(err) or type(err).__name__) from err
    if not sound:
        raise _unreadable(cls, variant, folder, train, "wrong shapes or labels")
    pixels = np.ascontiguousarray(images.transpose(0, 3, 1, 2))  # torchvision gives N x H x W x C
    return pixels, labels.astype(np.int64)


def _build_cifar(variant: _Variant, raw_dir: Path, download: bool) -> SplitArrays:
    train_images, train_labels = _load_cifar_part(variant, raw_dir, train=True, download=download)
    test_images, test_labels = _load_cifar_part(variant, raw_dir, train=False, download=download)
    folder = raw_dir / _checked_cifar_class(variant.name).base_folder
    classes = f"{variant.num_classes} fine classes" if variant is _CIFAR100 else f"{variant.num_classes} classes"
    return SplitArrays(
        name=variant.name,
        # Same scaling as every other image dataset: raw intensities in [0, 1], not normalised.
        x_train=train_images.astype(np.float32) / np.float32(255.0),
        y_train=train_labels,
        x_test=test_images.astype(np.float32) / np.float32(255.0),
        y_test=test_labels,
        num_classes=variant.num_classes,
        description=(
            f"{variant.title} via torchvision: {len(train_labels):,} train / {len(test_labels):,} test "
            f"32 x 32 colour images (official split), {classes}, from {folder}"
        ),
    )


def _fetch_cifar(variant: _Variant, raw_dir: Path, download: bool) -> list[Path]:
    """The extracted batch files, downloaded and extracted where missing (the tarball's and every
    file's MD5 checked), then read once as the builder reads them."""
    for train in (True, False):
        _load_cifar_part(variant, raw_dir, train=train, download=download)
    cls = _checked_cifar_class(variant.name)
    return [raw_dir / cls.base_folder / name for name, _ in _expected_files(cls)]


def fetch_cifar10(raw_dir: Path, *, download: bool = True) -> list[Path]:
    """CIFAR-10's files in ``<raw_dir>/cifar-10-batches-py/`` (the workflow's ``fetch_raw_data``)."""
    return _fetch_cifar(_CIFAR10, Path(raw_dir), download)


def fetch_cifar100(raw_dir: Path, *, download: bool = True) -> list[Path]:
    """CIFAR-100's files in ``<raw_dir>/cifar-100-python/`` (the workflow's ``fetch_raw_data``)."""
    return _fetch_cifar(_CIFAR100, Path(raw_dir), download)


def build_cifar10(raw_dir: Path, *, download: bool = True) -> SplitArrays:
    """CIFAR-10 (50,000 train / 10,000 test, 10 classes) read by torchvision from
    ``<raw_dir>/cifar-10-batches-py/``, downloaded there when missing and ``download`` is true."""
    return _build_cifar(_CIFAR10, Path(raw_dir), download)


def build_cifar100(raw_dir: Path, *, download: bool = True) -> SplitArrays:
    """CIFAR-100 (50,000 train / 10,000 test, the 100 fine labels) read by torchvision from
    ``<raw_dir>/cifar-100-python/``, downloaded there when missing and ``download`` is true."""
    return _build_cifar(_CIFAR100, Path(raw_dir), download)
