"""Tests for memristor_mat.datasets.ecg: WFDB beat windows, delta modulation, split, download, synthetic data.

All offline: records are written here with wfdb's own writers (real .hea/.dat/.atr files), and
an autouse fixture makes ``wfdb.dl_database`` fail as if there were no network.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb
from sklearn.model_selection import train_test_split

from memristor_mat.datasets import DATASETS, DataError, DatasetUnavailableError, ecg, prepare_dataset
from memristor_mat.datasets.ecg import synthetic
from memristor_mat.datasets.ecg import (
    BEAT_SYMBOLS,
    NORMAL_SYMBOL,
    delta_modulate,
    delta_thresholds,
    ecg_windows,
    read_beat_windows,
    split_windows,
    write_synthetic_records,
)

ADC_GAIN = 200.0  # MIT-BIH's gain: 0.005 mV per ADC unit, so integers / 200 are stored exactly

# A record of 3,000 samples: beat and non-beat annotations, beats exactly at and just beyond
# the edges where a 250-sample window still fits ([s - 125, s + 125) inside [0, 3000)).
ANNOTATIONS = [
    (10, "+", "(N"),  # rhythm change: not a beat
    (124, "N", ""),  # window would start at -1: dropped
    (125, "A", ""),  # window [0, 250): kept
    (700, "~", ""),  # noise marker: not a beat
    (1000, "N", ""),
    (1500, "V", ""),
    (2000, "+", "(AFIB"),
    (2875, "N", ""),  # window [2750, 3000): kept
    (2876, "V", ""),  # window would end at 3001: dropped
]
KEPT = [(125, "A", 1), (1000, "N", 0), (1500, "V", 1), (2875, "N", 0)]
# annotations="all": the non-beat annotations whose window fits are kept too (label 1: not 'N').
KEPT_ALL = [(125, "A", 1), (700, "~", 1), (1000, "N", 0), (1500, "V", 1), (2000, "+", 1), (2875, "N", 0)]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Any download attempt fails as without network; the list records the attempts."""
    attempts: list[dict] = []

    def no_network(db_dir, dl_dir, records="all", annotators="all", **kwargs):
        attempts.append({"db_dir": db_dir, "records": records})
        raise ConnectionError("offline: no route to physionet.org")

    monkeypatch.setattr(wfdb, "dl_database", no_network)
    return attempts


def write_record(folder, name="100", n_samples=3000, annotations=ANNOTATIONS, seed=0):
    """Write a 2-lead 212-format record whose physical values are exact; return (path, signal)."""
    rng = np.random.default_rng(seed)
    # Amplitude grows along the record, so windows (and thus splits) differ in range.
    growth = np.linspace(1.0, 4.0, n_samples)[:, None]
    digital = np.round(rng.normal(0.0, 100.0, size=(n_samples, 2)) * growth).clip(-2000, 2000)
    signal = digital / ADC_GAIN
    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        name, fs=360, units=["mV", "mV"], sig_name=["MLII", "V1"], p_signal=signal,
        fmt=["212", "212"], adc_gain=[ADC_GAIN, ADC_GAIN], baseline=[0, 0], write_dir=str(folder),
    )
    samples, symbols, notes = zip(*annotations)
    wfdb.wrann(
        name, "atr", sample=np.array(samples), symbol=list(symbols), aux_note=list(notes), write_dir=str(folder)
    )
    return folder / name, signal


def reference_delta_modulate(signal, threshold):
    """Straightforward one-lead modulator: the specification the vectorised one must match."""
    up, down = np.zeros(len(signal)), np.zeros(len(signal))
    reference = signal[0]
    for t in range(1, len(signal)):
        if signal[t] > reference + threshold:
            up[t] = 1
            while signal[t] > reference + threshold:
                reference += threshold
        elif signal[t] < reference - threshold:
            down[t] = 1
            while signal[t] < reference - threshold:
                reference -= threshold
    return up, down


def reference_original_modulate(signal, threshold, start=-100.0):
    """The original rule (SPEC §3.1) for one lead, step by step: (UP, DN, reference after each step);
    the reference starts at -100 mV (``start``: the same in other units)."""
    up, down, references = [], [], []
    reference = start
    for sample in signal:
        up.append(int(sample - reference > threshold))
        down.append(int(sample - reference < -threshold))
        if up[-1] or down[-1]:
            reference = sample
        references.append(reference)
    return up, down, references


# --------------------------------------------------------------------------- loader


def test_beat_symbols_are_mitbih_beat_codes():
    assert set(BEAT_SYMBOLS) == set("NLRBAaJSVrFejnE/fQ?") and NORMAL_SYMBOL == "N"
    assert not {"+", "~", "|", "x", "[", "]", "!", '"'} & set(BEAT_SYMBOLS)


