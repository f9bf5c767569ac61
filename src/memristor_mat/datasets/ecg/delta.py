"""Delta modulation of ECG windows into UP/DN events (two rules) and its per-lead thresholds.

"grid" rule (this project's, per lead, per window): the reference starts at the window's first
sample; whenever the signal exceeds reference + threshold the reference is raised by whole
thresholds until it no longer does, and one UP event is emitted (DN symmetrically). So a step
that crosses several thresholds emits ONE event but the reference catches up completely: it
never lags the signal by more than one threshold, and events after a steep QRS edge describe the
signal at that time, not a backlog. This variant is an exact composition of clamps, which is
what makes it computable without a loop over time steps (see :func:`delta_modulate`).

"original" rule (SPEC §3.1): the reference starts at -100, an event fires when the sample
differs from the reference by more than the threshold, and the reference is then set to the
sample.

Thresholds are |P90 - P10| / 10 of each lead over all training windows' samples.
"""

from __future__ import annotations

import numpy as np

from memristor_mat.datasets.errors import DataError
from memristor_mat.datasets.options import DELTA_RULES, _check_choice

__all__ = ["delta_modulate", "delta_thresholds"]

# The original's delta modulator starts every window's reference here (SPEC §3.1), far below
# any ECG sample in mV, so the first sample of a window fires an UP event.
_ORIGINAL_START_REFERENCE = -100.0

# Levels (signal / threshold) closer than this to a whole number count as exactly on it, so
# float rounding of quantised samples (WFDB's 212 format stores integers) cannot decide an event.
# It holds for float64 samples (WFDB's physical values, errors of about 1e-16 relative); float32
# ones would err by about 1e-7 of a sample, so records.py keeps the windows in float64.
_LEVEL_TOLERANCE = 1e-9


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
