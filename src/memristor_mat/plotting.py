"""Publication figures of the accuracy summary (see :mod:`memristor_mat.summary`).

Every plot function takes the summary table (accuracy statistics in percent) and returns
``(figure, table)`` where ``table`` is a tidy DataFrame holding exactly the numbers drawn, to be
written next to the figure. Figures are built on :class:`matplotlib.figure.Figure` directly (no
pyplot state, nothing to close) inside the package style, so they look the same whether or not
:func:`apply_style` was called.
"""

from __future__ import annotations

import contextlib
import os
import textwrap
from pathlib import Path
from typing import Iterator, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: before pyplot (imported by seaborn) is loaded

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from memristor_mat import methods as registry  # noqa: E402
from memristor_mat.io import atomic_path  # noqa: E402

__all__ = [
    "METHOD_LABELS",
    "METHOD_COLORS",
    "METHOD_MARKERS",
    "STAT_LABELS",
    "apply_style",
    "style_context",
    "method_label",
    "method_color",
    "curve_label",
    "sampling_label",
    "save_figure",
    "plot_accuracy_vs_noise",
    "plot_sigma_train_curves",
    "plot_sigma_heatmap",
    "plot_task_comparison",
    "plot_heartbeat_traces",
]

#: Label, colour and marker of each method, from the method registry (memristor_mat.methods).
METHOD_LABELS: dict[str, str] = {name: m.label for name, m in registry.METHODS.items()}
_PALETTE = sns.color_palette("colorblind")  # 10 colour-blind-safe colours
#: A fixed colour per method, the same in every figure.
METHOD_COLORS: dict[str, tuple[float, float, float]] = {
    name: matplotlib.colors.to_rgb(m.color) for name, m in registry.METHODS.items()
}
_SPARE_COLORS = [_PALETTE[i] for i in (5, 6, 9, 8)]
METHOD_MARKERS: dict[str, str] = {name: m.marker for name, m in registry.METHODS.items()}

#: How each summary statistic is described in legends.
STAT_LABELS: dict[str, str] = {
    "mean": "mean",
    "median": "median",
    "std": "standard deviation",
    "q25": "25th percentile",
    "q75": "75th percentile",
    "p12": "12th percentile",
    "p88": "88th percentile",
    "ci95_low": "95% CI of the mean",
    "ci95_high": "95% CI of the mean",
}
_BAND_LABELS: dict[tuple[str, str], str] = {
    ("q25", "q75"): "interquartile range",
    ("p12", "p88"): "12th–88th percentile",
    ("ci95_low", "ci95_high"): "95% bootstrap CI of the mean",
}

NOISE_AXIS_LABEL = r"Inference noise $\sigma_\mathrm{inference}$ (%)"
#: R(W) of the noise reference (SPEC §1), as the axis states it
_REFERENCE_LABELS = {"2absmax": r"2 max$|W|$", "absmax": r"max$|W|$", "range": r"max $W$ − min $W$"}


def noise_axis_label(summary: pd.DataFrame) -> str:
    """The noise axis, naming what sigma is a fraction of when the summary has one reference
    (the original's CIFAR "10 %" is its MNIST "5 %": the axis must say which)."""
    references = summary["reference"].dropna().unique() if "reference" in summary.columns else []
    if len(references) == 1 and references[0] in _REFERENCE_LABELS:
        return NOISE_AXIS_LABEL[:-1] + f" of {_REFERENCE_LABELS[references[0]]})"
    return NOISE_AXIS_LABEL
ACCURACY_AXIS_LABEL = "Test accuracy (%)"
FIGSIZE = (7.4, 4.0)
_SIGMA_ATOL = 1e-9


def _style_rc() -> dict:
    rc = {}
    rc.update(sns.axes_style("whitegrid"))
    rc.update(sns.plotting_context("paper", font_scale=1.2))
    rc.update(
        {
            "axes.prop_cycle": matplotlib.cycler(color=_PALETTE),
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titleweight": "bold",
            "axes.titlelocation": "left",
            "grid.color": "#e3e3e3",
            "legend.frameon": True,
            "legend.framealpha": 0.9,
            "legend.edgecolor": "#cccccc",
            "lines.linewidth": 1.8,
            "lines.markersize": 5,
            "figure.dpi": 100,
            "savefig.dpi": 200,
            "savefig.bbox": "tight",
            "savefig.pad_inches": 0.05,
            "pdf.fonttype": 42,  # embed TrueType: editable text in the PDF
            "ps.fonttype": 42,
            "font.family": "sans-serif",
            "font.sans-serif": ["DejaVu Sans", "Arial", "Liberation Sans", "sans-serif"],
        }
    )
    return rc


