"""The package's figure style: colours, markers and labels of the methods, axis and legend
labels, and figure files.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot state, nothing to
close) inside the package style (:func:`style_context`), so they look the same whether or not
:func:`apply_style` was called. Importing this module selects matplotlib's headless backend.
"""

from __future__ import annotations

import colorsys
import contextlib
import math
import os
import re
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
    "drawn_label",
    "sampling_label",
    "save_figure",
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
    "difference": "mean paired difference",
}
_BAND_LABELS: dict[tuple[str, str], str] = {
    ("q25", "q75"): "interquartile range",
    ("p12", "p88"): "12th–88th percentile",
    ("ci95_low", "ci95_high"): "95% CI of the mean",
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


#: the lightest shade's largest relative luminance: a contrast of 2.6:1 or more against the
#: white background (WCAG 2's formula: (1.05) / (luminance + 0.05))
MAX_SHADE_LUMINANCE = 0.35


def relative_luminance(color) -> float:
    """WCAG 2's relative luminance of an sRGB colour (0 black, 1 white)."""
    from matplotlib.colors import to_rgb

    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(color)]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def method_shades(method: str, count: int) -> list:
    """``count`` shades of the method's colour, light to dark (darker = larger sigma_train),
    evenly spaced in lightness; the method's own colour when ``count`` is 1. The lightest keeps
    :data:`MAX_SHADE_LUMINANCE` (a light green or pink on white is hard to see), the darkest is
    at least 0.3 darker, so every shade differs from the next whatever the base colour's own
    lightness (fixed ends once gave QAT's pink, itself near the light end, two equal shades)."""
    if count <= 1:
        return [method_color(method)]
    color = method_color(method)
    base = colorsys.rgb_to_hls(*matplotlib.colors.to_rgb(color))[1]
    light = min(base + 0.2, 0.75)
    while light > 0.2 and relative_luminance(sns.set_hls_values(color, l=light)) > MAX_SHADE_LUMINANCE:
        light -= 0.01
    dark = max(0.12, min(base - 0.2, light - 0.3))
    return [sns.set_hls_values(color, l=float(level)) for level in np.linspace(light, dark, count)]


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


def _zero_is_a_value(setting: registry.Setting) -> bool:
    """Whether 0 is a valid value of the setting (QAT + noise's noise_sd), rather than its
    "not applied" (sigma_train 0: a model trained without forward noise)."""
    schema = setting.value_schema
    return schema.get("minimum", -math.inf) <= 0 and schema.get("exclusiveMinimum", -math.inf) < 0


def curve_label(method: str, value: float) -> str:
    """Legend label, e.g. ``MAT (fine-tuned), σ_train = 20%``, ``QAT, 4 levels`` or ``QAT + noise,
    noise_sd = 0``: the method and the value of its swept setting (nothing for a method that
    sweeps none, or a 0 that means "not applied", as sigma_train 0). Plain text, as the tables
    write it; :func:`drawn_label` gives the text a figure draws."""
    label = method_label(method)
    setting = registry.curve_setting(method)
    if setting is not None and (_zero_is_a_value(setting) or not np.isclose(float(value), 0.0, atol=_SIGMA_ATOL)):
        label += f", {setting.label(value)}"
    return label


#: ``σ_name``: a sigma with its subscript written as plain text (tables, CSV)
_PLAIN_SIGMA = re.compile(r"σ_([A-Za-z]+)")


def drawn_label(text: str) -> str:
    """``text`` as a figure draws it: ``σ_train`` and ``σ_inference`` with mathtext subscripts
    (``$\\sigma_\\mathrm{train}$``), as the axis titles write them, instead of a visible
    underscore. Tables keep the plain text, which reads (and greps) better in a CSV."""
    return _PLAIN_SIGMA.sub(lambda match: rf"$\sigma_\mathrm{{{match.group(1)}}}$", str(text))


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


def _new_figure(figsize=FIGSIZE) -> tuple[Figure, object]:
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    return fig, ax