def test_windows_are_exact_slices_of_beats_that_fit(tmp_path):
    path, signal = write_record(tmp_path)
    windows, symbols, samples = read_beat_windows(path)
    assert symbols == [symbol for _, symbol, _ in KEPT]
    np.testing.assert_array_equal(samples, [s for s, _, _ in KEPT])
    assert windows.dtype == np.float64 and windows.shape == (len(KEPT), 2, 250)
    for window, s in zip(windows, samples):
        np.testing.assert_array_equal(window, signal[s - 125 : s + 125].T)


def test_all_annotations_keep_non_beat_windows(tmp_path):
    path, signal = write_record(tmp_path)
    windows, symbols, samples = read_beat_windows(path, annotations="all")
    # '+' at 10 and the beats at 124 / 2876 still do not fit; '~' at 700 and '+' at 2000 do.
    assert symbols == [symbol for _, symbol, _ in KEPT_ALL]
    np.testing.assert_array_equal(samples, [s for s, _, _ in KEPT_ALL])
    for window, s in zip(windows, samples):
        np.testing.assert_array_equal(window, signal[s - 125 : s + 125].T)
    assert read_beat_windows(path, annotations="beats")[1] == [symbol for _, symbol, _ in KEPT]
    with pytest.raises(ValueError, match=r"annotations must be one of \['all', 'beats'\], got 'rhythm'"):
        read_beat_windows(path, annotations="rhythm")


@pytest.mark.parametrize("annotations, kept", [("beats", KEPT), ("all", KEPT_ALL)])
def test_annotations_option_labels_windows(tmp_path, annotations, kept):
    write_record(tmp_path / "mitdb", name="100")
    windows = ecg_windows("mitbih", tmp_path, records=[100], download=False, annotations=annotations)
    by_sample = {s: (symbol, label) for s, symbol, label in kept}
    samples = np.concatenate([windows["train_samples"], windows["test_samples"]])
    assert sorted(samples.tolist()) == sorted(by_sample)
    for part in ("train", "test"):
        for s, symbol, label in zip(windows[f"{part}_samples"], windows[f"{part}_symbols"], windows[f"y_{part}"]):
            assert (symbol, label) == by_sample[s]
    description = windows["description"]
    if annotations == "all":
        assert "6 annotation windows" in description and "every annotation" in description
        assert "4 other annotations (label 1)" in description
    else:
        assert "4 beat windows" in description and "non-beat annotations" in description
        assert "2 other beats (label 1)" in description


def test_labels_split_and_train_only_thresholds(tmp_path):
    write_record(tmp_path / "mitdb", name="100")
    windows = ecg_windows("mitbih", tmp_path, records=[100], download=False)
    by_sample = {s: label for s, _, label in KEPT}
    for part in ("train", "test"):
        expected = [by_sample[s] for s in windows[f"{part}_samples"]]
        np.testing.assert_array_equal(windows[f"y_{part}"], expected)
        assert windows[f"y_{part}"].dtype == np.int64 and sorted(windows[f"y_{part}"]) == [0, 1]
    assert list(windows["train_records"]) == ["100", "100"] and windows["fs"] == 360
    # Thresholds are the training windows' percentiles, not those of all windows.
    train = windows["train_signals"]
    manual = [abs(np.percentile(train[:, lead], 90) - np.percentile(train[:, lead], 10)) / 10 for lead in (0, 1)]
    np.testing.assert_array_equal(windows["thresholds"], manual)
    all_windows = np.concatenate([windows["train_signals"], windows["test_signals"]])
    assert not np.allclose(windows["thresholds"], delta_thresholds(all_windows))
    assert "training split" in windows["description"] and "100" in windows["description"]


def test_builder_encodes_the_split_windows(tmp_path):
    write_record(tmp_path / "mitdb", name="100")
    splits = prepare_dataset("mitbih", tmp_path, records=[100], download=False)
    windows = ecg_windows("mitbih", tmp_path, records=[100], download=False)
    assert splits.num_classes == 2 and splits.input_shape == (250, 4)
    expected = delta_modulate(windows["train_signals"], windows["thresholds"])
    torch.testing.assert_close(splits.x_train, torch.from_numpy(expected))
    torch.testing.assert_close(splits.y_test, torch.from_numpy(windows["y_test"]))


