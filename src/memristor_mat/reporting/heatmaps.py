"""Heatmap of accuracy: trained configurations against inference noise levels (SPEC §6).

Takes the summary table of :func:`memristor_mat.reporting.summary.summarise` and returns
``(figure, table)``, the table holding exactly the numbers drawn.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from memristor_mat import methods as registry
from memristor_mat.reporting.curves import _check_stats, _curve_rows, _curve_value
from memristor_mat.reporting.style import (
    STAT_LABELS,
    _new_figure,
    curve_label,
    drawn_label,
    noise_axis_label,
    style_context,
    wrap_title,
)

__all__ = ["plot_sigma_heatmap", "trained_configurations"]


def trained_configurations(
    summary: pd.DataFrame, methods: Sequence[str] | None = None
) -> list[tuple[str, float]]:
    """The trained configurations of a summary as the heatmaps' rows show them, in their order:
    ``(method, value of its swept setting)`` (MAT's sigma_train, QAT's levels, ...; 0 for a
    method that sweeps none), vanilla on top, then the methods in registry order (methods
    not in the registry last, by name), each method's values ascending.

    ``methods``: the methods to keep (default: every method in the summary), in that order;
    vanilla is put on top when the summary has it. Raises ``ValueError`` naming a requested
    method the summary does not have.
    """
    present = summary["method"].unique().tolist()
    order = list(registry.METHODS) + sorted(m for m in present if m not in registry.METHODS)
    wanted = [m for m in order if m in present] if methods is None else list(methods)
    missing = [m for m in wanted if m not in present]
    if missing or not wanted:
        raise ValueError(f"method(s) {missing or wanted} not in the summary; available methods: {sorted(present)}")
    if methods is not None and "vanilla" not in wanted and "vanilla" in present:
        wanted.insert(0, "vanilla")
    curves = []
    for method in wanted:
        values = sorted({_curve_value(row) for _, row in summary[summary["method"] == method].iterrows()})
        curves += [(method, value) for value in values]
    return curves


def plot_sigma_heatmap(
    summary: pd.DataFrame,
    *,
    methods: Sequence[str] | None = None,
    stat: str = "mean",
    title: str | None = None,
) -> tuple[Figure, pd.DataFrame]:
    """Heatmap of accuracy (``stat``, default mean, %): one row per trained configuration
    (method and the value of its swept setting: MAT's sigma_train, QAT's levels, ...), vanilla
    on top, then the methods in registry order; columns the inference noise level (%).

    ``methods``: the methods to show (default: every method in the summary). Returns
    ``(fig, table)``; the table is the annotated matrix: columns ``method``, ``label``,
    ``sigma_train_pct``, the other settings of the registry (``levels``, ``noise_sd``) and one
    column per noise level named by its percentage (``"0"``, ``"5"``, ...); missing cells are
    NaN (blank in the figure).
    """
    _check_stats(summary, stat, None)
    curves = trained_configurations(summary, methods)  # (method, value) in display order
    wanted = list(dict.fromkeys(method for method, _ in curves))
    settings = [c for c in registry.SETTING_COLUMNS[1:] if c in summary.columns]
    levels = sorted(summary.loc[summary["method"].isin(wanted), "noise_level_pct"].astype(float).unique())
    matrix = np.full((len(curves), len(levels)), np.nan)
    records = []
    for i, (method, value) in enumerate(curves):
        rows = _curve_rows(summary, method, value)
        for level, cell in zip(rows["noise_level_pct"].astype(float), rows[stat].astype(float)):
            matrix[i, levels.index(level)] = cell
        first = rows.iloc[0]
        records.append({"method": method, "label": curve_label(method, value),
                        "sigma_train_pct": round(100.0 * float(first["sigma_train"]), 6),
                        **{c: first[c] for c in settings}})

    row_labels = [drawn_label(r["label"]) for r in records]
    col_labels = [f"{lv:g}" for lv in levels]
    table = pd.concat([pd.DataFrame(records), pd.DataFrame(matrix, columns=col_labels)], axis=1)
    table.columns.name = "noise_level_pct"

    n_rows, n_cols = matrix.shape
    width = min(max(6.4, 3.0 + 0.75 * n_cols), 14.0)
    height = min(max(3.0, 1.3 + 0.42 * n_rows), 12.0)
    with style_context():
        fig, ax = _new_figure((width, height))
        annotated_heatmap(ax, matrix, row_labels, col_labels, stat=stat,
                          row_groups=[curve[0] for curve in curves], fontsize="small")
        ax.set_xlabel(noise_axis_label(summary))
        ax.set_ylabel("Training method")
        ax.tick_params(axis="y", rotation=0)
        ax.tick_params(axis="x", rotation=0)
        ax.grid(False)
        if title:
            ax.set_title(wrap_title(title), loc="left")
    return fig, table


def annotated_heatmap(ax, matrix: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], *, stat: str,
                      row_groups: Sequence = (), col_groups: Sequence = (), fontsize: str = "small",
                      difference_label: str | None = None, annotations: np.ndarray | None = None,
                      **heatmap_options) -> None:
    """Accuracy cells annotated with their value (viridis over the finite values), and white
    rules where ``row_groups`` / ``col_groups`` (one key per row / column, e.g. the method)
    change: the heatmaps of this package share this look.

    ``difference_label``: the cells are differences (points), drawn on a diverging scale centred
    at 0 and symmetric about it, the colour bar labelled with this text. ``annotations``: the
    cells' texts (default: the values, one decimal)."""
    finite = np.isfinite(matrix).any()
    if difference_label is not None:
        bound = float(np.nanmax(np.abs(matrix))) if finite else 1.0
        colours = dict(cmap="vlag", vmin=-bound, vmax=bound)  # blue below 0, white at 0, red above
        label = difference_label
    else:
        colours = dict(cmap="viridis", vmin=float(np.nanmin(matrix)) if finite else None,
                       vmax=float(np.nanmax(matrix)) if finite else None)
        label = f"{STAT_LABELS.get(stat, stat).capitalize()} test accuracy (%)"
    sns.heatmap(
        pd.DataFrame(matrix, index=row_labels, columns=col_labels),
        ax=ax,
        annot=True if annotations is None else annotations,
        fmt=".1f" if annotations is None else "",
        linewidths=0.6,
        linecolor="white",
        annot_kws={"fontsize": fontsize},
        cbar_kws={"label": label},
        **colours,
        **heatmap_options,
    )
    for i in range(1, len(row_groups)):
        if row_groups[i] != row_groups[i - 1]:
            ax.axhline(i, color="white", linewidth=3)
    for j in range(1, len(col_groups)):
        if col_groups[j] != col_groups[j - 1]:
            ax.axvline(j, color="white", linewidth=3)
