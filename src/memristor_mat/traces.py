"""What a recurrent network does with one heartbeat, as a tidy table for the raster figure
(drawn by :mod:`memristor_mat.reporting.traces`).

For the first normal and the first abnormal beat of the test split: the two-lead signal, its
delta-modulation events (exactly the network's input), and for each given model the hidden
layer's spikes (or tanh activations) and the readout traces, one row per value.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch

from .checkpoint import load_checkpoint, model_from_checkpoint
from .datasets.ecg import ecg_windows
from .datasets.splits import DatasetSplits

EVENT_CHANNELS = ("lead 1 UP", "lead 1 DN", "lead 2 UP", "lead 2 DN")
BEAT_LABELS = {0: "normal (N)", 1: "abnormal"}
COLUMNS = ["beat", "beat_label", "symbol", "method", "sigma_train", "seed", "prediction", "quantity",
           "channel", "time_step", "time_s", "value"]


def _long(values: np.ndarray, channels, quantity: str, fs: float, **identity) -> pd.DataFrame:
    """(T, channels) -> one row per (time step, channel); time relative to the beat annotation."""
    steps, width = values.shape
    time_step = np.repeat(np.arange(steps), width)
    frame = pd.DataFrame({
        "quantity": quantity,
        "channel": np.tile(np.asarray([str(c) for c in channels], dtype=object), steps),
        "time_step": time_step,
        "time_s": (time_step - steps // 2) / fs,
        "value": values.reshape(-1).astype(float),
    })
    for key, value in identity.items():
        frame.insert(0, key, value)
    return frame


def pick_beats(labels: torch.Tensor) -> list[int]:
    """The first test beat of each class (normal first)."""
    return [int(torch.nonzero(labels == c)[0]) for c in sorted(BEAT_LABELS) if bool((labels == c).any())]


@torch.no_grad()
def heartbeat_traces(
    checkpoint_paths: list[str | os.PathLike],
    data: DatasetSplits,
    dataset: Mapping[str, Any],
    raw_dir: str | os.PathLike,
) -> pd.DataFrame:
    """Tidy traces (columns :data:`COLUMNS`) of the given recurrent-network checkpoints on the
    first normal and first abnormal test beat. ``dataset`` is the task's dataset config, used to
    read the raw windows the events were encoded from."""
    windows = ecg_windows(dataset["name"], raw_dir, **dataset.get("options", {}))
    if len(windows["y_test"]) != len(data.y_test) or not np.array_equal(windows["y_test"], data.y_test.numpy()):
        raise ValueError("the raw ECG windows do not match the prepared test split; rerun its prepare rule")
    fs = float(windows["fs"])
    models = []
    for path in checkpoint_paths:
        checkpoint = load_checkpoint(path)
        models.append((checkpoint, model_from_checkpoint(checkpoint, path).eval()))
    frames = []
    for beat in pick_beats(data.y_test):
        label = int(data.y_test[beat])
        beat_identity = {"beat": beat, "beat_label": BEAT_LABELS[label],
                         "symbol": str(windows["test_symbols"][beat])}
        signal = windows["test_signals"][beat].T  # (T, leads)
        frames.append(_long(signal, [f"lead {i + 1}" for i in range(signal.shape[1])], "signal", fs, **beat_identity))
        events = data.x_test[beat].numpy()
        frames.append(_long(events, EVENT_CHANNELS[:events.shape[1]], "event", fs, **beat_identity))
        for checkpoint, model in models:
            recorded = model.record(data.x_test[beat:beat + 1])
            identity = {**beat_identity, "method": checkpoint["method"], "sigma_train": float(checkpoint["sigma_train"]),
                        "seed": int(checkpoint["seed"]), "prediction": int(recorded["logits"].argmax(-1))}
            hidden = recorded["hidden"][0].numpy()
            frames.append(_long(hidden, range(hidden.shape[1]), "spike", fs, **identity))
            readout = recorded["readout"][0].numpy()
            frames.append(_long(readout, [f"output {BEAT_LABELS[c]}" for c in range(readout.shape[1])], "readout",
                                fs, **identity))
    table = pd.concat(frames, ignore_index=True)
    for column in COLUMNS:
        if column not in table:
            table[column] = np.nan
    return table[COLUMNS]
