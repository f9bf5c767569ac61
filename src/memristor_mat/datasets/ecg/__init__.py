"""ECG heartbeats (MIT-BIH Arrhythmia, or synthetic WFDB records) as delta-modulated events.

One code path serves both registered datasets (SPEC §3, ECG)::

    WFDB record(s) -> read_beat_windows -> split_windows -> delta_thresholds(train) -> delta_modulate

* ``mitbih``: PhysioNet's MIT-BIH Arrhythmia Database, record 208 by default, read from
  ``<raw_dir>/mitdb/`` and downloaded there with ``wfdb`` when files are missing.
* ``ecg_synthetic``: the embedded demo. SYNTHETIC two-lead records (ECGSYN via neurokit2, normal
  and premature-ventricular-like beats) written once in the same WFDB format (.hea/.dat/.atr)
  under ``<raw_dir>/ecg_synthetic/``, then read exactly like MIT-BIH.

Windows hold ``window`` samples ``[s - window // 2, s - window // 2 + window)`` around each beat
annotation ``s`` (250 samples = [s - 125, s + 125) at 360 Hz). Label 0 is a normal beat ('N'),
1 any other beat type; non-beat annotations (rhythm '+', noise '~', ...) are dropped, and so
are windows that do not fit inside the record (beats within half a window of either end) or
that contain samples WFDB marks invalid.

Three dataset options select the original study's preprocessing instead (SPEC §3.1); each
default keeps this module's own choices (SPEC §3 "Decisions"):

* ``annotations``: ``"beats"`` (default, as above) or ``"all"``: every annotation of the .atr
  file makes a window, rhythm and noise markers included (label 1, as they are not 'N'), as the
  original did (SPEC §3.1: its 1,519 test windows of record 208 include non-beat annotations).
  Windows that do not fit in the record or hold invalid samples are dropped in both cases.
* ``stratify``: ``True`` (default, stratified by label) or ``False``: the original's plain
  ``train_test_split(test_size=test_fraction, random_state=split_seed)`` (SPEC §3.1).
* ``delta_rule``: ``"grid"`` (default) or ``"original"`` (SPEC §3.1, see
  :func:`~memristor_mat.datasets.ecg.delta.delta_modulate`): the reference starts at -100, an event fires when the sample differs
  from the reference by more than the threshold, and the reference is then set to the sample.

Delta modulation (:mod:`~memristor_mat.datasets.ecg.delta`, whose docstring describes both
rules): thresholds are |P90 - P10| / 10 of each lead over all training windows' samples.

The package's modules: :mod:`~memristor_mat.datasets.ecg.records` reads WFDB records into beat
windows and downloads MIT-BIH; :mod:`~memristor_mat.datasets.ecg.delta` encodes windows as
events; :mod:`~memristor_mat.datasets.ecg.synthetic` writes the synthetic records; this module
splits the windows and builds the two datasets. ``wfdb``, ``neurokit2`` and scikit-learn are
imported inside the functions that use them (neurokit2 alone takes seconds to import).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from memristor_mat.datasets.ecg.delta import delta_modulate, delta_thresholds
from memristor_mat.datasets.ecg.records import (
    _MITBIH_FOLDER,
    _RECORD_EXTENSIONS,
    BEAT_SYMBOLS,
    MITBIH_SOURCE,
    NORMAL_SYMBOL,
    _check_window,
    _mitbih_unavailable_message,
    _missing_record_files,
    _read_beats,
    _record_names,
    download_mitbih,
    read_beat_windows,
)
from memristor_mat.datasets.ecg.synthetic import write_synthetic_records
from memristor_mat.datasets.errors import DataError, DatasetUnavailableError
from memristor_mat.datasets.options import (
    ANNOTATION_CHOICES,
    DELTA_RULES,
    ECG_SYNTHETIC_OPTIONS,
    MITBIH_OPTIONS,
    _check_choice,
    _check_int,
    _check_test_fraction,
)
from memristor_mat.datasets.raw import synthetic_setting
from memristor_mat.datasets.splits import SplitArrays

__all__ = [
    "ANNOTATION_CHOICES",
    "BEAT_SYMBOLS",
    "DELTA_RULES",
    "ECG_SYNTHETIC_OPTIONS",
    "MITBIH_OPTIONS",
    "MITBIH_SOURCE",
    "NORMAL_SYMBOL",
    "build_ecg_synthetic",
    "build_mitbih",
    "delta_modulate",
    "delta_thresholds",
    "download_mitbih",
    "ecg_windows",
    "fetch_ecg_synthetic",
    "fetch_mitbih",
    "read_beat_windows",
    "split_windows",
    "write_synthetic_records",
]


# --------------------------------------------------------------------------- split


def split_windows(
    labels: np.ndarray, *, test_fraction: float = 0.5, split_seed: int = 42, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of window indices: (train indices, test indices), sklearn's order.

    ``stratify=True`` (default) keeps the label proportions in both parts; ``stratify=False``
    is the original's plain ``train_test_split(test_size=test_fraction,
    random_state=split_seed)`` (SPEC §3.1), which depends only on the number of windows.
    """
    from sklearn.model_selection import train_test_split

    _check_test_fraction(test_fraction)
    _check_int("split_seed", split_seed, minimum=0)
    _check_choice("stratify", stratify, (True, False))
    labels = np.asarray(labels)
    try:
        # Split indices, not arrays, so the split depends only on labels, fraction and seed.
        train_idx, test_idx = train_test_split(
            np.arange(len(labels)), test_size=test_fraction, stratify=labels if stratify else None,
            random_state=split_seed,
        )
    except ValueError as err:  # e.g. a class with a single window cannot be stratified
        classes, counts = np.unique(labels, return_counts=True)
        per_class = ", ".join(f"{c}: {k}" for c, k in zip(classes.tolist(), counts.tolist()))
        raise DataError(
            f"cannot split {len(labels)} windows (per label {per_class or 'none'}) "
            f"{'stratified' if stratify else 'unstratified'} with test_fraction {test_fraction}: {err}"
        ) from err
    return train_idx, test_idx

