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
* ``delta_rule``: ``"grid"`` (default, below) or ``"original"`` (SPEC §3.1, see
  :func:`delta_modulate`): the reference starts at -100, an event fires when the sample differs
  from the reference by more than the threshold, and the reference is then set to the sample.

Delta modulation, "grid" rule (per lead, per window): the reference starts at the window's first sample;
whenever the signal exceeds reference + threshold the reference is raised by whole thresholds
until it no longer does, and one UP event is emitted (DN symmetrically). So a step that
crosses several thresholds emits ONE event but the reference catches up completely: it never
lags the signal by more than one threshold, and events after a steep QRS edge describe the
signal at that time, not a backlog. This variant is an exact composition of clamps, which is
what makes it computable without a loop over time steps (see :func:`delta_modulate`).
Thresholds are |P90 - P10| / 10 of each lead over all training windows' samples.

``wfdb``, ``neurokit2`` and scikit-learn are imported inside the functions that use them:
``memristor_mat.data`` imports this module for its registry, and every command-line call
imports ``data``; neurokit2 alone takes seconds to import.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

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
    "read_beat_windows",
    "split_windows",
    "write_synthetic_records",
]

# MIT-BIH beat annotation codes (PhysioNet's annotation table); every other code (rhythm '+',
# noise '~', '|', 'x', '[', ']', '!', '"', ...) marks no heartbeat and yields no window.
BEAT_SYMBOLS = ("N", "L", "R", "B", "A", "a", "J", "S", "V", "r", "F", "e", "j", "n", "E", "/", "f", "Q", "?")
NORMAL_SYMBOL = "N"

MITBIH_SOURCE = "PhysioNet's MIT-BIH Arrhythmia Database (https://physionet.org/content/mitdb/)"
_MITBIH_FOLDER = "mitdb"
_RECORD_EXTENSIONS = (".dat", ".hea", ".atr")

# Allowed values of the preprocessing options (the first of each is the default).
DELTA_RULES = ("grid", "original")
ANNOTATION_CHOICES = ("beats", "all")
# The original's delta modulator starts every window's reference here (SPEC §3.1), far below
# any ECG sample in mV, so the first sample of a window fires an UP event.
_ORIGINAL_START_REFERENCE = -100.0

# Levels (signal / threshold) closer than this to a whole number count as exactly on it, so
# float rounding of quantised samples (WFDB's 212 format stores integers) cannot decide an event.
_LEVEL_TOLERANCE = 1e-9


# --------------------------------------------------------------------------- reading records


