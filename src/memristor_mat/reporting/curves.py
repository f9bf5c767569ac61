"""Accuracy against inference noise: one line per trained configuration, per task or side by
side for several tasks (SPEC §6).

Every plot function takes the summary table of :func:`memristor_mat.reporting.summary.summarise`
(accuracy statistics in percent) and returns ``(figure, table)`` where ``table`` is a tidy
DataFrame holding exactly the numbers drawn, to be written next to the figure (see
:mod:`memristor_mat.reporting.style` for the style they are drawn in).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from memristor_mat import methods as registry
from memristor_mat.reporting.style import (
    _SIGMA_ATOL,
    ACCURACY_AXIS_LABEL,
    METHOD_MARKERS,
    STAT_LABELS,
    _band_label,
    _fmt_pct,
    _new_figure,
    _setting_column,
    curve_colors,
    curve_label,
    drawn_label,
    method_color,
    method_label,
    method_shades,
    noise_axis_label,
    style_context,
    wrap_title,
)

__all__ = ["headline_curves", "plot_accuracy_vs_noise", "plot_sigma_train_curves", "plot_gain_vs_noise",
           "plot_task_comparison"]


# --------------------------------------------------------------------------------------------
# selection helpers


def _available_curves(summary: pd.DataFrame) -> list[tuple[str, float]]:
    curves = {(str(row["method"]), _curve_value(row)) for _, row in summary.iterrows()}
    return sorted(curves)


def _curve_value(row) -> float:
    column = _setting_column(str(row["method"]))
    return 0.0 if column is None or column not in row else float(row[column])


def _curve_rows(summary: pd.DataFrame, method: str, value: float) -> pd.DataFrame:
    """The summary rows of one (method, setting value) curve, sorted by noise level; the value is
    the method's swept setting (sigma_train for MAT, levels for QAT, ...)."""
    column = _setting_column(method)
    mask = summary["method"] == method
    if column is not None and column in summary.columns:
        mask &= np.isclose(summary[column].astype(float), float(value), rtol=0.0, atol=_SIGMA_ATOL)
    rows = summary.loc[mask]
    what = f"curve (method={method!r}, {column or 'sigma_train'}={float(value):g})"
    if rows.empty:
        raise ValueError(
            f"{what} is not in the summary; available (method, setting): {_available_curves(summary)}"
        )
    duplicated = rows["sigma_inference"].duplicated()
    if duplicated.any():
        distinct = [
            c for c in ("task", "dataset", "arch", "noise_model", "reference")
            if c in rows.columns and rows[c].nunique() > 1
        ]
        raise ValueError(
            f"{what} has several rows per "
            f"sigma_inference (they differ in {distinct or 'no key column'}); filter the summary "
            "to one task / dataset / arch / noise model / reference first"
        )
    return rows.sort_values("sigma_inference")


def _check_stats(summary: pd.DataFrame, center: str, band: Sequence[str] | None) -> None:
    wanted = [center] + (list(band) if band is not None else [])
    if band is not None and len(band) != 2:
        raise ValueError(f"band must be a pair of column names, got {band!r}")
    missing = [c for c in wanted if c not in summary.columns]
    if missing:
        raise ValueError(f"summary has no column(s) {missing}; it has {list(summary.columns)}")
    for col in ("method", "sigma_train", "sigma_inference", "noise_level_pct"):
        if col not in summary.columns:
            raise ValueError(f"summary has no column {col!r}")


def _curve_table(
    rows: pd.DataFrame, label: str, center: str, band: Sequence[str] | None
) -> pd.DataFrame:
    cols = ["method", "sigma_train"] + [c for c in registry.SETTING_COLUMNS[1:] if c in rows.columns]
    cols += ["sigma_inference", "noise_level_pct"]
    cols += [c for c in ("n_models", "n_draws", "n_samples") if c in rows.columns]
    stats = [center] + [b for b in (band or ()) if b != center]
    table = rows.loc[:, cols + stats].copy()
    table.insert(0, "label", label)
    table.insert(0, "element", "curve")
    table.insert(4, "sigma_train_pct", (100.0 * table["sigma_train"].astype(float)).round(6))
    return table


