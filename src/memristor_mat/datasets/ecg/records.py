"""WFDB records (MIT-BIH Arrhythmia, or the synthetic ones) cut into beat windows, and the
MIT-BIH download.

Windows hold ``window`` samples ``[s - window // 2, s - window // 2 + window)`` around each
annotation ``s``; windows that do not fit inside the record or that contain samples WFDB marks
invalid are dropped. ``wfdb`` is imported inside the functions that use it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from memristor_mat.datasets.errors import DataError, DatasetUnavailableError
from memristor_mat.datasets.options import ANNOTATION_CHOICES, _check_choice, _check_int

__all__ = ["BEAT_SYMBOLS", "MITBIH_SOURCE", "NORMAL_SYMBOL", "download_mitbih", "read_beat_windows"]

# MIT-BIH beat annotation codes (PhysioNet's annotation table); every other code (rhythm '+',
# noise '~', '|', 'x', '[', ']', '!', '"', ...) marks no heartbeat and yields no window.
BEAT_SYMBOLS = ("N", "L", "R", "B", "A", "a", "J", "S", "V", "r", "F", "e", "j", "n", "E", "/", "f", "Q", "?")
NORMAL_SYMBOL = "N"

MITBIH_SOURCE = "PhysioNet's MIT-BIH Arrhythmia Database (https://physionet.org/content/mitdb/)"
_MITBIH_FOLDER = "mitdb"
_RECORD_EXTENSIONS = (".dat", ".hea", ".atr")


# --------------------------------------------------------------------------- reading records


def read_beat_windows(
    record_path: str | os.PathLike, window: int = 250, *, annotations: str = "beats"
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Cut both leads of WFDB record ``record_path`` (no extension) into beat windows.

    Returns float64 windows (n, 2, window) in mV, WFDB's physical values (float32 would round
    them, and with them which quantised samples lie exactly one delta threshold apart: see
    :mod:`memristor_mat.datasets.ecg.delta`), the n annotation symbols and the n annotation
    samples. ``annotations="beats"`` windows beat annotations only (:data:`BEAT_SYMBOLS`);
    ``"all"`` windows every annotation of the .atr file, as the original did (SPEC §3.1).
    Raises DataError naming the file when one is missing or unreadable.
    """
    _check_choice("annotations", annotations, ANNOTATION_CHOICES)
    signals, symbols, samples, _ = _read_beats(Path(record_path), window, annotations)
    return signals, symbols, samples


def _read_beats(
    record_path: Path, window: int, annotations: str = "beats"
) -> tuple[np.ndarray, list[str], np.ndarray, float]:
    """read_beat_windows plus the record's sampling frequency."""
    _check_window(window)
    signal, fs = _read_two_leads(record_path)
    samples, symbols = _read_annotations(record_path, beats_only=annotations == "beats")
    starts = samples - window // 2
    fits = (starts >= 0) & (starts + window <= len(signal))
    starts, samples, symbols = starts[fits], samples[fits], symbols[fits]
    windows = signal[starts[:, None] + np.arange(window)]  # (n, window, 2)
    # WFDB reads samples stored as "invalid" as NaN; such a window cannot be encoded.
    valid = ~np.isnan(windows).any(axis=(1, 2))
    windows = np.ascontiguousarray(windows[valid].transpose(0, 2, 1), dtype=np.float64)
    return windows, [str(s) for s in symbols[valid]], samples[valid], fs


def _read_two_leads(record_path: Path) -> tuple[np.ndarray, float]:
    """Return the first two signals of the record, (sig_len, 2) float64 in mV, and fs."""
    import wfdb

    header_file = _require_file(record_path, ".hea")
    try:
        header = wfdb.rdheader(str(record_path))
    except Exception as err:  # wfdb reports bad headers with many exception types
        raise DataError(
            f"ECG record {record_path}: header {header_file} is corrupt ({_describe(err)})."
        ) from err
    data_files = [record_path.parent / name for name in dict.fromkeys(header.file_name or [])]
    for data_file in data_files:
        if not data_file.is_file():
            raise DataError(f"ECG record {record_path}: signal file {data_file} is missing.")
    if (header.n_sig or 0) < 2:
        raise DataError(
            f"ECG record {record_path}: {header_file} lists {header.n_sig} signal(s), need 2 leads."
        )
    names = ", ".join(str(f) for f in data_files)
    try:
        record = wfdb.rdrecord(str(record_path), channels=[0, 1], physical=True)
    except Exception as err:  # a truncated .dat surfaces as a ValueError from numpy, among others
        raise DataError(
            f"ECG record {record_path}: signal file(s) {names} are corrupt or truncated ({_describe(err)}); "
            f"replace them."
        ) from err
    signal = record.p_signal
    # A header may omit the length (wfdb then infers it from the file size): check it when given.
    length_ok = header.sig_len is None or (signal is not None and len(signal) == header.sig_len)
    if signal is None or signal.ndim != 2 or signal.shape[1] != 2 or not length_ok:
        shape = None if signal is None else signal.shape
        raise DataError(
            f"ECG record {record_path}: read {shape} samples from {names}, "
            f"header says ({header.sig_len}, 2)."
        )
    units = [str(unit).lower() for unit in record.units]
    if units != ["mv", "mv"]:
        raise DataError(f"ECG record {record_path}: leads are in {record.units}, expected mV.")
    return signal, float(record.fs)