def apply_style() -> None:
    """Set the package style globally (seaborn whitegrid, paper context, colour-blind palette)."""
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=1.2)
    matplotlib.rcParams.update(_style_rc())


@contextlib.contextmanager
def style_context() -> Iterator[None]:
    """The package style for the duration of a block, without changing global settings."""
    with matplotlib.rc_context(_style_rc()):
        yield


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def method_color(method: str) -> tuple[float, float, float]:
    """The method's fixed colour; methods not in :data:`METHOD_COLORS` get a spare colour
    chosen deterministically from their name."""
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    return _SPARE_COLORS[sum(method.encode("utf-8")) % len(_SPARE_COLORS)]


def _fmt_pct(value: float) -> str:
    return f"{float(value):g}%"


def method_shades(method: str, count: int) -> list:
    """``count`` shades of the method's colour, light to dark (darker = larger sigma_train);
    the method's own colour when ``count`` is 1."""
    if count <= 1:
        return [method_color(method)]
    color = method_color(method)
    return sns.blend_palette(
        [sns.set_hls_values(color, l=0.62), color, sns.set_hls_values(color, l=0.22)], n_colors=count
    )


def curve_colors(curves: Sequence[tuple[str, float]]) -> list:
    """One colour per (method, sigma_train) curve: the method's colour, or shades of it ordered
    by sigma_train where one method has several curves (so no two curves share a colour)."""
    sigmas: dict[str, list[float]] = {}
    for method, sigma in curves:
        sigmas.setdefault(method, []).append(float(sigma))
    shade_of = {
        (method, sigma): shade
        for method, levels in sigmas.items()
        for sigma, shade in zip(sorted(set(levels)), method_shades(method, len(set(levels))))
    }
    return [shade_of[(method, float(sigma))] for method, sigma in curves]


def _setting_column(method: str) -> str | None:
    """The summary column that tells the method's curves apart (its swept setting)."""
    setting = registry.curve_setting(method)
    return None if setting is None else setting.name


def curve_label(method: str, value: float) -> str:
    """Legend label, e.g. ``MAT (fine-tuned), σ_train = 20%`` or ``QAT, 4 levels``: the method and
    the value of its swept setting (nothing for a method that sweeps none, or sigma_train 0)."""
    label = method_label(method)
    setting = registry.curve_setting(method)
    if setting is not None and not np.isclose(float(value), 0.0, atol=_SIGMA_ATOL):
        label += f", {setting.label(value)}"
    return label


def _band_label(band: Sequence[str] | None) -> str | None:
    if band is None:
        return None
    low, high = band
    return _BAND_LABELS.get((low, high), f"{STAT_LABELS.get(low, low)} – {STAT_LABELS.get(high, high)}")


def wrap_title(title: str, width: int = 64) -> str:
    """Break a long title into lines, so that it never sets the figure's width."""
    return textwrap.fill(title, width=width, break_long_words=False)


def sampling_label(summary: pd.DataFrame) -> str:
    """``"5 models × 100 draws"`` (ranges such as ``"3–5 models"`` if they vary) for titles.

    Draws are the ``n_draws`` (noise draws per model) of the noisy levels
    (``sigma_inference > 0``): the noise-free level has one evaluation per model, not draws,
    and is left out of the count unless the summary has no other level. Summaries written
    before ``n_draws`` existed fall back to ``n_samples / n_models``.
    """
    if summary.empty:
        return "no data"
    noisy = summary["sigma_inference"].astype(float) > _SIGMA_ATOL
    rows = summary.loc[noisy] if noisy.any() else summary
    models = summary["n_models"].astype(int)
    if "n_draws" in rows.columns:
        draws = rows["n_draws"].astype(int)
    else:
        draws = (rows["n_samples"] / rows["n_models"]).round().astype(int)

    def span(series: pd.Series, noun: str) -> str:
        lo, hi = int(series.min()), int(series.max())
        count = f"{lo}" if lo == hi else f"{lo}–{hi}"
        return f"{count} {noun if hi != 1 else noun.rstrip('s')}"

    return f"{span(models, 'models')} × {span(draws, 'draws')}"


