"""Figures of the quantisation-aware training methods ``qat`` and ``qat_noise`` (SPEC §2, §2.1, §6).

The method registry names them as the figures of these methods
(``memristor_mat.reporting.quantization:plot_accuracy_vs_levels`` and ``...:plot_accuracy_vs_qat_noise``).
They follow :mod:`memristor_mat.reporting.curves`: each takes the summary table of
:func:`memristor_mat.reporting.summary.summarise` (accuracy statistics in percent) and returns
``(figure, table)``, the table holding exactly the numbers drawn, one row per point:

* ``element``: ``"curve"`` (ours) or ``"published"`` (the original study's number),
* ``label`` (the legend's, in plain text: the figure draws ``σ_inference`` with a subscript), ``method``, ``levels``, ``noise_sd``, ``sigma_inference``,
  ``noise_level_pct``, ``n_models`` and ``n_draws`` (where the summary has them),
* the plotted statistics under their own names (``mean``, ``p12``, ``p88``, ...; a published
  point gives its number under its own statistic, e.g. ``mean``).

The x axis is the method's setting (the number of levels, or the training noise sd), and there
is one line per inference noise level (``sigma_inference``), in shades of the method's colour:
the noise-free line darkest, lighter with more inference noise.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

from memristor_mat.reporting.style import (
    ACCURACY_AXIS_LABEL,
    METHOD_MARKERS,
    STAT_LABELS,
    _band_label,
    _new_figure,
    drawn_label,
    method_color,
    method_label,
    noise_axis_label,
    sampling_label,
    style_context,
    wrap_title,
)

__all__ = ["plot_accuracy_vs_levels", "plot_accuracy_vs_qat_noise", "format_noise_sd"]

_ATOL = 1e-9
#: the symlog axis' linear range when the summary has no positive noise_sd
DEFAULT_LINTHRESH = 1e-5
#: columns of the summary the figures need besides the statistics
_NEEDED = ("method", "levels", "noise_sd", "sigma_inference", "noise_level_pct")
#: columns of a published table the figures need
_PUBLISHED_NEEDED = ("method", "levels", "noise_sd", "sigma_inference", "statistic", "accuracy_pct")
_KEY_COLUMNS = ("task", "dataset", "arch", "noise_model", "reference", "sigma_train")


def _marker(method: str) -> str:
    return METHOD_MARKERS.get(method, "o")


def _shades(method: str, count: int) -> list:
    """``count`` shades of the method's colour, darkest first (the noise-free line)."""
    color = method_color(method)
    if count <= 1:
        return [color]
    return sns.blend_palette(
        [sns.set_hls_values(color, l=0.22), color, sns.set_hls_values(color, l=0.72)], n_colors=count
    )


def _level_label(sigma_inference: float) -> str:
    if abs(float(sigma_inference)) <= _ATOL:
        return "no inference noise"
    return f"σ_inference = {100 * float(sigma_inference):g}%"


def format_noise_sd(value: float) -> str:
    """A noise_sd as the axis shows it: ``0``, ``1e-5``, ``2.5e-3``, ``0.01``, ``0.1``."""
    value = float(value)
    if abs(value) <= 0.0:
        return "0"
    if 1e-2 <= abs(value) < 1e3:
        return f"{value:g}"
    exponent = math.floor(math.log10(abs(value)))
    mantissa = round(value / 10.0 ** exponent, 6)
    if abs(mantissa) >= 10:  # rounding pushed it to the next decade
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:g}e{exponent}"


def _check_summary(summary: pd.DataFrame, method: str, center: str, band: tuple[str, str] | None) -> pd.DataFrame:
    """The rows of ``method``, after checking the columns the figure needs."""
    if band is not None and len(band) != 2:
        raise ValueError(f"band must be a pair of column names, got {band!r}")
    wanted = [center] + (list(band) if band is not None else [])
    missing = [c for c in wanted if c not in summary.columns]
    if missing:
        raise ValueError(f"summary has no column(s) {missing}; it has {list(summary.columns)}")
    missing = [c for c in _NEEDED if c not in summary.columns]
    if missing:
        raise ValueError(f"summary has no column(s) {missing} (a summary written before the "
                         f"method settings levels / noise_sd existed?); it has {list(summary.columns)}")
    rows = summary[summary["method"] == method]
    if rows.empty:
        raise ValueError(
            f"the summary has no rows of method {method!r} ({method_label(method)}); available methods: "
            f"{sorted(summary['method'].unique().tolist())}"
        )
    return rows


def _select_levels(rows: pd.DataFrame, noise_levels: Sequence[float] | None) -> list[float]:
    """The inference noise levels (fractions) to draw: all present, or the requested ones."""
    present = sorted({round(float(s), 9) for s in rows["sigma_inference"]})
    if noise_levels is None:
        return present
    chosen = []
    for level in noise_levels:
        match = [p for p in present if abs(p - float(level)) <= _ATOL]
        if not match:
            raise ValueError(
                f"inference noise level {float(level):g} (a fraction: 0.1 is 10%) is not in the summary; "
                f"available: {present}"
            )
        if match[0] not in chosen:
            chosen.append(match[0])
    if not chosen:
        raise ValueError("noise_levels is empty: give at least one inference noise level (a fraction)")
    return sorted(chosen)