def _draw_curves(
    ax,
    summary: pd.DataFrame,
    curves: Sequence[tuple[str, float]],
    *,
    labels: Sequence[str],
    colors: Sequence,
    center: str,
    band: Sequence[str] | None,
    clean_reference: tuple[str, float] | None,
    legend_title: str | None,
    published: pd.DataFrame | None = None,
    cap_top: bool = True,
) -> pd.DataFrame:
    """``cap_top``: keep the accuracy axis below 101 % here (False for a panel of a shared axis,
    which its figure caps once every panel is drawn: a limit set here would stop the later
    panels' curves from widening the axis)."""
    tables = []
    selected = [_curve_rows(summary, m, s) for m, s in curves]  # validate all before drawing
    clean = None
    if clean_reference is not None:
        reference_rows = _curve_rows(summary, *clean_reference)
        clean = reference_rows[
            np.isclose(reference_rows["sigma_inference"].astype(float), 0.0, atol=_SIGMA_ATOL)
        ]
        if clean.empty:
            raise ValueError(
                f"clean reference {tuple(clean_reference)} has no sigma_inference = 0 row; "
                f"its levels (%): {sorted(reference_rows['noise_level_pct'].tolist())}"
            )
    for (method, _sigma), rows, label, color in zip(curves, selected, labels, colors):
        x = rows["noise_level_pct"].to_numpy(dtype=float)
        y = rows[center].to_numpy(dtype=float)
        if band is not None:
            ax.fill_between(
                x,
                rows[band[0]].to_numpy(dtype=float),
                rows[band[1]].to_numpy(dtype=float),
                color=color,
                alpha=0.18,
                linewidth=0,
            )
        ax.plot(
            x, y, color=color, marker=METHOD_MARKERS.get(method, "o"), label=drawn_label(label),
            markeredgecolor="white", markeredgewidth=0.6,
        )
        tables.append(_curve_table(rows, label, center, band))
        if published is not None:
            tables += _draw_published(ax, published, method, _sigma, label, color)

    if clean is not None:
        value = float(clean[center].iloc[0])
        ref_label = f"{curve_label(*clean_reference)}, no noise ({value:.1f}%)"
        ax.axhline(value, color="#444444", linestyle="-.", linewidth=1.1, label=drawn_label(ref_label),
                   zorder=1)
        ref_table = _curve_table(clean, ref_label, center, None)
        ref_table["element"] = "clean_reference"
        tables.append(ref_table)

    ax.set_xlabel(noise_axis_label(summary))
    ax.set_ylabel(ACCURACY_AXIS_LABEL)
    all_x = pd.concat([t["noise_level_pct"] for t in tables if (t["element"] == "curve").any()])
    x_lo, x_hi = float(all_x.min()), float(all_x.max())
    pad = 0.025 * (x_hi - x_lo) if x_hi > x_lo else 1.0
    ax.set_xlim(x_lo - pad, x_hi + pad)  # room for the end markers
    if cap_top:
        ax.set_ylim(top=min(ax.get_ylim()[1], 101.0))
    stat_line = f"Line: {STAT_LABELS.get(center, center)}"
    if band is not None:
        stat_line += f"\nBand: {_band_label(band)}"
    title_text = f"{legend_title}\n{stat_line}" if legend_title else stat_line
    # Outside the axes, right: never hides a curve, whatever the data.
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
              title=title_text, fontsize="small", title_fontsize="small", alignment="left")
    table = pd.concat(tables, ignore_index=True)
    return table


