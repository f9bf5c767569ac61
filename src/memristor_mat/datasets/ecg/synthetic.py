"""SYNTHETIC two-lead ECG records (ECGSYN via neurokit2): normal and premature-ventricular-like
beats, written once as real WFDB records (.hea/.dat/.atr) with annotations, so that they are read
back exactly like MIT-BIH. ``neurokit2``, ``wfdb`` and scipy are imported inside the functions
that use them (neurokit2 alone takes seconds to import).

**The same bytes on every CPU.** ECGSYN integrates its model with scipy's adaptive ``solve_ivp``
(RK45 at its default tolerances), whose step-size control turns a difference in the last bit of a
product into a different trajectory: which of numpy's SIMD loops runs (chosen per CPU at import)
and which OpenBLAS kernel computes RK45's small products (chosen per CPU when the library loads,
or by ``OPENBLAS_CORETYPE``) changed the records. On one AMD EPYC the default record's beats
moved (OpenBLAS' Haswell against its SkylakeX kernels), and with another pair of settings one
64 s chunk left ECGSYN's limit cycle (4 R peaks where 85 were due). So the records are simulated
in a fresh Python process (:func:`portable_numerics_env`) in which numpy runs its baseline loops
(``NPY_DISABLE_CPU_FEATURES``, numpy's runtime dispatch:
https://numpy.org/doc/stable/reference/simd/build-options.html) and OpenBLAS a kernel that every
CPU of the architecture runs (``OPENBLAS_CORETYPE``, OpenBLAS' runtime core selection:
https://github.com/OpenMathLib/OpenBLAS/wiki/Faq), on one thread; MKL, where numpy uses it, in its
conditional-numerical-reproducibility mode (``MKL_CBWR=COMPATIBLE``). The bytes then depend on
the installed versions (pinned in envs/requirements.txt), the architecture and the C library's
maths, not on the CPU model; and chunks whose R peaks are too few for the heart rate are drawn
again, not cut.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from memristor_mat.datasets.ecg.records import _RECORD_EXTENSIONS
from memristor_mat.datasets.errors import DataError
from memristor_mat.datasets.options import _check_int

__all__ = ["write_synthetic_records"]


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
# A chunk is kept when it holds at least this share of the R peaks due at _HEART_RATE; ECGSYN
# leaves its limit cycle now and then (see the module docstring) and such a chunk is drawn again.
_MIN_PEAK_FRACTION = 0.5
# ... at most this many times in a row: more means ECGSYN cannot make beats at this rate.
_MAX_REJECTED_CHUNKS = 5
# OpenBLAS' kernels that every CPU of an architecture runs: SSE4.2 on x86-64 (numpy's wheels need
# it: their baseline is x86-64-v2) and plain ARMv8; elsewhere (e.g. Accelerate on macOS) the BLAS
# is left as it is.
_PORTABLE_OPENBLAS_CORES = {"x86_64": "Nehalem", "amd64": "Nehalem", "aarch64": "ARMV8", "arm64": "ARMV8"}
# The record writer's process (`-c`, not `-m`: this module is already imported by its package) and
# the exit status by which it reports a DataError, whose message it prints on stderr.
_WRITER_COMMAND = (
    "import sys; from memristor_mat.datasets.ecg.synthetic import _main; sys.exit(_main(sys.argv[1:]))"
)
_DATA_ERROR_EXIT = 3


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
    record i depends only on (seed, i). They are simulated in a fresh process on portable code
    paths (module docstring), so that another CPU writes the same bytes.
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
    arguments = dict(n_records=n_records, beats_per_record=beats_per_record,
                     abnormal_fraction=abnormal_fraction, seed=seed, fs=fs)
    environment = portable_numerics_env(os.environ, platform.machine(), _numpy_dispatch_targets())
    process = subprocess.run(
        [sys.executable, "-c", _WRITER_COMMAND, str(out_dir), json.dumps(arguments)],
        env=environment, capture_output=True, text=True,
    )
    if process.returncode == _DATA_ERROR_EXIT:
        raise DataError(process.stderr.strip())
    if process.returncode != 0:
        raise DataError(
            f"the process simulating the synthetic ECG records in {out_dir} failed (exit status "
            f"{process.returncode}):\n{process.stderr.strip()[-2000:]}"
        )
    sys.stderr.write(process.stderr)  # its warnings, into this job's log
    return [out_dir / f"synthetic_{index:03d}" for index in range(n_records)]


def _numpy_dispatch_targets() -> tuple[str, ...]:
    """The SIMD targets numpy chooses among at run time on this architecture (numpy 2's
    ``__cpu_dispatch__``, what ``numpy.show_runtime()`` reports); none where it is missing."""
    for name in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):  # numpy 2, 1
        try:
            return tuple(getattr(importlib.import_module(name), "__cpu_dispatch__", ()))
        except ImportError:
            continue
    return ()


def portable_numerics_env(
    environ: Mapping[str, str], machine: str, numpy_dispatch: Sequence[str]
) -> dict[str, str]:
    """The environment of the process that simulates the records: ``environ`` with numpy's
    runtime-dispatched SIMD targets (``numpy_dispatch``: numpy's ``__cpu_dispatch__``) disabled,
    OpenBLAS on the portable kernel of ``machine`` (``platform.machine()``) where there is one,
    MKL in its reproducible mode, one BLAS thread, and this package importable."""
    environment = dict(environ)
    environment.pop("NPY_ENABLE_CPU_FEATURES", None)  # numpy refuses it beside NPY_DISABLE_CPU_FEATURES
    environment["NPY_DISABLE_CPU_FEATURES"] = " ".join(numpy_dispatch)
    core = _PORTABLE_OPENBLAS_CORES.get(machine.lower())
    if core is not None:
        environment["OPENBLAS_CORETYPE"] = core
    environment.update(OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", MKL_CBWR="COMPATIBLE")
    package_root = str(Path(__file__).resolve().parents[3])
    environment["PYTHONPATH"] = os.pathsep.join(
        part for part in (package_root, environ.get("PYTHONPATH", "")) if part
    )
    return environment


def _write_records(
    out_dir: Path, *, n_records: int, beats_per_record: int, abnormal_fraction: float, seed: int, fs: int
) -> None:
    """Simulate and write the records (in the process that :func:`write_synthetic_records` starts)."""
    for index in range(n_records):
        name = f"synthetic_{index:03d}"
        signal, beat_samples, symbols = _synthetic_record(
            np.random.SeedSequence([seed, index]), beats_per_record, abnormal_fraction, fs
        )
        _write_record_atomically(out_dir, name, signal, beat_samples, symbols, fs, seed)


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

    beats: list[tuple[np.ndarray, int]] = []
    chunk_seeds = np.random.default_rng(seed)
    rejected = 0
    while len(beats) < count:
        lead = neurokit2.ecg_simulate(
            duration=_CHUNK_SECONDS, sampling_rate=fs, noise=0, heart_rate=_HEART_RATE,
            heart_rate_std=_HEART_RATE_STD, method="ecgsyn",
            random_state=int(chunk_seeds.integers(2**32)), **morphology,
        )
        chunk = _chunk_beats(lead, fs)
        if chunk is None:
            rejected += 1
            if rejected == _MAX_REJECTED_CHUNKS:  # would loop forever
                raise DataError(
                    f"ECGSYN produced {rejected} chunks in a row without separable beats at {fs} Hz "
                    f"(fewer than {_MIN_PEAK_FRACTION:.0%} of the R peaks due at {_HEART_RATE:g} beats "
                    f"per minute); use a rate such as 360 Hz."
                )
            continue
        rejected = 0
        beats.extend(chunk)
    return beats[:count]


def _chunk_beats(lead: np.ndarray, fs: int) -> list[tuple[np.ndarray, int]] | None:
    """The beats of one ECGSYN chunk (samples from cut to cut, R-peak offset), or None where its R
    peaks are too few for the heart rate (ECGSYN left its limit cycle, or the rate is too low)."""
    from scipy.signal import find_peaks

    # ECGSYN scales every chunk to [-0.4, 1.2] mV with the R wave on top for both kinds.
    peaks, _ = find_peaks(lead, distance=int(0.5 * fs * 60.0 / _HEART_RATE), height=0.5)
    if len(peaks) < _MIN_PEAK_FRACTION * _CHUNK_SECONDS * _HEART_RATE / 60.0:
        return None
    peaks = peaks[2:]  # the first beats carry ECGSYN's start-up transient
    cuts = peaks[:-1] + np.round(_CUT_FRACTION * np.diff(peaks)).astype(int)
    if len(cuts) < 2:
        return None
    return [(lead[cuts[k - 1]:cuts[k]], int(peaks[k] - cuts[k - 1])) for k in range(1, len(cuts))]


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


def _main(argv: Sequence[str]) -> int:
    """The record writer's process (``_WRITER_COMMAND``): arguments OUT_DIR and the options as JSON."""
    out_dir, arguments = argv
    try:
        _write_records(Path(out_dir), **json.loads(arguments))
    except DataError as error:
        print(error, file=sys.stderr)
        return _DATA_ERROR_EXIT
    return 0