def _check_unique(rows: pd.DataFrame, x_column: str, method: str) -> None:
    key = rows.loc[:, [x_column]].assign(_s=rows["sigma_inference"].astype(float).round(9))
    if key.duplicated().any():
        distinct = [c for c in _KEY_COLUMNS if c in rows.columns and rows[c].nunique() > 1]
        raise ValueError(
            f"method {method!r} has several summary rows per ({x_column}, sigma_inference) (they differ "
            f"in {distinct or 'no key column'}); filter the summary to one task / dataset / arch / "
            "noise model / reference first"
        )


def _curve_table(rows: pd.DataFrame, label: str, center: str, band: tuple[str, str] | None) -> pd.DataFrame:
    cols = ["method", "levels", "noise_sd", "sigma_inference", "noise_level_pct"]
    cols += [c for c in ("n_models", "n_draws") if c in rows.columns]
    stats = [center] + [b for b in (band or ()) if b != center]
    table = rows.loc[:, cols + stats].copy()
    table.insert(0, "label", label)
    table.insert(0, "element", "curve")
    return table


def _published_rows(published: pd.DataFrame | None, method: str, levels: int | None) -> pd.DataFrame | None:
    """The published rows of ``method`` (of ``levels`` levels, if given); None if there are none."""
    if published is None or published.empty or "method" not in published.columns:
        return None
    rows = published[published["method"] == method]
    if rows.empty:
        return None
    missing = [c for c in _PUBLISHED_NEEDED if c not in rows.columns]
    if missing:
        raise ValueError(f"published numbers of {method!r} have no column(s) {missing}; "
                         f"they have {list(rows.columns)}")
    if levels is not None:
        rows = rows[rows["levels"].astype(int) == int(levels)]
    return rows if not rows.empty else None


def _draw(
    ax,
    rows: pd.DataFrame,
    *,
    method: str,
    x_column: str,
    center: str,
    band: tuple[str, str] | None,
    noise_levels: Sequence[float] | None,
    published: pd.DataFrame | None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """One line per inference noise level (and the published points); returns the table and
    every x value drawn."""
    _check_unique(rows, x_column, method)
    chosen = _select_levels(rows, noise_levels)
    colors = dict(zip(chosen, _shades(method, len(chosen))))
    marker = _marker(method)
    tables, xs = [], []
    for level in chosen:
        curve = rows[np.isclose(rows["sigma_inference"].astype(float), level, rtol=0.0, atol=_ATOL)]
        curve = curve.sort_values(x_column)
        x = curve[x_column].to_numpy(dtype=float)
        label = _level_label(level)
        if band is not None:
            ax.fill_between(x, curve[band[0]].to_numpy(dtype=float), curve[band[1]].to_numpy(dtype=float),
                            color=colors[level], alpha=0.15, linewidth=0)
        ax.plot(x, curve[center].to_numpy(dtype=float), color=colors[level], marker=marker, label=drawn_label(label),
                markeredgecolor="white", markeredgewidth=0.6)
        tables.append(_curve_table(curve, label, center, band))
        xs.append(x)
    if published is not None:
        for (level, statistic), part in published.groupby(
            [published["sigma_inference"].astype(float).round(9), "statistic"], sort=True
        ):
            if level not in colors:  # only beside a line that is drawn
                continue
            part = part.sort_values(x_column)
            x = part[x_column].to_numpy(dtype=float)
            label = f"Published ({statistic}), {_level_label(level)}"
            ax.plot(x, part["accuracy_pct"].to_numpy(dtype=float), color=colors[level], linestyle=":",
                    marker=marker, markerfacecolor="none", label=drawn_label(label))
            tables.append(pd.DataFrame({
                "element": "published", "label": label, "method": method,
                "levels": part["levels"].astype(int).to_numpy(), "noise_sd": part["noise_sd"].astype(float).to_numpy(),
                "sigma_inference": part["sigma_inference"].astype(float).to_numpy(),
                "noise_level_pct": (100.0 * part["sigma_inference"].astype(float)).round(6).to_numpy(),
                statistic: part["accuracy_pct"].astype(float).to_numpy(),
            }))
            xs.append(x)
    table = pd.concat(tables, ignore_index=True)
    table["levels"] = table["levels"].astype(int)
    return table, np.concatenate(xs)


def _finish(ax, rows: pd.DataFrame, legend_title: str, center: str, band: tuple[str, str] | None,
            title: str | None) -> None:
    ax.set_ylabel(ACCURACY_AXIS_LABEL)
    ax.set_ylim(top=min(ax.get_ylim()[1], 101.0))
    lines = [legend_title]
    if "n_models" in rows.columns:
        lines.append(sampling_label(rows))
    lines.append(f"Line: {STAT_LABELS.get(center, center)}")
    if band is not None:
        lines.append(f"Band: {_band_label(band)}")
    lines.append(noise_axis_label(rows) + ":")  # introduces the entries: one per inference noise level
    # Outside the axes, right: never hides a curve, whatever the data.
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, title="\n".join(lines),
              fontsize="small", title_fontsize="small", alignment="left")
    if title:
        ax.set_title(wrap_title(title), loc="left")