def _draw_published(ax, published: pd.DataFrame, method: str, sigma_train: float, label: str, color) -> list:
    """The original study's numbers for one curve, dotted with hollow markers (none: nothing)."""
    column = _setting_column(method) or "sigma_train"
    rows = published[(published["method"] == method)
                     & np.isclose(published[column].astype(float), sigma_train, atol=_SIGMA_ATOL)]
    if rows.empty:
        return []
    rows = rows.sort_values("sigma_inference")
    x = 100.0 * rows["sigma_inference"].to_numpy(dtype=float)
    published_label = f"{label}, published ({rows['statistic'].iloc[0]})"
    ax.plot(x, rows["accuracy_pct"].to_numpy(dtype=float), color=color, linestyle=":",
            marker=METHOD_MARKERS.get(method, "o"), markerfacecolor="none", label=drawn_label(published_label))
    table = pd.DataFrame({
        "element": "published", "label": published_label, "method": method, "sigma_train": sigma_train,
        "sigma_train_pct": round(100.0 * sigma_train, 6), "sigma_inference": rows["sigma_inference"].to_numpy(),
        "noise_level_pct": x, rows["statistic"].iloc[0]: rows["accuracy_pct"].to_numpy(dtype=float),
    })
    return [table]


def headline_curves(summary: pd.DataFrame, headline_method: str, headline_sigma_train: float,
                    baseline: str = "vanilla") -> list[tuple[str, float]]:
    """The curves of a task's accuracy_vs_noise figure (notebooks/figures.ipynb): the baseline
    (``figures.baseline_method``, vanilla by default), the other trained methods that sweep no
    setting (noisy updates), the headline configuration, then every other method that sweeps
    ``sigma_train`` and trained a model at the headline's (MAT fine-tuned and from scratch, a
    new method of the registry), in the registry's order."""
    trained = set(summary["method"])
    headline = (headline_method, float(headline_sigma_train))
    curves = [(baseline, 0.0)]
    curves += [(name, 0.0) for name, entry in registry.METHODS.items()
               if entry.sweep is None and name in trained and (name, 0.0) not in curves and name != headline_method]
    curves.append(headline)
    at_headline = np.isclose(summary["sigma_train"].astype(float), headline[1], rtol=0, atol=1e-9)
    curves += [(name, headline[1]) for name, entry in registry.METHODS.items()
               if entry.sweep == "sigma_train" and name != headline_method
               and (at_headline & (summary["method"] == name)).any()]
    return curves


def plot_accuracy_vs_noise(
    summary: pd.DataFrame,
    *,
    curves: Sequence[tuple[str, float]],
    center: str = "mean",
    band: Sequence[str] | None = ("p12", "p88"),
    clean_reference: tuple[str, float] | None = ("vanilla", 0.0),
    title: str | None = None,
    published: pd.DataFrame | None = None,
) -> tuple[Figure, pd.DataFrame]:
    """Accuracy (%) against inference noise level (%), one line per (method, sigma_train).

    ``published``: rows of :func:`memristor_mat.reporting.summary.published_numbers` for this task; each
    curve they cover is drawn beside ours as a dotted line (``element == "published"``).

    Each curve is the ``center`` statistic with a shaded ``band`` (a pair of summary columns,
    e.g. ``("p12", "p88")`` or ``("q25", "q75")``; ``None`` for no band). A dash-dot line marks
    the clean (sigma_inference = 0) accuracy of ``clean_reference`` (``None`` for none).

    ``summary`` must hold one task / dataset / arch / noise model / reference per curve.
    Returns ``(fig, table)``: the table has one row per plotted point (``element == "curve"``)
    and one for the reference line (``element == "clean_reference"``), with the columns
    ``label`` (legend label, plain text: the figure draws ``σ_train`` with a subscript), method, sigma_train(_pct), sigma_inference, noise_level_pct,
    n_models, n_draws and the plotted statistics under their own names.
    Raises ``ValueError`` naming a requested curve that is not in the summary.
    """
    if not curves:
        raise ValueError("curves is empty: give at least one (method, sigma_train) pair")
    band = tuple(band) if band is not None else None
    _check_stats(summary, center, band)
    curves = [(str(m), float(s)) for m, s in curves]
    with style_context():
        fig, ax = _new_figure()
        table = _draw_curves(
            ax,
            summary,
            curves,
            labels=[curve_label(m, s) for m, s in curves],
            colors=curve_colors(curves),
            center=center,
            band=band,
            clean_reference=clean_reference,
            legend_title=None,
            published=published,
        )
        if title:
            ax.set_title(wrap_title(title), loc="left")
    return fig, table