def save_figure(fig: Figure, directory: str | os.PathLike, stem: str) -> tuple[Path, Path]:
    """Write ``<directory>/<stem>.pdf`` and ``.png`` (200 dpi), each atomically.

    Returns ``(pdf_path, png_path)``. Output is reproducible: no creation date in the PDF,
    no software tag in the PNG.
    """
    directory = Path(directory)
    pdf_path = directory / f"{stem}.pdf"
    png_path = directory / f"{stem}.png"
    with style_context():
        with atomic_path(pdf_path) as tmp:
            fig.savefig(tmp, format="pdf", metadata={"CreationDate": None, "Creator": None,
                                                      "Producer": None})
        with atomic_path(png_path) as tmp:
            fig.savefig(tmp, format="png", dpi=200, metadata={"Software": None})
    return pdf_path, png_path


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
) -> pd.DataFrame:
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
            x, y, color=color, marker=METHOD_MARKERS.get(method, "o"), label=label,
            markeredgecolor="white", markeredgewidth=0.6,
        )
        tables.append(_curve_table(rows, label, center, band))
        if published is not None:
            tables += _draw_published(ax, published, method, _sigma, label, color)

    if clean is not None:
        value = float(clean[center].iloc[0])
        ref_label = f"{curve_label(*clean_reference)}, no noise ({value:.1f}%)"
        ax.axhline(value, color="#444444", linestyle="-.", linewidth=1.1, label=ref_label,
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
            marker=METHOD_MARKERS.get(method, "o"), markerfacecolor="none", label=published_label)
    table = pd.DataFrame({
        "element": "published", "label": published_label, "method": method, "sigma_train": sigma_train,
        "sigma_train_pct": round(100.0 * sigma_train, 6), "sigma_inference": rows["sigma_inference"].to_numpy(),
        "noise_level_pct": x, rows["statistic"].iloc[0]: rows["accuracy_pct"].to_numpy(dtype=float),
    })
    return [table]


