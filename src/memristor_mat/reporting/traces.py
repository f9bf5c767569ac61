"""The heartbeat figure of the ECG task: one recorded heartbeat through the spiking network.

Draws the tidy trace table of :func:`memristor_mat.traces.heartbeat_traces` (signal, delta
events, hidden activity and readout of each recorded beat) and returns ``(figure, table)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from memristor_mat.reporting.style import _PALETTE, method_label, style_context

__all__ = ["TRACE_PANELS", "plot_heartbeat_traces"]


#: quantities of a heartbeat trace table (see memristor_mat.traces), top to bottom
TRACE_PANELS = (
    ("signal", "ECG (mV)"),
    ("event", "Delta events"),
    ("spike", "Hidden neuron"),
    ("readout", "Readout membrane\n(a.u.)"),
)


def plot_heartbeat_traces(traces: pd.DataFrame, *, method: str, title: str | None = None) -> tuple[Figure, pd.DataFrame]:
    """One column per recorded heartbeat (e.g. a normal and an abnormal beat): the two-lead
    signal, its delta-modulation events, the hidden layer's activity (a spike raster, or the
    tanh activation as an image) and the two readout traces of ``method``'s model.

    ``traces`` is the tidy table of :func:`memristor_mat.traces.heartbeat_traces`. Returns
    ``(fig, table)``: the rows drawn.
    """
    shown = traces[(traces["quantity"].isin(["signal", "event"])) | (traces["method"] == method)]
    if not (shown["method"] == method).any():
        raise ValueError(f"no traces of method {method!r}; recorded: {sorted(traces['method'].dropna().unique())}")
    beats = list(dict.fromkeys(shown["beat"]))
    with style_context():
        fig = Figure(figsize=(4.6 * len(beats) + 0.8, 7.2), layout="constrained")
        axes = fig.subplots(len(TRACE_PANELS), len(beats), sharex=True, squeeze=False,
                            gridspec_kw={"height_ratios": [1.2, 0.8, 1.6, 1.0]})
        for column, beat in enumerate(beats):
            beat_rows = shown[shown["beat"] == beat]
            label = beat_rows["beat_label"].iloc[0]
            for row, (quantity, ylabel) in enumerate(TRACE_PANELS):
                ax = axes[row, column]
                rows = beat_rows[beat_rows["quantity"] == quantity]
                _draw_trace_panel(ax, quantity, rows, legend=column == len(beats) - 1)
                if column == 0:
                    ax.set_ylabel(ylabel)
            predicted = beat_rows.dropna(subset=["prediction"])["prediction"]
            verdict = ""
            if len(predicted):
                verdict = f"\n{method_label(method)} says {'abnormal' if int(predicted.iloc[0]) else 'normal'}"
            axes[0, column].set_title(f"Test beat {beat}: {label}{verdict}", loc="left", fontsize="medium")
            axes[-1, column].set_xlabel("Time (ms)")
        if title:
            fig.suptitle(title, x=0.01, horizontalalignment="left", fontweight="bold")
    return fig, shown.reset_index(drop=True)


def _draw_trace_panel(ax, quantity: str, rows: pd.DataFrame, *, legend: bool = True) -> None:
    """One panel; ``legend``: name the lines, right of the panel (the last column's: outside
    the axes, where it hides no trace)."""
    time_ms = 1000.0 * rows["time_s"].to_numpy(dtype=float)
    if quantity in ("signal", "readout"):
        for index, (channel, part) in enumerate(rows.groupby("channel", sort=False)):
            ax.plot(1000.0 * part["time_s"].to_numpy(dtype=float), part["value"].to_numpy(dtype=float),
                    color=_PALETTE[index % len(_PALETTE)], linewidth=1.0, label=str(channel))
        if legend:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="x-small",
                      frameon=False)
        return
    channels = list(dict.fromkeys(rows["channel"]))
    position = {channel: i for i, channel in enumerate(channels)}
    y = rows["channel"].map(position).to_numpy()
    values = rows["value"].to_numpy(dtype=float)
    binary = np.isin(values, (0.0, 1.0)).all()
    if binary:  # events and spikes: a raster
        active = values > 0
        ax.scatter(time_ms[active], y[active], s=4 if quantity == "spike" else 10, marker="|",
                   color="#222222", linewidths=0.8)
    else:  # a non-spiking (tanh) layer: its activation as an image
        grid = np.full((len(channels), rows["time_step"].max() + 1), np.nan)
        grid[y, rows["time_step"].to_numpy()] = values
        ax.imshow(grid, aspect="auto", origin="lower", cmap="RdBu_r", vmin=-1, vmax=1,
                  extent=(time_ms.min(), time_ms.max(), -0.5, len(channels) - 0.5), interpolation="nearest")
    if quantity == "event":
        ax.set_yticks(range(len(channels)), [str(c) for c in channels], fontsize="x-small")
    ax.set_ylim(-0.5, len(channels) - 0.5)