def plot_sigma_train_curves(
    summary: pd.DataFrame,
    *,
    method: str = "mat",
    center: str = "mean",
    band: Sequence[str] | None = ("p12", "p88"),
    title: str | None = None,
    published: pd.DataFrame | None = None,
    reference: str = "vanilla",
) -> tuple[Figure, pd.DataFrame]:
    """Accuracy against inference noise, one curve per ``sigma_train`` of ``method`` (shades of
    a sequential palette, darker = larger sigma_train), plus ``reference`` (the task's baseline
    method, vanilla by default; if present) for reference.
    ``published``: as for :func:`plot_accuracy_vs_noise` (the original's curve of each
    sigma_train it published, dotted beside ours).

    Returns ``(fig, table)`` as :func:`plot_accuracy_vs_noise` (labels are the legend's, in plain
    text: ``σ_train = 10%``, ``Vanilla``; drawn as :func:`~memristor_mat.reporting.style.drawn_label`).
    """
    band = tuple(band) if band is not None else None
    _check_stats(summary, center, band)
    rows = summary[summary["method"] == method]
    if rows.empty:
        raise ValueError(
            f"method {method!r} is not in the summary; available methods: "
            f"{sorted(summary['method'].unique().tolist())}"
        )
    sigmas = sorted(float(s) for s in rows["sigma_train"].unique())
    curves: list[tuple[str, float]] = []
    labels: list[str] = []
    colors: list = []
    has_reference = method != reference and (summary["method"] == reference).any()
    if has_reference:
        curves.append((reference, 0.0))
        labels.append(method_label(reference))
        colors.append(method_color(reference))
    for sigma, shade in zip(sigmas, method_shades(method, len(sigmas))):
        curves.append((method, sigma))
        labels.append(f"σ_train = {_fmt_pct(100 * sigma)}")
        colors.append(shade)
    with style_context():
        fig, ax = _new_figure()
        table = _draw_curves(
            ax,
            summary,
            curves,
            labels=labels,
            colors=colors,
            center=center,
            band=band,
            clean_reference=(reference, 0.0) if has_reference else None,
            legend_title=method_label(method),
            published=published,
        )
        if title:
            ax.set_title(wrap_title(title), loc="left")
    return fig, table