def _new_figure(figsize=FIGSIZE) -> tuple[Figure, object]:
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    return fig, ax


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

    ``published``: rows of :func:`memristor_mat.summary.published_numbers` for this task; each
    curve they cover is drawn beside ours as a dotted line (``element == "published"``).

    Each curve is the ``center`` statistic with a shaded ``band`` (a pair of summary columns,
    e.g. ``("p12", "p88")`` or ``("q25", "q75")``; ``None`` for no band). A dash-dot line marks
    the clean (sigma_inference = 0) accuracy of ``clean_reference`` (``None`` for none).

    ``summary`` must hold one task / dataset / arch / noise model / reference per curve.
    Returns ``(fig, table)``: the table has one row per plotted point (``element == "curve"``)
    and one for the reference line (``element == "clean_reference"``), with the columns
    ``label`` (legend label), method, sigma_train(_pct), sigma_inference, noise_level_pct,
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
) -> tuple[Figure, pd.DataFrame]:
    """Accuracy against inference noise, one curve per ``sigma_train`` of ``method`` (shades of
    a sequential palette, darker = larger sigma_train), plus vanilla (if present) for reference.

    Returns ``(fig, table)`` as :func:`plot_accuracy_vs_noise` (labels are the legend's:
    ``σ_train = 10%``, ``Vanilla``).
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
    has_vanilla = method != "vanilla" and (summary["method"] == "vanilla").any()
    if has_vanilla:
        curves.append(("vanilla", 0.0))
        labels.append(method_label("vanilla"))
        colors.append(method_color("vanilla"))
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
            clean_reference=("vanilla", 0.0) if has_vanilla else None,
            legend_title=method_label(method),
        )
        if title:
            ax.set_title(wrap_title(title), loc="left")
    return fig, table


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
    present = summary["method"].unique().tolist()
    order = list(registry.METHODS) + sorted(m for m in present if m not in registry.METHODS)
    wanted = [m for m in order if m in present] if methods is None else list(methods)
    missing = [m for m in wanted if m not in present]
    if missing or not wanted:
        raise ValueError(f"method(s) {missing or wanted} not in the summary; available methods: {sorted(present)}")
    if methods is not None and "vanilla" not in wanted and "vanilla" in present:
        wanted.insert(0, "vanilla")
    settings = [c for c in registry.SETTING_COLUMNS[1:] if c in summary.columns]
    curves = []  # (method, value) in display order
    for method in wanted:
        values = sorted({_curve_value(row) for _, row in summary[summary["method"] == method].iterrows()})
        curves += [(method, value) for value in values]
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

    row_labels = [r["label"] for r in records]
    col_labels = [f"{lv:g}" for lv in levels]
    table = pd.concat([pd.DataFrame(records), pd.DataFrame(matrix, columns=col_labels)], axis=1)
    table.columns.name = "noise_level_pct"

    n_rows, n_cols = matrix.shape
    width = min(max(6.4, 3.0 + 0.75 * n_cols), 14.0)
    height = min(max(3.0, 1.3 + 0.42 * n_rows), 12.0)
    with style_context():
        fig, ax = _new_figure((width, height))
        sns.heatmap(
            pd.DataFrame(matrix, index=row_labels, columns=col_labels),
            ax=ax,
            annot=True,
            fmt=".1f",
            cmap="viridis",
            vmin=float(np.nanmin(matrix)) if np.isfinite(matrix).any() else None,
            vmax=float(np.nanmax(matrix)) if np.isfinite(matrix).any() else None,
            linewidths=0.6,
            linecolor="white",
            annot_kws={"fontsize": "small"},
            cbar_kws={"label": f"{STAT_LABELS.get(stat, stat).capitalize()} test accuracy (%)"},
        )
        # white rules between methods
        for i in range(1, n_rows):
            if curves[i][0] != curves[i - 1][0]:
                ax.axhline(i, color="white", linewidth=3)
        ax.set_xlabel(noise_axis_label(summary))
        ax.set_ylabel("Training method")
        ax.tick_params(axis="y", rotation=0)
        ax.tick_params(axis="x", rotation=0)
        ax.grid(False)
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
            )
            ax.set_title(panel_title, loc="left", fontsize="medium")
            if index < len(axes) - 1:
                ax.get_legend().remove()
            if index > 0:
                ax.set_ylabel("")
            table.insert(0, "panel", panel_title)
            tables.append(table)
        if title:
            fig.suptitle(title, x=0.01, horizontalalignment="left", fontweight="bold")
    return fig, pd.concat(tables, ignore_index=True)


#: quantities of a heartbeat trace table (see memristor_mat.traces), top to bottom
TRACE_PANELS = (
    ("signal", "ECG (mV)"),
    ("event", "Delta events"),
    ("spike", "Hidden neuron"),
    ("readout", "Readout"),
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
                _draw_trace_panel(ax, quantity, rows)
                if column == 0:
                    ax.set_ylabel(ylabel)
            predicted = beat_rows.dropna(subset=["prediction"])["prediction"]
            verdict = ""
            if len(predicted):
                verdict = f"; {method_label(method)} says {'abnormal' if int(predicted.iloc[0]) else 'normal'}"
            axes[0, column].set_title(f"Test beat {beat}: {label}{verdict}", loc="left", fontsize="medium")
            axes[-1, column].set_xlabel("Time (ms)")
        if title:
            fig.suptitle(title, x=0.01, horizontalalignment="left", fontweight="bold")
    return fig, shown.reset_index(drop=True)


def _draw_trace_panel(ax, quantity: str, rows: pd.DataFrame) -> None:
    time_ms = 1000.0 * rows["time_s"].to_numpy(dtype=float)
    if quantity in ("signal", "readout"):
        for index, (channel, part) in enumerate(rows.groupby("channel", sort=False)):
            ax.plot(1000.0 * part["time_s"].to_numpy(dtype=float), part["value"].to_numpy(dtype=float),
                    color=_PALETTE[index % len(_PALETTE)], linewidth=1.0, label=str(channel))
        ax.legend(loc="upper right", fontsize="x-small", frameon=False, ncol=2)
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