# --------------------------------------------------------------------------- datasets


def ecg_windows(
    name: str,
    raw_dir: str | os.PathLike,
    *,
    window: int = 250,
    test_fraction: float = 0.5,
    split_seed: int = 42,
    stratify: bool = True,
    annotations: str = "beats",
    delta_rule: str = "grid",
    **source_options: Any,
) -> dict[str, Any]:
    """Raw (un-encoded) split windows of ECG dataset ``name`` ('mitbih' or 'ecg_synthetic').

    ``stratify``, ``annotations`` and ``delta_rule`` select this project's preprocessing (the
    defaults) or the original study's (``False``, ``"all"``, ``"original"``; SPEC §3.1; see the
    module docstring). ``source_options`` are the dataset's record options (mitbih: records,
    download; ecg_synthetic: n_records, beats_per_record, abnormal_fraction, generator_seed).
    Returns a dict with ``name``, ``description``, ``fs``, ``thresholds`` (per lead, from the
    training split), ``delta_rule`` (what :func:`delta_modulate` is to use) and, for part in
    train/test: ``{part}_signals`` (n, 2, window) float64 mV, ``y_{part}`` int64,
    ``{part}_symbols``, ``{part}_records`` and ``{part}_samples`` (where each window's
    annotation lies).
    """
    if name not in _RECORD_SOURCES:
        raise ValueError(f"unknown ECG dataset {name!r}; known: {', '.join(sorted(_RECORD_SOURCES))}")
    _check_window(window)
    _check_test_fraction(test_fraction)
    _check_int("split_seed", split_seed, minimum=0)
    _check_choice("stratify", stratify, (True, False))
    _check_choice("annotations", annotations, ANNOTATION_CHOICES)
    _check_choice("delta_rule", delta_rule, DELTA_RULES)
    record_paths, source = _RECORD_SOURCES[name](Path(raw_dir), **source_options)
    signals, symbols, samples, records, fs = _read_records(record_paths, window, annotations)
    labels = (symbols != NORMAL_SYMBOL).astype(np.int64)
    train_idx, test_idx = split_windows(
        labels, test_fraction=test_fraction, split_seed=split_seed, stratify=stratify
    )
    thresholds = delta_thresholds(signals[train_idx])
    windows: dict[str, Any] = {"name": name, "fs": fs, "thresholds": thresholds, "delta_rule": delta_rule}
    for part, idx in (("train", train_idx), ("test", test_idx)):
        windows[f"{part}_signals"] = signals[idx]
        windows[f"y_{part}"] = labels[idx]
        windows[f"{part}_symbols"] = symbols[idx]
        windows[f"{part}_records"] = records[idx]
        windows[f"{part}_samples"] = samples[idx]
    windows["description"] = _describe_windows(
        source, windows, window, test_fraction, split_seed, stratify=stratify, annotations=annotations
    )
    return windows