def _read_annotations(record_path: Path, *, beats_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """Return (samples int64, symbols) of the record's annotations: beats only, or all of them."""
    import wfdb

    annotation_file = _require_file(record_path, ".atr")
    try:
        annotation = wfdb.rdann(str(record_path), "atr")
    except Exception as err:  # wfdb reports a bad annotation file with many exception types
        raise DataError(
            f"ECG record {record_path}: annotation file {annotation_file} is corrupt ({_describe(err)})."
        ) from err
    # A WFDB annotation file ends with the end-of-file code 0x0000 (the MIT format); wfdb reads a
    # file cut at an even length without a word, dropping the annotations after the cut
    with open(annotation_file, "rb") as handle:
        handle.seek(max(annotation_file.stat().st_size - 2, 0))
        if handle.read() != b"\x00\x00":
            raise DataError(
                f"ECG record {record_path}: annotation file {annotation_file} is truncated (it lacks the "
                "end-of-file code 0x0000); delete it and fetch the record again."
            )
    samples = np.asarray(annotation.sample, dtype=np.int64)
    symbols = np.asarray(annotation.symbol, dtype=str)
    if not beats_only:
        return samples, symbols
    is_beat = np.isin(symbols, BEAT_SYMBOLS)
    return samples[is_beat], symbols[is_beat]


def _require_file(record_path: Path, extension: str) -> Path:
    path = record_path.parent / (record_path.name + extension)
    if not path.is_file():
        raise DataError(f"ECG record {record_path}: file {path} is missing.")
    return path


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__

# --------------------------------------------------------------------------- MIT-BIH download


def download_mitbih(raw_dir: str | os.PathLike, records: Sequence[int]) -> list[Path]:
    """Fetch the MIT-BIH records that are not complete on disk into ``<raw_dir>/mitdb/``.

    Returns the record paths (no extension). Raises DatasetUnavailableError when the download
    fails, e.g. without network access.
    """
    import wfdb

    folder = Path(raw_dir) / _MITBIH_FOLDER
    names = _record_names(records)
    missing = _missing_record_files(folder, names)
    if missing:
        wanted = sorted({path.stem for path in missing})
        folder.mkdir(parents=True, exist_ok=True)
        # Download beside the target and move complete files in, so an interrupted download
        # never leaves a truncated file that looks like a record.
        with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as scratch:
            try:
                wfdb.dl_database(_MITBIH_FOLDER, dl_dir=scratch, records=wanted, annotators=["atr"])
            except Exception as err:  # wfdb and requests fail in many ways; all mean "not fetched"
                raise DatasetUnavailableError(_mitbih_unavailable_message(folder, missing, err)) from err
            for name in wanted:
                for extension in _RECORD_EXTENSIONS:
                    fetched = Path(scratch) / (name + extension)
                    if fetched.is_file():
                        os.replace(fetched, folder / fetched.name)
        still_missing = _missing_record_files(folder, names)
        if still_missing:
            raise DatasetUnavailableError(
                _mitbih_unavailable_message(folder, still_missing, "the download did not provide them")
            )
    return [folder / name for name in names]


def _record_names(records: Sequence[int]) -> list[str]:
    if isinstance(records, (str, bytes)) or not isinstance(records, Sequence) or len(records) == 0:
        raise ValueError(f"records must be a non-empty list of MIT-BIH record numbers, got {records!r}")
    for record in records:
        _check_int("record number", record, minimum=0)
    if len(set(records)) != len(records):
        raise ValueError(f"records must not repeat a record, got {list(records)}")
    return [str(record) for record in records]


def _missing_record_files(folder: Path, names: Sequence[str]) -> list[Path]:
    paths = [folder / (name + extension) for name in names for extension in _RECORD_EXTENSIONS]
    return [path for path in paths if not path.is_file()]


def _mitbih_unavailable_message(folder: Path, missing: Sequence[Path], cause: object) -> str:
    return (
        f"MIT-BIH records could not be downloaded into {folder} ({cause}). Missing files: "
        f"{', '.join(path.name for path in missing)}. Without network access, download them from "
        f"{MITBIH_SOURCE} and place them as {', '.join(str(path) for path in missing)}, then rerun; "
        f"or use the embedded dataset 'ecg_synthetic'."
    )


# --------------------------------------------------------------------------- checks


def _check_window(window: int) -> None:
    _check_int("window", window, minimum=2)