@pytest.mark.parametrize("rule", ["grid", "original"])
def test_quantised_samples_one_threshold_apart_tie_after_reading_the_record(tmp_path, rule):
    # MIT-BIH stores integers (0.005 mV a unit). A staircase of whole multiples of 5 units, read
    # back through WFDB, against a threshold of 10 units (0.05 mV): every exact tie must fire no
    # event, as in integer arithmetic. Windows read as float32 (an earlier version) erred by about
    # 1e-7 of a sample and so let rounding fire or not fire those ties.
    rng = np.random.default_rng(5)
    digital = 200 + np.cumsum(rng.integers(-3, 4, size=(3000, 2)) * 5, axis=0).clip(-1800, 1800)
    folder = tmp_path / "mitdb"
    folder.mkdir()
    wfdb.wrsamp("100", fs=360, units=["mV", "mV"], sig_name=["MLII", "V1"], p_signal=digital / ADC_GAIN,
                fmt=["212", "212"], adc_gain=[ADC_GAIN, ADC_GAIN], baseline=[0, 0], write_dir=str(folder))
    wfdb.wrann("100", "atr", sample=np.array([500, 1500, 2500]), symbol=["N", "V", "N"], write_dir=str(folder))
    windows, _, samples = read_beat_windows(folder / "100")
    assert windows.dtype == np.float64
    np.testing.assert_array_equal(windows, [digital[s - 125 : s + 125].T / ADC_GAIN for s in samples])
    events = delta_modulate(windows, np.array([0.05, 0.05]), rule=rule)
    if rule == "grid":
        modulate = reference_delta_modulate
    else:
        def modulate(units, threshold):
            return reference_original_modulate(units, threshold, start=-100.0 * ADC_GAIN)
    ties = 0
    for n, s in enumerate(samples):
        for lead in range(2):
            units = digital[s - 125 : s + 125, lead].astype(np.float64)  # exact integers
            up, down = modulate(units, 10.0)[:2]
            np.testing.assert_array_equal(events[n, :, 2 * lead], up)
            np.testing.assert_array_equal(events[n, :, 2 * lead + 1], down)
            ties += int(np.sum(np.abs(np.diff(units)) == 10))
    assert ties > 50  # steps of exactly one threshold: the case under test occurs


@pytest.mark.parametrize("extension", [".atr", ".dat", ".hea"])
def test_missing_file_names_it(tmp_path, extension):
    path, _ = write_record(tmp_path)
    (tmp_path / f"100{extension}").unlink()
    with pytest.raises(DataError, match=f"100\\{extension}"):
        read_beat_windows(path)


def test_truncated_signal_file_names_it(tmp_path):
    path, _ = write_record(tmp_path)
    dat = tmp_path / "100.dat"
    dat.write_bytes(dat.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"100\.dat.*(corrupt|truncated)"):
        read_beat_windows(path)