def plot_accuracy_vs_levels(
    summary: pd.DataFrame,
    *,
    center: str = "mean",
    band: Sequence[str] | None = ("p12", "p88"),
    published: pd.DataFrame | None = None,
    title: str | None = None,
    noise_levels: Sequence[float] | None = None,
) -> tuple[Figure, pd.DataFrame]:
    """``qat``: accuracy (%) against the number of quantisation levels per tensor (log2 axis,
    ticks at the levels drawn), one line per inference noise level (all in the summary, or the
    fractions in ``noise_levels``), the ``center`` statistic with a ``band`` (a pair of summary
    columns, None for none).

    ``published``: :func:`memristor_mat.reporting.summary.published_numbers` of the task (with columns
    ``levels`` and ``noise_sd``); its ``qat`` rows are drawn dotted with hollow markers beside
    the line of the same inference noise level, if that line is drawn.

    Returns ``(fig, table)`` (see the module's docstring). Raises ``ValueError`` if the summary
    has no ``qat`` rows, lacks a requested statistic or noise level, or holds several rows per
    (levels, sigma_inference) (several tasks: filter first).
    """
    method = "qat"
    band = tuple(band) if band is not None else None
    rows = _check_summary(summary, method, center, band)
    if (rows["levels"].astype(int) < 2).any():
        raise ValueError(f"{method!r} rows with levels < 2 (not quantised): "
                         f"{sorted(rows['levels'].astype(int).unique().tolist())}")
    with style_context():
        fig, ax = _new_figure()
        table, xs = _draw(ax, rows, method=method, x_column="levels", center=center, band=band,
                          noise_levels=noise_levels, published=_published_rows(published, method, None))
        ax.set_xscale("log", base=2)
        ticks = sorted({int(x) for x in xs})
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(min(ticks) / 2 ** 0.25, max(ticks) * 2 ** 0.25)  # room for the end markers
        ax.set_xlabel("Quantisation levels per tensor (log scale)")
        _finish(ax, rows, method_label(method), center, band, title)
    return fig, table


def plot_accuracy_vs_qat_noise(
    summary: pd.DataFrame,
    *,
    center: str = "mean",
    band: Sequence[str] | None = ("p12", "p88"),
    published: pd.DataFrame | None = None,
    title: str | None = None,
    noise_levels: Sequence[float] | None = None,
) -> tuple[Figure, pd.DataFrame]:
    """``qat_noise``: accuracy (%) against the absolute training noise sd added after quantising
    (``noise_sd``), on a symlog axis so that noise_sd = 0 is shown (linear below the smallest
    positive noise_sd drawn, or below 1e-5 if there is none; labelled ticks at 0 and the powers
    of ten, unlabelled ones at the other values drawn), one line per inference noise level, as
    :func:`plot_accuracy_vs_levels`. The legend states the number of levels.

    ``published``: as :func:`plot_accuracy_vs_levels`; only its ``qat_noise`` rows with the
    summary's number of levels are drawn. Raises ``ValueError`` as that function does, and if
    the ``qat_noise`` rows have several numbers of levels.
    """
    method = "qat_noise"
    band = tuple(band) if band is not None else None
    rows = _check_summary(summary, method, center, band)
    level_counts = sorted(rows["levels"].astype(int).unique().tolist())
    if len(level_counts) != 1:
        raise ValueError(f"{method!r} rows have several numbers of levels {level_counts}; "
                         "filter the summary to one first")
    levels = level_counts[0]
    with style_context():
        fig, ax = _new_figure()
        table, xs = _draw(ax, rows, method=method, x_column="noise_sd", center=center, band=band,
                          noise_levels=noise_levels, published=_published_rows(published, method, levels))
        positive = sorted({float(x) for x in xs if x > 0})
        linthresh = positive[0] if positive else DEFAULT_LINTHRESH
        ax.set_xscale("symlog", linthresh=linthresh)
        top = positive[-1] if positive else linthresh
        decades = [10.0 ** k for k in range(math.ceil(math.log10(linthresh) - 1e-9),
                                            math.floor(math.log10(top) + 1e-9) + 1)]
        major = [0.0] + (decades if decades else positive)
        minor = [x for x in positive if not any(math.isclose(x, d, rel_tol=1e-9) for d in major)]
        ax.xaxis.set_major_locator(FixedLocator(major))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: format_noise_sd(value)))
        ax.xaxis.set_minor_locator(FixedLocator(minor))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(-0.5 * linthresh, top * 10 ** 0.15)  # room for the end markers
        ax.set_xlabel("Training noise sd after quantising (absolute; symlog scale)")
        _finish(ax, rows, f"{method_label(method)}, {levels} levels", center, band, title)
    return fig, table