def plot_gain_vs_noise(
    paired: pd.DataFrame,
    *,
    curves: Sequence[tuple[str, float]],
    baseline: str = "vanilla",
    title: str | None = None,
) -> tuple[Figure, pd.DataFrame]:
    """What each configuration gains over ``baseline`` at each inference noise level: the mean
    paired difference (percentage points) with its 95 % CI as the band, from
    :func:`memristor_mat.reporting.summary.paired_differences` (``paired``); one line per
    (method, setting) of ``curves`` (the baseline itself, at 0 by definition, is left out), a
    line at 0 for "no gain".

    Returns ``(fig, table)`` as :func:`plot_accuracy_vs_noise`, with the columns ``difference``,
    ``ci95_low``, ``ci95_high`` and ``baseline``. With nothing but the baseline to draw, the
    figure says so and the table is empty.
    """
    band = ("ci95_low", "ci95_high")
    shown = [(str(m), float(s)) for m, s in curves if str(m) != baseline]
    baseline_label = method_label(baseline)
    with style_context():
        fig, ax = _new_figure()
        if not shown or paired.empty:
            ax.text(0.5, 0.5, f"only {baseline_label} was trained: nothing to compare with it",
                    ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            table = pd.DataFrame(columns=["element", "label", "method", "sigma_train", "sigma_train_pct",
                                          "sigma_inference", "noise_level_pct", "difference", *band, "baseline"])
        else:
            _check_stats(paired, "difference", band)
            table = _draw_curves(
                ax,
                paired,
                shown,
                labels=[curve_label(m, s) for m, s in shown],
                colors=curve_colors(shown),
                center="difference",
                band=band,
                clean_reference=None,
                legend_title=f"Against {baseline_label}, paired:\nthe same model seed and device draw",
                cap_top=False,
            )
            table["baseline"] = baseline
            ax.axhline(0.0, color="#444444", linewidth=1.0, zorder=1)
            ax.set_ylabel(f"Accuracy − {baseline_label} (points)")
        if title:
            ax.set_title(wrap_title(title), loc="left")
    return fig, table


def plot_task_comparison(
    panels: Sequence[tuple[str, pd.DataFrame]],
    *,
    curves: Sequence[tuple[str, float]],
    center: str = "mean",
    band: Sequence[str] | None = ("p12", "p88"),
    title: str | None = None,
) -> tuple[Figure, pd.DataFrame]:
    """Side-by-side panels, one per task (e.g. spiking vs non-spiking network), each with the
    ``curves`` its summary has, on a shared accuracy axis. ``panels``: (panel title, summary).

    Returns ``(fig, table)`` as :func:`plot_accuracy_vs_noise`, with a ``panel`` column.
    """
    if not panels:
        raise ValueError("panels is empty: give at least one (title, summary) pair")
    band = tuple(band) if band is not None else None
    tables = []
    requested = [(m, float(s)) for m, s in curves]
    color_of = dict(zip(requested, curve_colors(requested)))  # the same colours in every panel
    with style_context():
        fig = Figure(figsize=(3.6 * len(panels) + 3.2, 4.0), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True))
        for index, (ax, (panel_title, summary)) in enumerate(zip(axes, panels)):
            _check_stats(summary, center, band)
            present = [(m, float(s)) for m, s in curves if (m, float(s)) in set(_available_curves(summary))]
            if not present:
                raise ValueError(f"panel {panel_title!r} has none of the curves {list(curves)}")
            table = _draw_curves(
                ax, summary, present,
                labels=[curve_label(m, s) for m, s in present],
                colors=[color_of[curve] for curve in present],
                center=center, band=band,
                clean_reference=("vanilla", 0.0) if ("vanilla", 0.0) in present else None,
                legend_title=None,
                cap_top=False,
            )
            ax.set_title(panel_title, loc="left", fontsize="medium")
            if index > 0:
                ax.set_ylabel("")
            table.insert(0, "panel", panel_title)
            tables.append(table)
        axes[0].set_ylim(top=min(axes[0].get_ylim()[1], 101.0))  # shared: every panel's curves drawn
        _merge_legends(axes, tables)
        if title:
            fig.suptitle(title, x=0.01, horizontalalignment="left", fontweight="bold")
    return fig, pd.concat(tables, ignore_index=True)


def _merge_legends(axes, tables: Sequence[pd.DataFrame]) -> None:
    """One legend, right of the last panel, naming every curve of every panel once (a curve of
    one panel only, e.g. noisy updates where the other network has none, keeps its entry); the
    clean-reference lines, one value per panel, share one entry with the values left to right."""
    clean_labels = [drawn_label(label) for table in tables
                    for label in table.loc[table["element"] == "clean_reference", "label"]]
    entries: dict[str, object] = {}
    clean_handle = None
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label in clean_labels:
                clean_handle = clean_handle or handle
            else:
                entries.setdefault(label, handle)
    if clean_handle is not None:
        if len(set(clean_labels)) == 1:
            entries[clean_labels[0]] = clean_handle
        else:  # "Vanilla, no noise (99.0%)" per panel -> "Vanilla, no noise (99.0% | 97.5%, left to right)"
            stem = clean_labels[0][:clean_labels[0].rindex("(")]
            numbers = [label[label.rindex("(") + 1:-1] for label in clean_labels]
            entries[f"{stem}({' | '.join(numbers)}, left to right)"] = clean_handle
    last = axes[-1].get_legend()
    title = last.get_title().get_text() if last is not None else None
    for ax in axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    axes[-1].legend(list(entries.values()), list(entries.keys()), loc="upper left", bbox_to_anchor=(1.02, 1.0),
                    borderaxespad=0.0, title=title, fontsize="small", title_fontsize="small", alignment="left")