@pytest.mark.parametrize("keep", [0.5, 4])
def test_truncated_annotation_file_names_it(tmp_path, keep):
    # wfdb reads an annotation file cut at an even length without complaint, minus the beats
    # after the cut: the missing end-of-file code gives it away
    path, _ = write_record(tmp_path)
    atr = tmp_path / "100.atr"
    data = atr.read_bytes()
    assert data.endswith(b"\x00\x00")
    cut = (int(len(data) * keep) // 2) * 2 if keep < 1 else keep
    atr.write_bytes(data[:cut])
    with pytest.raises(DataError, match=r"100\.atr is (truncated|corrupt)"):
        read_beat_windows(path)


def test_unknown_options_are_rejected(tmp_path):
    assert {"mitbih", "ecg_synthetic"} <= set(DATASETS)
    with pytest.raises(ValueError, match="bogus"):
        prepare_dataset("ecg_synthetic", tmp_path, bogus=1)
    with pytest.raises(ValueError, match="records"):
        prepare_dataset("mitbih", tmp_path, records="208")


# --------------------------------------------------------------------------- delta modulation


def test_delta_modulation_hand_example():
    # Lead 1, threshold 1: 1.5 > 0 + 1 (UP); 3.7 crosses two levels: ONE UP, reference 0 -> 3;
    # 3.5 does not exceed 3 + 1; 1.9 < 3 - 1 (DN, reference 2); 0.5 < 2 - 1 (DN).
    lead_one = [0.0, 0.5, 1.5, 3.7, 3.5, 3.0, 1.9, 2.0, 0.5]
    # Lead 2, threshold 0.5: 1.6 > 1.5 (UP, simultaneous with lead 1); 1.0 equals 1.5 - 0.5
    # (no event: strict); 0.2 (one DN, reference 0.5); 1.9 > 1.0 (one UP, reference 1.5).
    lead_two = [1.0, 1.0, 1.6, 1.0, 0.2, 0.2, 0.9, 1.9, 1.9]
    events = delta_modulate(np.array([[lead_one, lead_two]]), np.array([1.0, 0.5]))
    expected = np.zeros((9, 4), dtype=np.float32)
    expected[[2, 3], 0] = 1  # lead 1 UP
    expected[[6, 8], 1] = 1  # lead 1 DN
    expected[[2, 7], 2] = 1  # lead 2 UP
    expected[[4], 3] = 1  # lead 2 DN
    assert events.dtype == np.float32 and events.shape == (1, 9, 4)
    np.testing.assert_array_equal(events[0], expected)


def test_delta_modulation_matches_reference_loop():
    rng = np.random.default_rng(1)
    # Random walks with steps up to several thresholds, plus flat stretches.
    signals = np.cumsum(rng.normal(0.0, 1.0, size=(12, 2, 250)) * (rng.random((12, 2, 250)) < 0.7), axis=-1)
    thresholds = np.array([0.37, 1.3])
    events = delta_modulate(signals, thresholds)
    for n in range(len(signals)):
        for lead in range(2):
            up, down = reference_delta_modulate(signals[n, lead], thresholds[lead])
            np.testing.assert_array_equal(events[n, :, 2 * lead], up)
            np.testing.assert_array_equal(events[n, :, 2 * lead + 1], down)
    assert events[:, 0].sum() == 0 and events.sum() > 1000


def test_float_rounding_does_not_create_events():
    # 0.8 - 0.7 is exactly one threshold of 0.1 (not more), though in floats it is 1.0000000000000009.
    events = delta_modulate(np.array([[[0.7, 0.8]]]), np.array([0.1]))
    assert events.sum() == 0


def test_grid_is_the_default_rule():
    rng = np.random.default_rng(2)
    signals = np.cumsum(rng.normal(0.0, 1.0, size=(5, 2, 250)), axis=-1)
    thresholds = np.array([0.5, 1.1])
    default = delta_modulate(signals, thresholds)
    np.testing.assert_array_equal(default, delta_modulate(signals, thresholds, rule="grid"))
    assert not np.array_equal(default, delta_modulate(signals, thresholds, rule="original"))


def test_original_delta_modulation_hand_example():
    # SPEC §3.1: reference starts at -100; UP when x - ref > thr, DN when x - ref < -thr; on an
    # event ref := x. Worked by hand, "ref" is the reference after the step.
    # Window 0, lead 1, threshold 0.5:
    #   t  x     x - ref before          event  ref
    #   0  0.0   0.0 - (-100) = 100.0    UP     0.0   (the first sample fires)
    #   1  0.2   0.2 - 0.0 = 0.2         -      0.0
    #   2  0.8   0.8 - 0.0 = 0.8         UP     0.8   (set to the sample, not to 0.5)
    #   3  1.2   1.2 - 0.8 = 0.4         -      0.8   (the grid rule, ref 0.5, would fire UP)
    #   4  0.1   0.1 - 0.8 = -0.7        DN     0.1
    #   5  -0.5  -0.5 - 0.1 = -0.6       DN     -0.5
    #   6  -0.4  -0.4 - (-0.5) = 0.1     -      -0.5
    #   7  0.6   0.6 - (-0.5) = 1.1      UP     0.6   (two thresholds: still one event)
    # Window 0, lead 2, threshold 2.0:
    #   0  -100.0  -100 - (-100) = 0.0   -      -100.0 (first sample <= -100 + thr: no event)
    #   1  -99.0   1.0                   -      -100.0
    #   2  -97.5   2.5                   UP     -97.5
    #   3  -97.0   0.5                   -      -97.5
    #   4  -99.5   -2.0 (= -thr)         -      -97.5  (strict comparison: no event)
    #   5  -99.4   -1.9                  -      -97.5
    #   6  -96.0   1.5                   -      -97.5
    #   7  -101.0  -3.5                  DN     -101.0
    # Window 1 (the reference restarts at -100), lead 1, threshold 0.5:
    #   0  -99.5   0.5 (= thr)           -      -100.0 (first sample does not fire: tie)
    #   1  -99.4   0.6                   UP     -99.4
    #   2  -99.4   0.0                   -      -99.4
    #   3  -98.8   0.6                   UP     -98.8
    #   4-6 -98.8  0.0                   -      -98.8
    #   7  0.0     98.8                  UP     0.0
    # Window 1, lead 2, threshold 2.0:
    #   0  -103.0  -3.0                  DN     -103.0 (the first sample can fire DN)
    #   1  -103.0  0.0                   -      -103.0
    #   2  -100.0  3.0                   UP     -100.0
    #   3-7 -100.0 0.0                   -      -100.0
    signals = np.array([
        [[0.0, 0.2, 0.8, 1.2, 0.1, -0.5, -0.4, 0.6],
         [-100.0, -99.0, -97.5, -97.0, -99.5, -99.4, -96.0, -101.0]],
        [[-99.5, -99.4, -99.4, -98.8, -98.8, -98.8, -98.8, 0.0],
         [-103.0, -103.0, -100.0, -100.0, -100.0, -100.0, -100.0, -100.0]],
    ])
    thresholds = np.array([0.5, 2.0])
    expected_up = [[[1, 0, 1, 0, 0, 0, 0, 1], [0, 0, 1, 0, 0, 0, 0, 0]],
                   [[0, 1, 0, 1, 0, 0, 0, 1], [0, 0, 1, 0, 0, 0, 0, 0]]]
    expected_down = [[[0, 0, 0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1]],
                     [[0, 0, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0]]]
    expected_reference = [
        [[0.0, 0.0, 0.8, 0.8, 0.1, -0.5, -0.5, 0.6], [-100.0, -100.0, -97.5, -97.5, -97.5, -97.5, -97.5, -101.0]],
        [[-100.0, -99.4, -99.4, -98.8, -98.8, -98.8, -98.8, 0.0], [-103.0, -103.0] + [-100.0] * 6],
    ]
    # The step-by-step reading of the rule agrees with the hand working ...
    for n in range(2):
        for lead in range(2):
            up, down, references = reference_original_modulate(signals[n, lead], thresholds[lead])
            assert (up, down) == (expected_up[n][lead], expected_down[n][lead])
            np.testing.assert_array_equal(references, expected_reference[n][lead])
    # ... and so does the vectorised modulator, in channel order (lead 1 UP, lead 1 DN, lead 2 UP, lead 2 DN).
    events = delta_modulate(signals, thresholds, rule="original")
    assert events.dtype == np.float32 and events.shape == (2, 8, 4)
    expected = np.stack([expected_up, expected_down], axis=2).reshape(2, 4, 8).transpose(0, 2, 1)
    np.testing.assert_array_equal(events, expected.astype(np.float32))
    np.testing.assert_array_equal(events[0, :, 0], [1, 0, 1, 0, 0, 0, 0, 1])  # lead 1 UP, spelled out
    np.testing.assert_array_equal(events[1, :, 3], [1, 0, 0, 0, 0, 0, 0, 0])  # lead 2 DN, spelled out
    # The grid rule on the same window differs: no event at t = 0, and an UP at t = 3 of lead 1.
    grid = delta_modulate(signals[:1, :1], thresholds[:1])
    np.testing.assert_array_equal(grid[0, :, 0], [0, 0, 1, 1, 0, 0, 0, 1])


def test_original_delta_modulation_matches_step_by_step_rule():
    rng = np.random.default_rng(3)
    signals = np.cumsum(rng.normal(0.0, 1.0, size=(12, 2, 250)) * (rng.random((12, 2, 250)) < 0.7), axis=-1)
    thresholds = np.array([0.37, 1.3])
    events = delta_modulate(signals, thresholds, rule="original")
    for n in range(len(signals)):
        for lead in range(2):
            up, down, _ = reference_original_modulate(signals[n, lead], thresholds[lead])
            np.testing.assert_array_equal(events[n, :, 2 * lead], up)
            np.testing.assert_array_equal(events[n, :, 2 * lead + 1], down)
    assert events[:, 0, [0, 2]].all() and events.sum() > 1000
    # Quantised samples that differ by exactly one threshold do not fire (as in the grid rule),
    # though 0.8 - 0.7 is 0.10000000000000009 in floats: 0.7 fires (reference 0.7), 0.8 does not.
    events = delta_modulate(np.array([[[0.7, 0.8]]]), np.array([0.1]), rule="original")
    np.testing.assert_array_equal(events[0], [[1, 0], [0, 0]])


def test_delta_inputs_are_checked():
    with pytest.raises(ValueError, match=r"rule must be one of \['grid', 'original'\], got 'foo'"):
        delta_modulate(np.zeros((1, 2, 5)), np.array([0.1, 0.1]), rule="foo")
    with pytest.raises(ValueError, match="thresholds"):
        delta_modulate(np.zeros((1, 2, 5)), np.array([0.1, 0.0]))
    with pytest.raises(DataError, match="flat"):
        delta_thresholds(np.ones((3, 2, 10)))


def test_split_is_stratified_and_seeded():
    labels = np.array([0] * 30 + [1] * 10)
    train, test = split_windows(labels, test_fraction=0.5, split_seed=42)
    assert len(train) == len(test) == 20 and labels[train].sum() == labels[test].sum() == 5
    again, _ = split_windows(labels, test_fraction=0.5, split_seed=42)
    np.testing.assert_array_equal(train, again)
    with pytest.raises(DataError, match="stratified"):
        split_windows(np.array([0, 0, 0, 1]))


def test_unstratified_split_is_the_originals_plain_split():
    labels = np.array([0] * 30 + [1] * 10)
    train, test = split_windows(labels, test_fraction=0.5, split_seed=42, stratify=False)
    sk_train, sk_test = train_test_split(np.arange(40), test_size=0.5, random_state=42)
    np.testing.assert_array_equal(train, sk_train)
    np.testing.assert_array_equal(test, sk_test)
    stratified, _ = split_windows(labels, test_fraction=0.5, split_seed=42)
    assert not np.array_equal(train, stratified)
    # It depends on the number of windows only, and does not force the class proportions.
    np.testing.assert_array_equal(split_windows(labels[::-1], split_seed=42, stratify=False)[0], train)
    tests = [split_windows(labels, split_seed=seed, stratify=False)[1] for seed in range(20)]
    abnormal_in_test = {int(labels[test].sum()) for test in tests}
    assert abnormal_in_test != {5}
    # A single window of a class splits fine unstratified.
    assert len(split_windows(np.array([0, 0, 0, 1]), stratify=False)[1]) == 2
    with pytest.raises(ValueError, match=r"stratify must be one of \[False, True\], got 'no'"):
        split_windows(labels, stratify="no")


def test_original_options_end_to_end(tmp_path):
    write_record(tmp_path / "mitdb", name="100")
    options = dict(records=[100], download=False, stratify=False, annotations="all", delta_rule="original")
    splits = prepare_dataset("mitbih", tmp_path, **options)
    windows = ecg_windows("mitbih", tmp_path, **options)
    # Split: sklearn's unstratified split of the 6 windows (record order), seed 42.
    sk_train, sk_test = train_test_split(np.arange(len(KEPT_ALL)), test_size=0.5, random_state=42)
    all_samples = np.array([s for s, _, _ in KEPT_ALL])
    np.testing.assert_array_equal(windows["train_samples"], all_samples[sk_train])
    np.testing.assert_array_equal(windows["test_samples"], all_samples[sk_test])
    labels = np.array([label for _, _, label in KEPT_ALL])
    torch.testing.assert_close(splits.y_test, torch.from_numpy(labels[sk_test]))
    # Events: the original rule with the training split's thresholds.
    for part in ("train", "test"):
        expected = delta_modulate(windows[f"{part}_signals"], windows["thresholds"], rule="original")
        torch.testing.assert_close(getattr(splits, f"x_{part}"), torch.from_numpy(expected))
    assert splits.x_test[:, 0, [0, 2]].eq(1).all()  # every window's first sample fires UP on both leads
    description = splits.description
    assert "unstratified split 3 train / 3 test" in description and "original rule" in description
    assert "6 annotation windows" in description
    default = prepare_dataset("mitbih", tmp_path, records=[100], download=False)
    assert "; stratified split" in default.description and "original rule" not in default.description
    assert default.x_test[:, 0].eq(0).all()  # the grid rule never fires at the first step


def test_explicit_defaults_equal_the_defaults(tmp_path):
    write_record(tmp_path / "mitdb", name="100")
    default = prepare_dataset("mitbih", tmp_path, records=[100], download=False)
    explicit = prepare_dataset(
        "mitbih", tmp_path, records=[100], download=False, stratify=True, annotations="beats", delta_rule="grid"
    )
    for key in ("x_train", "y_train", "x_test", "y_test"):
        torch.testing.assert_close(getattr(explicit, key), getattr(default, key))
    assert explicit.description == default.description


@pytest.mark.parametrize("name", ["mitbih", "ecg_synthetic"])
@pytest.mark.parametrize(
    "option, value, message",
    [
        ("delta_rule", "foo", r"delta_rule must be one of \['grid', 'original'\], got 'foo'"),
        ("annotations", "beat", r"annotations must be one of \['all', 'beats'\], got 'beat'"),
        ("stratify", 1, r"stratify must be one of \[False, True\], got 1"),
        ("stratify", "false", r"stratify must be one of \[False, True\], got 'false'"),
    ],
)
def test_bad_option_values_name_the_option(tmp_path, offline, name, option, value, message):
    with pytest.raises(ValueError, match=message):
        prepare_dataset(name, tmp_path, **{option: value})
    assert offline == [] and not (tmp_path / "ecg_synthetic").exists()  # checked before any record work


# --------------------------------------------------------------------------- download


def test_offline_download_says_what_to_put_where(tmp_path, offline):
    with pytest.raises(DatasetUnavailableError) as raised:
        prepare_dataset("mitbih", tmp_path)
    message = str(raised.value)
    assert "mitdb" in message and "208.dat" in message and "208.hea" in message and "208.atr" in message
    assert str(tmp_path / "mitdb" / "208.dat") in message and "PhysioNet" in message
    assert offline == [{"db_dir": "mitdb", "records": ["208"]}]
    assert list((tmp_path / "mitdb").iterdir()) == []  # no scratch folder or partial file left


def test_no_download_when_disabled_or_present(tmp_path, offline):
    with pytest.raises(DatasetUnavailableError, match="download=False"):
        prepare_dataset("mitbih", tmp_path, download=False)
    write_record(tmp_path / "mitdb", name="208")
    assert prepare_dataset("mitbih", tmp_path).x_train.shape[1:] == (250, 4)
    assert offline == []


def test_download_moves_fetched_files_into_mitdb(tmp_path, monkeypatch):
    def fake_download(db_dir, dl_dir, records="all", annotators="all", **kwargs):
        for record in records:
            write_record(tmp_path.joinpath(dl_dir), name=record)

    monkeypatch.setattr(wfdb, "dl_database", fake_download)
    paths = ecg.download_mitbih(tmp_path, [208])
    assert paths == [tmp_path / "mitdb" / "208"]
    assert sorted(p.name for p in (tmp_path / "mitdb").iterdir()) == ["208.atr", "208.dat", "208.hea"]


# --------------------------------------------------------------------------- synthetic records


@pytest.fixture(scope="module")
def synthetic_demo(tmp_path_factory):
    """The embedded demo dataset with default options (built once for the module)."""
    raw_dir = tmp_path_factory.mktemp("raw")
    return raw_dir, prepare_dataset("ecg_synthetic", raw_dir)


def test_synthetic_records_are_deterministic_with_requested_beats(tmp_path):
    options = dict(beats_per_record=150, abnormal_fraction=0.3, seed=3)
    first = write_synthetic_records(tmp_path / "a", **options)
    second = write_synthetic_records(tmp_path / "b", **options)
    for extension in (".hea", ".dat", ".atr"):
        a, b = (p[0].with_name(p[0].name + extension).read_bytes() for p in (first, second))
        assert a == b, extension
    other = write_synthetic_records(tmp_path / "c", beats_per_record=150, abnormal_fraction=0.3, seed=4)
    assert other[0].with_suffix(".dat").read_bytes() != first[0].with_suffix(".dat").read_bytes()
    annotation = wfdb.rdann(str(first[0]), "atr")
    assert annotation.symbol[0] == "+" and annotation.aux_note[0] == "(N"
    beats = np.array(annotation.symbol[1:])
    assert abs(len(beats) - 150) <= 3 and set(beats) == {"N", "V"}
    assert abs(np.mean(beats == "V") - 0.3) <= 0.05
    assert "SYNTHETIC" in first[0].with_suffix(".hea").read_text()
    # Annotations sit on the R peaks: normal beats peak at the window centre.
    windows, symbols, _ = read_beat_windows(first[0])
    normal = windows[np.array(symbols) == "N"]
    assert np.median(np.abs(normal[:, 0].argmax(axis=1) - 125)) <= 2


def test_synthetic_demo_dataset(synthetic_demo):
    _, splits = synthetic_demo
    assert splits.name == "ecg_synthetic" and "SYNTHETIC" in splits.description
    assert splits.x_train.shape[1:] == (250, 4) and splits.x_train.dtype == torch.float32
    assert set(torch.unique(splits.x_train).tolist()) == {0.0, 1.0}
    n_train, n_test = len(splits.y_train), len(splits.y_test)
    assert abs(n_train - n_test) <= 1 and n_train + n_test >= 0.99 * 1200
    train_abnormal, test_abnormal = splits.y_train.sum().item(), splits.y_test.sum().item()
    assert train_abnormal > 0 and test_abnormal > 0 and abs(train_abnormal - test_abnormal) <= 1
    assert abs((train_abnormal + test_abnormal) / (n_train + n_test) - 0.25) <= 0.05


def test_synthetic_demo_with_the_originals_options(synthetic_demo, monkeypatch):
    raw_dir, splits = synthetic_demo

    def must_not_run(*args, **kwargs):
        raise AssertionError("records were regenerated although present")

    monkeypatch.setattr(ecg, "write_synthetic_records", must_not_run)
    original = prepare_dataset("ecg_synthetic", raw_dir, stratify=False, annotations="all", delta_rule="original")
    # The one non-beat annotation ('+' at sample 0) does not fit a window: the same windows ...
    record = next((raw_dir / "ecg_synthetic").glob("*/synthetic_000.hea")).with_suffix("")
    _, symbols, samples = read_beat_windows(record)
    n = len(samples)
    assert len(original.y_train) + len(original.y_test) == len(splits.y_train) + len(splits.y_test) == n
    # ... split as sklearn's unstratified call on np.arange(n) with seed 42 splits them.
    _, sk_test = train_test_split(np.arange(n), test_size=0.5, random_state=42)
    labels = (np.array(symbols) != "N").astype(np.int64)
    torch.testing.assert_close(original.y_test, torch.from_numpy(labels[sk_test]))
    assert not torch.equal(original.y_test, splits.y_test)
    assert original.x_train.shape[1:] == (250, 4) and set(torch.unique(original.x_train).tolist()) == {0.0, 1.0}
    assert original.x_train[:, 0, [0, 2]].eq(1).all() and splits.x_train[:, 0].eq(0).all()
    assert "unstratified" in original.description and "original rule" in original.description


def test_synthetic_records_are_reused(synthetic_demo, monkeypatch):
    raw_dir, splits = synthetic_demo

    def must_not_run(*args, **kwargs):
        raise AssertionError("records were regenerated although present")

    monkeypatch.setattr(ecg, "write_synthetic_records", must_not_run)
    again = prepare_dataset("ecg_synthetic", raw_dir)
    torch.testing.assert_close(again.x_test, splits.x_test)
    with pytest.raises(AssertionError, match="regenerated"):  # another setting: its own folder
        prepare_dataset("ecg_synthetic", raw_dir, generator_seed=1)


def _kernel_settings():
    """(OpenBLAS kernel, numpy's disabled SIMD targets) settings this CPU runs, under which a record
    written in-process differs (measured: Haswell with numpy's AVX-512 loops off against SkylakeX
    with them on, on an AMD EPYC Zen 5; Haswell against Sandybridge on a Zen 3, AVX2 only, where
    numpy's AVX2 loops made no difference; Sandybridge joins the AVX-512 settings as a third)."""
    from numpy._core._multiarray_umath import __cpu_features__

    if platform.machine().lower() not in ("x86_64", "amd64") or not __cpu_features__.get("AVX2", False):
        return []
    if __cpu_features__.get("AVX512_SKX", False):
        return [("Haswell", "X86_V4 AVX512_ICL AVX512_SPR"), ("SkylakeX", ""), ("Sandybridge", "")]
    return [("Haswell", ""), ("Sandybridge", "X86_V3")]


@pytest.mark.skipif(not _kernel_settings(), reason="needs an x86-64 CPU with AVX2 (OpenBLAS' Haswell kernels)")
def test_synthetic_records_do_not_depend_on_the_cpus_numeric_kernels(tmp_path, monkeypatch):
    # Written in-process, this record's .dat has different contents under these settings (four
    # under OpenBLAS' Haswell or SkylakeX kernels x numpy's AVX-512 loops or not on an AMD EPYC
    # Zen 5; two under Haswell or Sandybridge on a Zen 3): ECGSYN's adaptive integration
    # amplifies the last bit of a product. The writer's process runs on portable kernels
    # whatever its parent chose.
    options = dict(beats_per_record=150, abnormal_fraction=0.3, seed=3)
    written = []
    for index, (openblas_core, numpy_disabled) in enumerate(_kernel_settings()):
        monkeypatch.setenv("OPENBLAS_CORETYPE", openblas_core)
        monkeypatch.setenv("NPY_DISABLE_CPU_FEATURES", numpy_disabled)
        paths = write_synthetic_records(tmp_path / str(index), **options)
        written.append([paths[0].with_name(paths[0].name + extension).read_bytes() for extension in (".hea", ".dat", ".atr")])
    assert all(files == written[0] for files in written[1:])


def test_portable_numerics_env():
    parent = {"PATH": "/bin", "PYTHONPATH": "/elsewhere", "NPY_ENABLE_CPU_FEATURES": "AVX2", "OPENBLAS_CORETYPE": "SkylakeX"}
    env = synthetic.portable_numerics_env(parent, "x86_64", ("X86_V3", "X86_V4"))
    assert env["NPY_DISABLE_CPU_FEATURES"] == "X86_V3 X86_V4" and "NPY_ENABLE_CPU_FEATURES" not in env
    assert env["OPENBLAS_CORETYPE"] == "Nehalem" and env["OPENBLAS_NUM_THREADS"] == "1"
    assert env["MKL_CBWR"] == "COMPATIBLE" and env["PATH"] == "/bin"
    package_root, elsewhere = env["PYTHONPATH"].split(os.pathsep)
    assert (Path(package_root) / "memristor_mat" / "datasets" / "ecg" / "synthetic.py").is_file()
    assert elsewhere == "/elsewhere" and parent["OPENBLAS_CORETYPE"] == "SkylakeX"  # the parent's untouched
    assert synthetic.portable_numerics_env(parent, "aarch64", ())["OPENBLAS_CORETYPE"] == "ARMV8"
    # no OpenBLAS kernel known for the architecture: the parent's choice stays
    assert synthetic.portable_numerics_env(parent, "ppc64le", ())["OPENBLAS_CORETYPE"] == "SkylakeX"


def _pulse_train(seconds=64, fs=360, bpm=80.0):
    """A lead as ECGSYN scales it ([-0.4, 1.2] mV) with one R peak per beat at ``bpm``."""
    lead = np.full(seconds * fs, -0.1)
    lead[np.arange(0, len(lead), round(fs * 60 / bpm))] = 1.2
    lead[:3] = -0.4
    return lead


def test_chunks_without_the_due_r_peaks_are_drawn_again(monkeypatch):
    import neurokit2

    left_the_cycle = np.where(np.arange(64 * 360) % 5000 == 2500, 1.2, -0.1)  # 4 peaks where 85 are due
    leads = [left_the_cycle, _pulse_train()]
    seeds = []

    def ecg_simulate(*, random_state, **kwargs):
        seeds.append(random_state)
        return leads.pop(0)

    monkeypatch.setattr(neurokit2, "ecg_simulate", ecg_simulate)
    assert synthetic._chunk_beats(left_the_cycle, 360) is None
    beats = synthetic._simulated_beats(20, {}, np.random.SeedSequence(7), 360)
    expected_seeds = np.random.default_rng(np.random.SeedSequence(7)).integers(2**32, size=2)
    assert seeds == expected_seeds.tolist() and not leads  # the second chunk's seed, the second chunk
    assert len(beats) == 20 and all(len(beat) == 270 and beat[r_offset] == 1.2 for beat, r_offset in beats)

    monkeypatch.setattr(neurokit2, "ecg_simulate", lambda **kwargs: left_the_cycle)
    with pytest.raises(DataError, match="5 chunks in a row without separable beats at 360 Hz"):
        synthetic._simulated_beats(20, {}, np.random.SeedSequence(7), 360)


def test_synthetic_records_at_a_rate_too_low_for_beats(tmp_path):
    # the writer's process reports the DataError: its message, not a traceback
    with pytest.raises(DataError, match=r"^ECGSYN produced 5 chunks in a row without separable beats at 10 Hz"):
        write_synthetic_records(tmp_path, beats_per_record=20, fs=10)
    assert not list(tmp_path.iterdir())