def read_beat_windows(
    record_path: str | os.PathLike, window: int = 250, *, annotations: str = "beats"
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Cut both leads of WFDB record ``record_path`` (no extension) into beat windows.

    Returns float32 windows (n, 2, window) in mV, the n annotation symbols and the n annotation
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
    windows = np.ascontiguousarray(windows[valid].transpose(0, 2, 1), dtype=np.float32)
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


# --------------------------------------------------------------------------- delta modulation


def delta_thresholds(train_signals: np.ndarray) -> np.ndarray:
    """Per-lead threshold |P90 - P10| / 10 over every sample of the (n, leads, T) training windows.

    Pass training windows only: thresholds computed on test windows would leak test data.
    """
    signals = np.asarray(train_signals, dtype=np.float64)
    if signals.ndim != 3 or signals.shape[0] == 0 or signals.shape[2] == 0:
        raise ValueError(
            f"train_signals must be (windows, leads, time steps) and non-empty, got {signals.shape}"
        )
    per_lead = signals.transpose(1, 0, 2).reshape(signals.shape[1], -1)
    p90, p10 = np.percentile(per_lead, [90, 10], axis=1)  # numpy's 0-100 scale
    thresholds = np.abs(p90 - p10) / 10.0
    if not np.all(np.isfinite(thresholds) & (thresholds > 0)):
        raise DataError(
            f"delta-modulation thresholds {thresholds.tolist()} must be positive and finite: "
            f"a lead is flat or invalid in the training windows."
        )
    return thresholds


def delta_modulate(signals: np.ndarray, thresholds: np.ndarray, *, rule: str = "grid") -> np.ndarray:
    """Encode (n, leads, T) windows as float32 (n, T, 2 * leads) UP/DN events in {0, 1}.

    Channels are (lead 1 UP, lead 1 DN, lead 2 UP, lead 2 DN, ...); events of different leads
    at the same step are all kept. Each lead of each window is encoded on its own.

    ``rule="grid"`` (default; this project's modulator, module docstring): the reference starts
    at the window's first sample, so the first step never carries an event. In units of the
    threshold, with u_t = (x_t - x_0) / threshold and the integer reference level r (r = 0 at
    t = 0), one step of the modulator is ``r_t = clamp(r_{t-1}, ceil(u_t) - 1, floor(u_t) + 1)``
    (raise r while u > r + 1, lower it while u < r - 1), with UP when r rose and DN when it
    fell. A composition of clamps is a clamp, so all r_t follow from a prefix scan in log2(T)
    vectorised steps.

    ``rule="original"`` (the original study's modulator, SPEC §3.1): the reference starts at
    -100 (mV), so the first sample fires an UP event unless it is <= -100 + threshold; at each
    step an UP event fires when sample - reference > threshold, a DN event when
    sample - reference < -threshold, and on either event the reference is SET TO THE SAMPLE
    (not moved by whole thresholds). Whether a step fires depends on the last step that fired,
    so this runs as a loop over time steps, vectorised over windows and leads.

    In both rules a difference within float rounding of exactly one threshold counts as equal
    to it (no event): comparisons are strict, and WFDB's quantised samples can tie exactly.
    """
    _check_choice("rule", rule, DELTA_RULES)
    signals = np.asarray(signals, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if signals.ndim != 3 or signals.shape[2] == 0:
        raise ValueError(f"signals must be (windows, leads, time steps), got {signals.shape}")
    if thresholds.shape != (signals.shape[1],) or not np.all(np.isfinite(thresholds) & (thresholds > 0)):
        raise ValueError(
            f"thresholds must be {signals.shape[1]} positive finite numbers (one per lead), "
            f"got {thresholds.tolist()}"
        )
    if not np.all(np.isfinite(signals)):
        raise ValueError("signals must be finite")
    if rule == "original":
        up, down = _original_events(signals, thresholds)
    else:
        up, down = _grid_events(signals, thresholds)
    events = np.stack([up, down], axis=2)  # (n, leads, UP/DN, T)
    n, leads, _, n_steps = events.shape
    return np.ascontiguousarray(events.reshape(n, 2 * leads, n_steps).transpose(0, 2, 1), dtype=np.float32)


def _grid_events(signals: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(UP, DN) boolean (n, leads, T) of the "grid" rule, by the prefix scan of clamps."""
    levels = (signals - signals[..., :1]) / thresholds[None, :, None]
    nearest = np.rint(levels)
    levels = np.where(np.abs(levels - nearest) < _LEVEL_TOLERANCE, nearest, levels)
    low, high = _prefix_clamps(np.ceil(levels) - 1.0, np.floor(levels) + 1.0)
    reference = np.clip(0.0, low, high)
    steps = np.diff(reference, axis=-1, prepend=0.0)
    return steps > 0, steps < 0


def _original_events(signals: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(UP, DN) boolean (n, leads, T) of the "original" rule (SPEC §3.1): a sequential scan
    over time steps, each step vectorised over all windows and leads."""
    n, leads, n_steps = signals.shape
    reference = np.full((n, leads), _ORIGINAL_START_REFERENCE)
    up = np.zeros((n, leads, n_steps), dtype=bool)
    down = np.zeros((n, leads, n_steps), dtype=bool)
    for t in range(n_steps):
        sample = signals[:, :, t]
        level = (sample - reference) / thresholds[None, :]
        up[:, :, t] = level > 1.0 + _LEVEL_TOLERANCE
        down[:, :, t] = level < -1.0 - _LEVEL_TOLERANCE
        reference = np.where(up[:, :, t] | down[:, :, t], sample, reference)
    return up, down


def _prefix_clamps(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Compose the clamps [low_t, high_t] along the last axis: step t of the result is the
    single clamp equal to applying clamps 0..t in order (Hillis-Steele scan).

    Applying [a1, b1] then [a2, b2] equals the clamp [clamp(a1, a2, b2), clamp(b1, a2, b2)].
    """
    low, high = low.copy(), high.copy()
    shift = 1
    while shift < low.shape[-1]:
        later_low, later_high = low[..., shift:], high[..., shift:]
        # Both right-hand sides are new arrays computed from the old values before assignment.
        low[..., shift:], high[..., shift:] = (
            np.clip(low[..., :-shift], later_low, later_high),
            np.clip(high[..., :-shift], later_low, later_high),
        )
        shift *= 2
    return low, high


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


# --------------------------------------------------------------------------- synthetic records

# ECGSYN morphology: angles (degrees), z-amplitudes and Gaussian widths of the P, Q, R, S, T
# waves. Normal beats keep neurokit2's defaults; the premature-ventricular-like beats have no P
# wave, wider Q/R/S waves and an inverted T wave.
_PVC_MORPHOLOGY = {
    "ti": (-70.0, -20.0, 0.0, 20.0, 100.0),
    "ai": (0.0, -5.0, 20.0, -7.5, -1.5),
    "bi": (0.25, 0.18, 0.2, 0.18, 0.4),
}
_HEART_RATE = 80.0  # beats per minute
_HEART_RATE_STD = 2.0
# ECGSYN always integrates a power-of-two number of seconds; 64 s chunks waste none of it.
_CHUNK_SECONDS = 64
# Beats are cut at 60% of each RR interval: after the T wave and before the next P wave.
_CUT_FRACTION = 0.6
# A premature beat loses up to this fraction of its (P-free) baseline before the QRS.
_MAX_PREMATURITY = 0.15
_SYNTHETIC_LEADS = ("MLII", "V1")


def write_synthetic_records(
    out_dir: str | os.PathLike,
    *,
    n_records: int = 1,
    beats_per_record: int = 1200,
    abnormal_fraction: float = 0.25,
    seed: int = 0,
    fs: int = 360,
) -> list[Path]:
    """Write SYNTHETIC two-lead WFDB records (.hea/.dat/.atr) and return their paths.

    Each record holds ``beats_per_record`` beats in random order, ``abnormal_fraction`` of them
    premature-ventricular-like ('V'), the rest normal ('N'), each annotated at its R peak,
    after a rhythm annotation '+' "(N" at sample 0. Identical files for identical arguments;
    record i depends only on (seed, i).
    """
    _check_int("n_records", n_records, minimum=1)
    _check_int("beats_per_record", beats_per_record, minimum=2)
    _check_int("seed", seed, minimum=0)
    _check_int("fs", fs, minimum=1)
    if isinstance(abnormal_fraction, bool) or not (
        isinstance(abnormal_fraction, (int, float)) and 0.0 <= abnormal_fraction <= 1.0
    ):
        raise ValueError(f"abnormal_fraction must be a number in [0, 1], got {abnormal_fraction!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(n_records):
        name = f"synthetic_{index:03d}"
        signal, beat_samples, symbols = _synthetic_record(
            np.random.SeedSequence([seed, index]), beats_per_record, abnormal_fraction, fs
        )
        _write_record_atomically(out_dir, name, signal, beat_samples, symbols, fs, seed)
        paths.append(out_dir / name)
    return paths


def _synthetic_record(
    seed_sequence: np.random.SeedSequence, n_beats: int, abnormal_fraction: float, fs: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Return (signal (n, 2) mV, R-peak samples, symbols) of one synthetic record."""
    order_seed, normal_seed, abnormal_seed, variation_seed, noise_seed = seed_sequence.spawn(5)
    n_abnormal = int(round(abnormal_fraction * n_beats))
    is_abnormal = np.random.default_rng(order_seed).permutation(np.arange(n_beats) < n_abnormal)
    beats = {
        False: iter(_simulated_beats(n_beats - n_abnormal, {}, normal_seed, fs)),
        True: iter(_simulated_beats(n_abnormal, _PVC_MORPHOLOGY, abnormal_seed, fs)),
    }
    variation = np.random.default_rng(variation_seed)
    pieces, beat_samples, position = [], [], 0
    for abnormal in is_abnormal.tolist():
        beat, r_offset = next(beats[abnormal])
        if abnormal:  # premature: shorten the P-free stretch before the QRS
            trim = int(variation.uniform(0.0, _MAX_PREMATURITY) * len(beat))
            beat, r_offset = beat[trim:], r_offset - trim
        # Remove the ramp between the beat's ends so that consecutive beats join continuously.
        beat = (beat - np.linspace(beat[0], beat[-1], len(beat))) * variation.normal(1.0, 0.05)
        pieces.append(beat)
        beat_samples.append(position + r_offset)
        position += len(beat)
    lead_one = np.concatenate(pieces)
    signal = _two_leads(lead_one, fs, np.random.default_rng(noise_seed))
    return signal, np.asarray(beat_samples, dtype=np.int64), ["V" if a else "N" for a in is_abnormal]


def _simulated_beats(
    count: int, morphology: dict[str, Any], seed: np.random.SeedSequence, fs: int
) -> list[tuple[np.ndarray, int]]:
    """Simulate ``count`` single beats (samples from cut to cut, R-peak offset) with ECGSYN."""
    import neurokit2
    from scipy.signal import find_peaks

    beats: list[tuple[np.ndarray, int]] = []
    chunk_seeds = np.random.default_rng(seed)
    min_distance = int(0.5 * fs * 60.0 / _HEART_RATE)
    while len(beats) < count:
        lead = neurokit2.ecg_simulate(
            duration=_CHUNK_SECONDS, sampling_rate=fs, noise=0, heart_rate=_HEART_RATE,
            heart_rate_std=_HEART_RATE_STD, method="ecgsyn",
            random_state=int(chunk_seeds.integers(2**32)), **morphology,
        )
        # ECGSYN scales every chunk to [-0.4, 1.2] mV with the R wave on top for both kinds.
        peaks, _ = find_peaks(lead, distance=min_distance, height=0.5)
        peaks = peaks[2:]  # the first beats carry ECGSYN's start-up transient
        cuts = peaks[:-1] + np.round(_CUT_FRACTION * np.diff(peaks)).astype(int)
        if len(cuts) < 2:  # would loop forever: ECGSYN gave no separable beats at this rate
            raise DataError(f"ECGSYN produced no separable beats at {fs} Hz; use a rate such as 360 Hz.")
        for k in range(1, len(cuts)):
            beats.append((lead[cuts[k - 1]:cuts[k]], int(peaks[k] - cuts[k - 1])))
    return beats[:count]


def _two_leads(lead_one: np.ndarray, fs: int, rng: np.random.Generator) -> np.ndarray:
    """Lead 1 plus a differently weighted and filtered lead 2, each with its own baseline
    wander and noise, so that the two leads carry different (not redundant) information."""
    from scipy.ndimage import uniform_filter1d

    # V1-like: mostly inverted, with the fast QRS content emphasised.
    high_pass = lead_one - uniform_filter1d(lead_one, size=max(3, int(0.08 * fs)))
    lead_two = -0.6 * lead_one + 1.6 * high_pass
    time = np.arange(len(lead_one)) / fs
    leads = []
    for clean in (lead_one, lead_two):
        wander = 0.05 * np.sin(2 * np.pi * rng.uniform(0.15, 0.3) * time + rng.uniform(0, 2 * np.pi))
        leads.append(clean + wander + rng.normal(0.0, 0.01, size=len(clean)))
    return np.stack(leads, axis=1)


def _write_record_atomically(
    out_dir: Path, name: str, signal: np.ndarray, beat_samples: np.ndarray, symbols: list[str], fs: int, seed: int
) -> None:
    """Write record ``name`` via a scratch folder, so that a killed run leaves no partial files."""
    import wfdb

    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".write-") as scratch:
        wfdb.wrsamp(
            name, fs=fs, units=["mV", "mV"], sig_name=list(_SYNTHETIC_LEADS), p_signal=signal,
            fmt=["212", "212"], write_dir=scratch,
            comments=[f"SYNTHETIC ECG (ECGSYN via neurokit2, seed {seed}), not patient data"],
        )
        # A rhythm annotation first, as MIT-BIH records have: the loader must drop it.
        wfdb.wrann(
            name, "atr", sample=np.concatenate([[0], beat_samples]).astype(np.int64),
            symbol=["+"] + symbols, aux_note=["(N"] + [""] * len(symbols), write_dir=scratch,
        )
        for extension in _RECORD_EXTENSIONS:
            os.replace(Path(scratch) / (name + extension), out_dir / (name + extension))


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
    train/test: ``{part}_signals`` (n, 2, window) float32 mV, ``y_{part}`` int64,
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
    # One folder per generator setting: records of another setting are never mistaken for these.
    setting = f"seed-{generator_seed}_beats-{beats_per_record}_abnormal-{abnormal_fraction!r}"
    folder = raw_dir / "ecg_synthetic" / setting
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


def _event_splits(windows: dict[str, Any]) -> DatasetSplits:
    """Delta-modulate the split windows into DatasetSplits of (n, T, 4) events."""
    encoded = {
        part: delta_modulate(windows[f"{part}_signals"], windows["thresholds"], rule=windows["delta_rule"])
        for part in ("train", "test")
    }
    return DatasetSplits(
        name=windows["name"],
        x_train=torch.from_numpy(encoded["train"]),
        y_train=torch.from_numpy(windows["y_train"]),
        x_test=torch.from_numpy(encoded["test"]),
        y_test=torch.from_numpy(windows["y_test"]),
        num_classes=2,
        description=windows["description"],
    )


# Option schemas of the two datasets (JSON Schema; see DATASET_OPTIONS in memristor_mat.data),
# checked when a config is loaded. Written out here rather than imported from data.py: this
# module must be complete before it imports data (see the end of the module).
_WINDOW_OPTIONS = {
    "window": {"type": "integer", "minimum": 2, "description": "samples per beat window"},
    "test_fraction": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    "split_seed": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},  # sklearn's seed range
    "stratify": {"type": "boolean"},
    "annotations": {"enum": list(ANNOTATION_CHOICES)},
    "delta_rule": {"enum": list(DELTA_RULES)},
}
MITBIH_OPTIONS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "records": {"type": "array", "minItems": 1, "uniqueItems": True,
                    "items": {"type": "integer", "minimum": 0}, "description": "MIT-BIH record numbers"},
        "download": {"type": "boolean"},
        **_WINDOW_OPTIONS,
    },
}
ECG_SYNTHETIC_OPTIONS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "n_records": {"type": "integer", "minimum": 1},
        "beats_per_record": {"type": "integer", "minimum": 2},
        "abnormal_fraction": {"type": "number", "minimum": 0, "maximum": 1},
        "generator_seed": {"type": "integer", "minimum": 0},
        **_WINDOW_OPTIONS,
    },
}


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
) -> DatasetSplits:
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
) -> DatasetSplits:
    """The embedded demo: SYNTHETIC ECGSYN records, loaded exactly like MIT-BIH (same options)."""
    return _event_splits(ecg_windows(
        "ecg_synthetic", raw_dir, n_records=n_records, beats_per_record=beats_per_record,
        abnormal_fraction=abnormal_fraction, generator_seed=generator_seed,
        window=window, test_fraction=test_fraction, split_seed=split_seed,
        stratify=stratify, annotations=annotations, delta_rule=delta_rule,
    ))


_RECORD_SOURCES = {"mitbih": _mitbih_records, "ecg_synthetic": _synthetic_records}


# --------------------------------------------------------------------------- checks


def _check_window(window: int) -> None:
    _check_int("window", window, minimum=2)


def _check_choice(what: str, value: object, choices: Sequence[object]) -> None:
    """Raise ValueError naming option ``what``, its bad ``value`` and the allowed ``choices``
    (the value must also have the choices' type: 1 is no bool, 0 no string)."""
    if not (isinstance(value, type(choices[0])) and value in choices):
        raise ValueError(f"{what} must be one of {sorted(choices)}, got {value!r}")


def _check_int(what: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}, got {value!r}")


# Imported last on purpose: memristor_mat.data imports this module's builders for its
# registry, so they must exist before this module imports data; in this order either module
# can be imported first without a partially initialised import failing.
from memristor_mat.data import (  # noqa: E402
    DataError,
    DatasetSplits,
    DatasetUnavailableError,
    _check_test_fraction,
)