def _read_records(
    record_paths: Sequence[Path], window: int, annotations: str = "beats"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Windows of all records, concatenated: (signals, symbols, samples, record names, fs)."""
    parts = [_read_beats(path, window, annotations) for path in record_paths]
    listed = ", ".join(map(str, record_paths))
    rates = {fs for *_, fs in parts}
    if len(rates) != 1:  # windows of different sampling rates would not describe the same time span
        raise DataError(f"ECG records {listed} have different sampling rates {sorted(rates)}.")
    signals = np.concatenate([signals for signals, *_ in parts])
    symbols = np.concatenate([np.asarray(symbols, dtype=str) for _, symbols, *_ in parts])
    samples = np.concatenate([samples for _, _, samples, _ in parts])
    records = np.concatenate([np.full(len(part[1]), path.name) for path, part in zip(record_paths, parts)])
    if len(signals) == 0:
        what = "beat" if annotations == "beats" else "annotation"
        raise DataError(f"ECG records {listed} hold no {what} that fits a {window}-sample window.")
    return signals, symbols, samples, records, rates.pop()


def _describe_windows(
    source: str,
    windows: dict[str, Any],
    window: int,
    test_fraction: float,
    split_seed: int,
    *,
    stratify: bool = True,
    annotations: str = "beats",
) -> str:
    """One-line description; with the default options it is the same text as before the
    options existed, so that prepared data of existing configs stays byte-identical."""
    y_all = np.concatenate([windows["y_train"], windows["y_test"]])
    thresholds = ", ".join(f"{t:.4g}" for t in windows["thresholds"])
    if annotations == "beats":
        windowing = (
            f"{len(y_all):,} beat windows of {window} samples at {windows['fs']:g} Hz around each beat "
            f"annotation (non-beat annotations and beats within {window // 2} samples of a record end "
            f"dropped), {int((y_all == 0).sum()):,} normal 'N' (label 0) / {int((y_all == 1).sum()):,} "
            f"other beats (label 1)"
        )
    else:
        windowing = (
            f"{len(y_all):,} annotation windows of {window} samples at {windows['fs']:g} Hz around every "
            f"annotation, beat and non-beat alike as in the original (annotations within {window // 2} "
            f"samples of a record end dropped), {int((y_all == 0).sum()):,} normal 'N' (label 0) / "
            f"{int((y_all == 1).sum()):,} other annotations (label 1)"
        )
    split = "stratified" if stratify else "unstratified"
    if windows["delta_rule"] == "original":
        modulation = (
            "delta modulation by the original rule (reference starts at -100 and is set to the sample "
            "at each event) to 4 channels"
        )
    else:
        modulation = "delta modulation to 4 channels"
    return (
        f"{source}: {windowing}; {split} split {len(windows['y_train']):,} train / "
        f"{len(windows['y_test']):,} test (test_fraction {test_fraction}, seed {split_seed}); {modulation} "
        f"(lead 1 UP/DN, lead 2 UP/DN) with per-lead thresholds |P90 - P10| / 10 = {thresholds} mV "
        f"from the training split"
    )


def _mitbih_records(
    raw_dir: Path, *, records: Sequence[int] = (208,), download: bool = True
) -> tuple[list[Path], str]:
    folder = raw_dir / _MITBIH_FOLDER
    names = _record_names(records)
    if download:
        paths = download_mitbih(raw_dir, records)
    else:
        missing = _missing_record_files(folder, names)
        if missing:
            raise DatasetUnavailableError(_mitbih_unavailable_message(folder, missing, "download=False"))
        paths = [folder / name for name in names]
    return paths, f"MIT-BIH Arrhythmia Database record(s) {', '.join(names)} (both leads) from {folder}"


def _synthetic_records(
    raw_dir: Path,
    *,
    n_records: int = 1,
    beats_per_record: int = 1200,
    abnormal_fraction: float = 0.25,
    generator_seed: int = 0,
) -> tuple[list[Path], str]:
    _check_int("n_records", n_records, minimum=1)
    folder = raw_dir / "ecg_synthetic" / synthetic_setting(generator_seed, beats_per_record, abnormal_fraction)
    paths = [folder / f"synthetic_{index:03d}" for index in range(n_records)]
    names = [path.name for path in paths]
    if _missing_record_files(folder, names):
        paths = write_synthetic_records(
            folder, n_records=n_records, beats_per_record=beats_per_record,
            abnormal_fraction=abnormal_fraction, seed=generator_seed,
        )
    source = (
        f"SYNTHETIC ECG (ECGSYN via neurokit2, not patient data): {n_records} generated record(s) of "
        f"{beats_per_record} beats, {abnormal_fraction:.0%} premature-ventricular-like, generator seed "
        f"{generator_seed}, in {folder}"
    )
    return paths, source


def _event_splits(windows: dict[str, Any]) -> SplitArrays:
    """Delta-modulate the split windows into SplitArrays of (n, T, 4) events."""
    encoded = {
        part: delta_modulate(windows[f"{part}_signals"], windows["thresholds"], rule=windows["delta_rule"])
        for part in ("train", "test")
    }
    return SplitArrays(
        name=windows["name"],
        x_train=encoded["train"],
        y_train=windows["y_train"],
        x_test=encoded["test"],
        y_test=windows["y_test"],
        num_classes=2,
        description=windows["description"],
    )


# The option schemas of the two builders, MITBIH_OPTIONS and ECG_SYNTHETIC_OPTIONS, are in
# memristor_mat.datasets.options (torch-free, read when a config is loaded); re-exported here.


def build_mitbih(
    raw_dir: Path,
    *,
    records: Sequence[int] = (208,),
    window: int = 250,
    test_fraction: float = 0.5,
    split_seed: int = 42,
    download: bool = True,
    stratify: bool = True,
    annotations: str = "beats",
    delta_rule: str = "grid",
) -> SplitArrays:
    """MIT-BIH Arrhythmia beats (record 208 by default) as (n, window, 4) delta-modulated events.

    ``stratify=False, annotations="all", delta_rule="original"`` is the original study's
    preprocessing (SPEC §3.1); the defaults are this project's (module docstring).
    """
    return _event_splits(ecg_windows(
        "mitbih", raw_dir, records=records, download=download,
        window=window, test_fraction=test_fraction, split_seed=split_seed,
        stratify=stratify, annotations=annotations, delta_rule=delta_rule,
    ))


def build_ecg_synthetic(
    raw_dir: Path,
    *,
    n_records: int = 1,
    beats_per_record: int = 1200,
    abnormal_fraction: float = 0.25,
    generator_seed: int = 0,
    window: int = 250,
    test_fraction: float = 0.5,
    split_seed: int = 42,
    stratify: bool = True,
    annotations: str = "beats",
    delta_rule: str = "grid",
) -> SplitArrays:
    """The embedded demo: SYNTHETIC ECGSYN records, loaded exactly like MIT-BIH (same options)."""
    return _event_splits(ecg_windows(
        "ecg_synthetic", raw_dir, n_records=n_records, beats_per_record=beats_per_record,
        abnormal_fraction=abnormal_fraction, generator_seed=generator_seed,
        window=window, test_fraction=test_fraction, split_seed=split_seed,
        stratify=stratify, annotations=annotations, delta_rule=delta_rule,
    ))


def _record_files(paths: Sequence[Path]) -> list[Path]:
    return [path.with_name(path.name + extension) for path in paths for extension in _RECORD_EXTENSIONS]


def fetch_mitbih(raw_dir: Path, *, records: Sequence[int] = (208,), download: bool = True) -> list[Path]:
    """The MIT-BIH records' files (.dat, .hea, .atr) in ``<raw_dir>/mitdb/``, downloaded where
    missing (the workflow's ``fetch_raw_data``); without ``download``, checked."""
    return _record_files(_mitbih_records(Path(raw_dir), records=records, download=download)[0])


def fetch_ecg_synthetic(
    raw_dir: Path,
    *,
    n_records: int = 1,
    beats_per_record: int = 1200,
    abnormal_fraction: float = 0.25,
    generator_seed: int = 0,
) -> list[Path]:
    """The synthetic records' files, generated where missing (the workflow's ``fetch_raw_data``)."""
    paths, _ = _synthetic_records(Path(raw_dir), n_records=n_records, beats_per_record=beats_per_record,
                                  abnormal_fraction=abnormal_fraction, generator_seed=generator_seed)
    return _record_files(paths)


_RECORD_SOURCES = {"mitbih": _mitbih_records, "ecg_synthetic": _synthetic_records}
