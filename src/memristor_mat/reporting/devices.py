"""Figures of the cross-evaluation on devices: every trained configuration of a task under the
device conditions of its config (PCM with and without drift compensation after 1 s ... 10
years, RRAM, stuck-at faults, conductance levels + PCM, the study's Gaussian noise ...).

Every function takes the *device summary*: one row per (trained configuration x device
condition) with the keys ``method``, ``sigma_train``, ``levels``, ``noise_sd``, ``device`` (the
config's name of the device), ``noise_model`` (e.g. ``"pcm"``, ``"levels+pcm"``), the
condition columns some device of the task uses (``sigma_inference``, ``t_inference`` in
seconds, ``n_levels``, ``p_stuck_off``, ``p_stuck_on``; NaN where a device does not have that
key) and the accuracy statistics in percent (``mean``, ``ci95_low``, ...). Like
:mod:`memristor_mat.reporting.curves`, each returns ``(figure, table)``, the table holding
exactly the numbers drawn.

* :func:`device_heatmap`: trained configurations x device conditions;
* :func:`accuracy_vs_time`: accuracy against the time after programming (log axis, 1 s to 10
  years), a panel per device (e.g. PCM with drift compensation, then without) on a shared
  accuracy axis;
* :func:`accuracy_vs_stuck_at`: accuracy against the fraction of stuck devices;
* :func:`condition_label` and :func:`time_label`: how a device condition and a time are written.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullLocator

from memristor_mat import methods as registry
from memristor_mat import noise_registry
from memristor_mat.reporting.curves import _merge_legends
from memristor_mat.reporting.heatmaps import annotated_heatmap, trained_configurations
from memristor_mat.reporting.style import (
    _SIGMA_ATOL,
    ACCURACY_AXIS_LABEL,
    METHOD_MARKERS,
    STAT_LABELS,
    _band_label,
    _new_figure,
    _setting_column,
    curve_colors,
    curve_label,
    drawn_label,
    method_label,
    sampling_label,
    style_context,
    wrap_title,
)

__all__ = [
    "condition_label",
    "device_label",
    "time_label",
    "condition_columns",
    "device_sampling_label",
    "device_heatmap",
    "accuracy_vs_time",
    "accuracy_vs_stuck_at",
    "TIME_TICKS",
]

# --------------------------------------------------------------------------------------------
# time

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
#: a Julian year (365.25 days); a time of k x 365 days is labelled in years as well
YEAR = 365.25 * DAY
MONTH = YEAR / 12.0
#: (seconds, singular, plural) from the largest unit down; several lengths of one unit are
#: accepted (a month of 30 days or a twelfth of a year, a year of 365 or 365.25 days)
_UNITS: tuple[tuple[tuple[float, ...], str, str], ...] = (
    ((YEAR, 365.0 * DAY), "year", "years"),
    ((MONTH, 30.0 * DAY), "month", "months"),
    ((DAY,), "day", "days"),
    ((HOUR,), "h", "h"),
    ((MINUTE,), "min", "min"),
)
#: ticks of the time axis: (seconds, label)
TIME_TICKS: tuple[tuple[float, str], ...] = (
    (1.0, "1 s"), (MINUTE, "1 min"), (HOUR, "1 h"), (DAY, "1 day"), (MONTH, "1 month"),
    (YEAR, "1 year"), (10.0 * YEAR, "10 years"),
)
#: the time axis spans at least 1 s to 10 years, with this factor of room for the end markers
_TIME_PAD = 10 ** 0.12
TIME_AXIS_LABEL = "Time after programming (log scale)"
#: height of the time figure (inches); its width grows with the number of panels
TIME_HEIGHT = 4.6


def _whole(value: float) -> int | None:
    """``value`` as a whole number >= 1 if it is one (to 1e-9 relative), else None."""
    nearest = round(value)
    if nearest >= 1 and math.isclose(value, nearest, rel_tol=1e-9, abs_tol=1e-9):
        return int(nearest)
    return None


def time_label(seconds: float) -> str:
    """A time after programming as people say it: ``1 s``, ``1 min``, ``3 h``, ``1 day``,
    ``2 days``, ``1 month``, ``1 year``, ``10 years``, in the largest unit that divides it
    (a year of 365.25 or 365 days, a month of a twelfth of that or 30 days); other times in
    seconds: ``45 s``, ``1.5 s``, ``3.2e+05 s``."""
    seconds = float(seconds)
    if not math.isfinite(seconds):
        return f"{seconds} s"
    for lengths, singular, plural in _UNITS:
        for length in lengths:
            count = _whole(seconds / length)
            if count is not None and count < 1000:
                return f"{count} {singular if count == 1 else plural}"
    if abs(seconds) < 1000:
        return f"{seconds:g} s"
    return f"{seconds:.3g} s"


# --------------------------------------------------------------------------------------------
# device conditions


def condition_columns(summary: pd.DataFrame | None = None) -> list[str]:
    """The summary columns that describe a device condition (the noise registry's condition
    keys: ``sigma_inference``, ``n_levels``, ``t_inference``, ``p_stuck_off``, ...), in the
    registry's order; only those ``summary`` has, if given."""
    columns = list(dict.fromkeys(key.column for key in noise_registry.CONDITION_KEYS.values()))
    if summary is not None:
        columns = [c for c in columns if c in summary.columns]
    return columns


#: how each noise model is named in labels
_MODEL_LABELS = {"pcm": "PCM", "rram": "RRAM", "gaussian": "Gaussian", "levels": "levels", "stuck_at": "stuck"}


def _pct(fraction: float) -> str:
    return f"{round(100.0 * float(fraction), 6):g}%"


def _value(mapping: Any, key: str) -> Any:
    """``mapping[key]``, or None where it is missing or NaN (dict, Series or namedtuple)."""
    if isinstance(mapping, (Mapping, pd.Series)):
        value = mapping.get(key, None)
    else:
        value = getattr(mapping, key, None)
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):  # arrays and the like: not a scalar condition
        return value
    return value


def _split_device_name(device: str, models: Sequence[str]) -> tuple[list[str], list[str]]:
    """The noise models ``models`` named in ``device`` (words joined by ``_``) and the other
    words, in order: ``pcm_uncompensated`` -> ``(["pcm"], ["uncompensated"])``."""
    words = device.split("_")
    found: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(words):
        for j in range(len(words), i, -1):  # the longest model name first (stuck_at)
            name = "_".join(words[i:j])
            if name in models:
                found.append(name)
                i = j
                break
        else:
            if words[i]:
                rest.append(words[i])
            i += 1
    return found, rest


def _model_part(model: str, conditions: Mapping[str, float]) -> str:
    if model == "levels":
        return f"{conditions['n_levels']:g} levels" if "n_levels" in conditions else "levels"
    if model == "gaussian":
        sigma = conditions.get("sigma_inference")
        return "Gaussian" if sigma is None else f"Gaussian {_pct(sigma)}"
    if model == "stuck_at":
        if "p_stuck_off" not in conditions and "p_stuck_on" not in conditions:
            return "stuck-at"
        return f"stuck {_pct(conditions.get('p_stuck_off', 0.0))} + {_pct(conditions.get('p_stuck_on', 0.0))}"
    return _MODEL_LABELS.get(model, model)


def condition_label(row: Any) -> str:
    """A short label of a device condition, from a summary row (or any mapping) with ``device``,
    ``noise_model`` and condition columns (NaN or missing: not part of the condition):
    ``PCM, 1 day``; ``PCM uncompensated, 1 year`` (device ``pcm_uncompensated``: the words of
    the device name that are not its noise models follow them); ``RRAM, 2 days``;
    ``stuck 2% + 2%`` (p_stuck_off + p_stuck_on); ``16 levels + PCM, 1 day``; ``Gaussian 10%``.
    Times as :func:`time_label`. A device whose name says nothing of its noise model reads
    ``chip_a (PCM), 1 day``; one of unknown noise model is named by its device name."""
    device = _value(row, "device")
    device = None if device is None else str(device)
    noise_model = _value(row, "noise_model")
    conditions = {}
    for column in condition_columns():
        value = _value(row, column)
        if value is not None:
            conditions[column] = float(value)
    known = set(noise_registry.NOISE_MODELS) | set(_MODEL_LABELS)
    if noise_model is not None:
        models = str(noise_model).split("+")
    elif device is not None:
        models = _split_device_name(device, known)[0]
    else:
        models = []
    if device is not None:
        named, rest = _split_device_name(device, models)
    else:
        named, rest = models, []
    if models and (named or device is None):
        label = " + ".join(_model_part(m, conditions) for m in models)
        if rest:
            label += " " + " ".join(rest)
    elif models:  # the device's name says nothing of its noise model
        label = f"{device} ({' + '.join(_model_part(m, conditions) for m in models)})"
    else:
        label = device if device is not None else "device"
    said = {"t_inference"}  # said after the comma
    for model in models:
        said |= {"levels": {"n_levels"}, "gaussian": {"sigma_inference"},
                 "stuck_at": {"p_stuck_off", "p_stuck_on"}}.get(model, set())
    if "t_inference" in conditions:
        label += f", {time_label(conditions['t_inference'])}"
    for column, value in conditions.items():
        if column not in said:
            label += f", {column} = {value:g}"
    return label


def device_label(summary: pd.DataFrame, device: str, *, leave_out: Sequence[str] = ()) -> str:
    """The label of ``device`` as a whole (for a legend): :func:`condition_label` of its noise
    model and the condition columns that are the same in all its rows, except ``leave_out``
    (the axis' own column): ``PCM uncompensated``, ``16 levels + PCM``."""
    rows = _device_rows(summary, device)
    mapping: dict[str, Any] = {"device": device}
    models = rows["noise_model"].dropna().unique() if "noise_model" in rows.columns else []
    if len(models) == 1:
        mapping["noise_model"] = models[0]
    for column in condition_columns(rows):
        values = rows[column].dropna().unique()
        if column not in leave_out and len(values) == 1 and rows[column].notna().all():
            mapping[column] = values[0]
    return condition_label(mapping)


def device_sampling_label(summary: pd.DataFrame) -> str:
    """``"5 models × 100 draws"`` (:func:`~memristor_mat.reporting.style.sampling_label`) of a
    device summary, whose rows need not have ``sigma_inference``: rows without one count as
    noisy conditions, except those evaluated once per model (a condition at which the device
    is the clean network, e.g. no stuck devices), which count as the noise-free level does."""
    if summary.empty:
        return sampling_label(summary)
    frame = summary.copy()
    sigma = frame["sigma_inference"] if "sigma_inference" in frame.columns else pd.Series(np.nan, index=frame.index)
    sigma = sigma.astype(float)
    if "n_draws" in frame.columns:
        draws = frame["n_draws"].astype(float)
    else:
        draws = frame["n_samples"].astype(float) / frame["n_models"].astype(float)
    once = np.isclose(draws.to_numpy(), 1.0)
    frame["sigma_inference"] = sigma.where(sigma.notna(), np.where(once, 0.0, 1.0))
    return sampling_label(frame)


# --------------------------------------------------------------------------------------------
# checks and selection


def _check_columns(summary: pd.DataFrame, center: str, band: Sequence[str] | None) -> tuple[str, str] | None:
    if band is not None:
        band = tuple(band)
        if len(band) != 2:
            raise ValueError(f"band must be a pair of column names, got {band!r}")
    wanted = ["method", "device", center] + (list(band) if band is not None else [])
    missing = [c for c in wanted if c not in summary.columns]
    if missing:
        raise ValueError(f"the device summary has no column(s) {missing}; it has {list(summary.columns)}")
    return band


def _device_rows(summary: pd.DataFrame, device: str) -> pd.DataFrame:
    rows = summary[summary["device"] == device]
    if rows.empty:
        raise ValueError(
            f"device {device!r} is not in the device summary; its devices: "
            f"{list(dict.fromkeys(summary['device'].tolist()))}"
        )
    return rows


def _needs(rows: pd.DataFrame, device: str, columns: Sequence[str], what: str) -> None:
    """Raise unless the device's rows have a value in one of ``columns`` (the condition the
    figure draws against)."""
    present = [c for c in columns if c in rows.columns and rows[c].notna().any()]
    if not present:
        absent = [c for c in columns if c not in rows.columns]
        why = (f"the summary has no column {absent[0]!r}" if len(absent) == len(columns)
               else f"its rows have no {' or '.join(repr(c) for c in columns)}")
        raise ValueError(f"device {device!r} cannot be drawn against {what}: {why} "
                         f"(its condition columns: {condition_columns(rows)})")


def _config_mask(summary: pd.DataFrame, method: str, value: float) -> pd.Series:
    """The rows of one trained configuration (method and the value of its swept setting)."""
    mask = summary["method"] == method
    column = _setting_column(method)
    if column is not None and column in summary.columns:
        mask &= np.isclose(summary[column].astype(float), float(value), rtol=0.0, atol=_SIGMA_ATOL)
    return mask


def _setting_columns(summary: pd.DataFrame) -> list[str]:
    return [c for c in registry.SETTING_COLUMNS if c in summary.columns]


def _condition_key(row: pd.Series, columns: Sequence[str]) -> tuple:
    """The condition of a row as a sortable tuple (NaN: -inf, "not part of it")."""
    return tuple(-math.inf if pd.isna(row[c]) else float(row[c]) for c in columns)


def _duplicate_error(what: str, rows: pd.DataFrame) -> ValueError:
    distinct = [c for c in ("task", "dataset", "arch", "noise_model", *condition_columns(rows))
                if c in rows.columns and rows[c].nunique(dropna=False) > 1]
    return ValueError(
        f"{what} has several summary rows (they differ in {distinct or 'no key column'}); filter the "
        "device summary to one task / dataset / arch first"
    )


# --------------------------------------------------------------------------------------------
# heatmap


def device_heatmap(
    summary: pd.DataFrame,
    *,
    center: str = "mean",
    devices: Sequence[str] | None = None,
    title: str | None = None,
    gain_over: str | None = None,
) -> tuple[Figure, pd.DataFrame]:
    """Heatmap of accuracy (``center``, %): one row per trained configuration (labelled and
    ordered as :func:`~memristor_mat.reporting.heatmaps.plot_sigma_heatmap`'s rows: vanilla on
    top, then the methods in registry order, each by the value of its swept setting), one column
    per device condition: the ``devices`` in the given order (default: as they first appear in
    the summary), each device's conditions sorted by their values (condition columns in the
    noise registry's order), white rules between methods and between devices.

    Returns ``(fig, table)``; the table is the drawn matrix in tidy form, one row per cell in
    row-major order: ``row``, ``column`` (positions), ``method``, ``label`` (the row's label),
    the settings (``sigma_train``, ``levels``, ``noise_sd``), ``device``, ``noise_model``, the
    condition columns, ``condition`` (the column's label, :func:`condition_label`), the
    ``center`` statistic under its own name, and ``n_models``, ``n_draws`` where the summary has
    them; a configuration not evaluated under a condition has NaN (blank in the figure).
    Raises ``ValueError`` naming a device that is not in the summary, a missing column, or a
    cell with several rows (several tasks: filter first).

    ``gain_over`` (a baseline method): ``summary`` is instead the device table of
    :func:`memristor_mat.reporting.summary.paired_differences` against that baseline, and the
    cells are the paired ``difference`` (points) on a diverging scale centred at 0, in
    parentheses where its 95 % CI includes 0 (or has none: one model); the table also gets
    ``ci95_low``, ``ci95_high``, ``share_better``, ``share_worse`` and ``resolved``.
    """
    if gain_over is not None:
        center = "difference"
    _check_columns(summary, center, None)
    if devices is None:
        devices = list(dict.fromkeys(summary["device"].tolist()))
    devices = list(devices)
    if not devices:
        raise ValueError("devices is empty: give at least one device name")
    for device in devices:
        _device_rows(summary, device)
    shown = summary[summary["device"].isin(devices)]
    conditions = condition_columns(shown)
    settings = _setting_columns(shown)
    configs = trained_configurations(shown)

    columns: list[tuple[str, tuple]] = []  # (device, condition key)
    column_info: list[dict] = []
    for device in devices:
        rows = shown[shown["device"] == device]
        keys: dict[tuple, pd.Series] = {}
        for _, row in rows.iterrows():
            keys.setdefault(_condition_key(row, conditions), row)
        for key in sorted(keys):
            first = keys[key]
            columns.append((device, key))
            column_info.append({
                "device": device,
                "noise_model": first["noise_model"] if "noise_model" in first.index else None,
                **{c: first[c] for c in conditions},
                "condition": condition_label(first),
            })
    column_of = {column: j for j, column in enumerate(columns)}

    matrix = np.full((len(configs), len(columns)), np.nan)
    extras = [c for c in ("n_models", "n_draws") if c in shown.columns]
    if gain_over is not None:
        extras += [c for c in ("ci95_low", "ci95_high", "share_better", "share_worse") if c in shown.columns]
    cell_rows: dict[tuple[int, int], pd.Series] = {}
    row_info = []
    for i, (method, value) in enumerate(configs):
        rows = shown[_config_mask(shown, method, value)]
        first = rows.iloc[0]
        row_info.append({"method": method, "label": curve_label(method, value),
                         **{c: first[c] for c in settings}})
        for index, row in rows.iterrows():
            j = column_of[(row["device"], _condition_key(row, conditions))]
            if (i, j) in cell_rows:
                both = rows.loc[[cell_rows[(i, j)].name, index]]
                raise _duplicate_error(
                    f"trained configuration {curve_label(method, value)!r} on device {row['device']!r} at "
                    f"{condition_label(row)!r}", both)
            cell_rows[(i, j)] = row
            matrix[i, j] = float(row[center])

    records = []
    for i, info in enumerate(row_info):
        for j, column in enumerate(column_info):
            record = {"row": i, "column": j, **info, **column, center: matrix[i, j]}
            cell = cell_rows.get((i, j))
            record.update({c: np.nan if cell is None else cell[c] for c in extras})
            records.append(record)
    table = pd.DataFrame(records)
    annotations = difference_label = None
    if gain_over is not None:
        # resolved: the paired 95 % CI excludes 0 (a gain or a loss the draws and seeds support)
        table["resolved"] = (table["ci95_low"] > 0) | (table["ci95_high"] < 0)
        texts = [f"{value:+.1f}" if resolved else f"({value:+.1f})"
                 for value, resolved in zip(table[center], table["resolved"])]
        annotations = np.array(texts, dtype=object).reshape(matrix.shape)
        annotations[~np.isfinite(matrix)] = ""
        difference_label = f"Accuracy − {method_label(gain_over)} (points), paired\n(in parentheses: its 95% CI includes 0)"

    row_labels = [drawn_label(info["label"]) for info in row_info]
    col_labels = [info["condition"] for info in column_info]
    n_rows, n_cols = matrix.shape
    width = min(max(6.4, 3.2 + 0.5 * n_cols), 24.0)
    height = min(max(3.4, 2.6 + 0.42 * n_rows), 14.0)
    with style_context():
        fig, ax = _new_figure((width, height))
        annotated_heatmap(ax, matrix, row_labels, col_labels, stat=center, fontsize="x-small",
                          row_groups=[config[0] for config in configs], col_groups=[column[0] for column in columns],
                          difference_label=difference_label, annotations=annotations,
                          xticklabels=True, yticklabels=True)
        ax.set_xlabel("Device condition")
        ax.set_ylabel("Training method")
        ax.tick_params(axis="y", rotation=0)
        for text in ax.get_xticklabels():
            text.set(rotation=50, horizontalalignment="right", rotation_mode="anchor")
        ax.grid(False)
        if title:
            ax.set_title(wrap_title(title), loc="left")
    return fig, table


# --------------------------------------------------------------------------------------------
# curves against a device condition


def _curve_table(rows: pd.DataFrame, label: str, device: str, device_text: str, x_column: str,
                 center: str, band: tuple[str, str] | None) -> pd.DataFrame:
    cols = ["method"] + _setting_columns(rows) + ["device"]
    cols += [c for c in ("noise_model",) if c in rows.columns]
    cols += condition_columns(rows)
    cols += [c for c in ("n_models", "n_draws") if c in rows.columns]
    stats = [center] + [b for b in (band or ()) if b != center]
    table = rows.loc[:, cols + stats].copy()
    if x_column not in cols:  # the x value, where it is not a condition column (stuck_pct)
        table.insert(len(cols), x_column, rows[x_column].to_numpy(dtype=float))
    table.insert(0, "device_label", device_text)
    table.insert(0, "label", label)
    table.insert(0, "element", "curve")
    return table


def _configuration_curve(ax, rows: pd.DataFrame, method: str, value, x_column: str, device: str,
                         device_text: str, *, center: str, band: tuple[str, str] | None,
                         color) -> pd.DataFrame | None:
    """One trained configuration's curve of ``rows`` against ``x_column`` (None if it has no rows);
    returns its table. The line is labelled with the configuration's label as drawn."""
    curve = rows[_config_mask(rows, method, value)]
    if curve.empty:
        return None
    label = curve_label(method, value)
    if curve[x_column].duplicated().any():
        raise _duplicate_error(f"trained configuration {label!r} on device {device!r} at one {x_column}", curve)
    curve = curve.sort_values(x_column)
    _draw_curve(ax, curve[x_column].to_numpy(dtype=float), curve, center=center, band=band, color=color,
                marker=METHOD_MARKERS.get(method, "o"), label=drawn_label(label))
    return _curve_table(curve, label, device, device_text, x_column, center, band)


def _draw_curve(ax, x: np.ndarray, rows: pd.DataFrame, *, center: str, band: tuple[str, str] | None,
                color, marker: str, label: str) -> None:
    if band is not None:
        low = rows[band[0]].to_numpy(dtype=float)
        high = rows[band[1]].to_numpy(dtype=float)
        where = np.isfinite(low) & np.isfinite(high)
        if where.any():  # a band only where the statistic exists (CI: >= 2 models)
            ax.fill_between(x, np.where(where, low, np.nan), np.where(where, high, np.nan), where=where,
                            color=color, alpha=0.15, linewidth=0, interpolate=False)
    ax.plot(x, rows[center].to_numpy(dtype=float), color=color, marker=marker, label=label,
            markeredgecolor="white", markeredgewidth=0.6)


def _legend_title(center: str, band: tuple[str, str] | None, heading: str | None, *,
                  bands_left_out: str | None = None) -> str:
    lines = [heading[:1].upper() + heading[1:]] if heading else []
    lines.append(f"Line: {STAT_LABELS.get(center, center)}")
    if bands_left_out is not None:
        lines.append(bands_left_out)
    elif band is not None:
        lines.append(f"Band: {_band_label(band)} (where defined)")
    return "\n".join(lines)


def _legend(ax, handles: list | None, title: str) -> None:
    """The legend of ``handles`` (None: the axes' labelled lines) titled ``title``."""
    # Outside the axes, right: never hides a curve, whatever the data.
    ax.legend(**({} if handles is None else {"handles": handles}), loc="upper left", bbox_to_anchor=(1.02, 1.0),
              borderaxespad=0.0, title=title, fontsize="small", title_fontsize="small", alignment="left")


#: the most curves a panel draws with their bands: beyond this the overlapping bands merge into
#: one tint in which no curve's band can be told apart (the demo's 12 configurations did)
MAX_BANDS = 4
#: width of one time panel and of the legend beside the last one (inches)
_TIME_PANEL_WIDTH = 4.2
_TIME_LEGEND_WIDTH = 3.6


def _bands_if_few(band: tuple[str, str] | None, curves: int, max_bands: int,
                  where: str = "") -> tuple[tuple[str, str] | None, str | None]:
    """``(band, None)`` where ``curves`` curves (``where``: in one panel) can show their bands,
    else ``(None, the legend's line saying why they are left out)``."""
    if band is None or curves <= max_bands:
        return band, None
    return None, f"No bands ({_band_label(band)}):\n{curves} curves{where} would overlap"


def accuracy_vs_time(
    summary: pd.DataFrame,
    *,
    devices: Sequence[str],
    center: str = "mean",
    band: Sequence[str] | None = ("ci95_low", "ci95_high"),
    title: str | None = None,
    max_bands: int = MAX_BANDS,
) -> tuple[Figure, pd.DataFrame]:
    """Accuracy (%) against the time after programming (``t_inference``, log axis spanning at
    least 1 s to 10 years, ticks 1 s, 1 min, 1 h, 1 day, 1 month, 1 year, 10 years): one panel
    per device in the order given (e.g. PCM with drift compensation, then without), side by
    side on a shared accuracy axis and titled by the device, one curve per trained
    configuration in each (the method's colour, shades of it for several values of its
    setting, and marker; the same in every panel), the ``center`` statistic with a shaded
    ``band`` (a pair of summary columns, None for none) where both band columns are defined (the
    CI is NaN below 2 models). One legend, right of the last panel, names each configuration
    once.

    Bands are drawn only if no panel has more than ``max_bands`` curves: more overlap into one
    tint in which no band can be told apart; the legend then says that they are left out, and
    the table has no band columns (it holds what is drawn).

    Returns ``(fig, table)``: one row per point, with ``element`` (``"curve"``), ``label`` (the
    configuration's, plain text), ``device_label`` (the panel's title), method, settings, device,
    noise_model, the condition columns, ``n_models``, ``n_draws`` and the plotted statistics
    under their own names. Each panel's lines are labelled by their configuration, as drawn
    (:func:`~memristor_mat.reporting.style.drawn_label`).
    Raises ``ValueError`` for a device not in the summary, one without ``t_inference``, or
    several rows per (configuration, time) of one device (filter the summary first).
    """
    band = _check_columns(summary, center, band)
    devices = list(devices)
    if not devices:
        raise ValueError("devices is empty: give at least one device with t_inference conditions")
    if len(set(devices)) != len(devices):
        raise ValueError(f"devices lists a device twice: {devices}")
    selected = {}
    for device in devices:
        rows = _device_rows(summary, device)
        _needs(rows, device, ["t_inference"], "time (t_inference)")
        selected[device] = rows[rows["t_inference"].notna()]
    shown = pd.concat(selected.values())
    configs = trained_configurations(shown)
    colors = dict(zip(configs, curve_colors(configs)))  # the same colours in every panel
    device_texts = {device: device_label(summary, device, leave_out=("t_inference",)) for device in devices}
    most_curves = max(len(trained_configurations(rows)) for rows in selected.values())
    band, bands_left_out = _bands_if_few(band, most_curves, max_bands, " a panel")

    tables = []
    xs = []
    with style_context():
        width = _TIME_PANEL_WIDTH * len(devices) + _TIME_LEGEND_WIDTH
        fig = Figure(figsize=(width, TIME_HEIGHT), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(devices), sharex=True, sharey=True))
        for ax, device in zip(axes, devices):
            for method, value in configs:
                drawn = _configuration_curve(ax, selected[device], method, value, "t_inference", device,
                                             device_texts[device], center=center, band=band,
                                             color=colors[(method, value)])
                if drawn is not None:
                    tables.append(drawn)
                    xs.append(drawn["t_inference"].to_numpy(dtype=float))
            if len(devices) > 1:
                ax.set_title(device_texts[device], loc="left", fontsize="medium")
        every = np.concatenate(xs)
        positive = every[every > 0]
        low = min(1.0, float(positive.min()) if positive.size else 1.0) / _TIME_PAD
        high = max(10.0 * YEAR, float(every.max())) * _TIME_PAD
        for index, ax in enumerate(axes):
            ax.set_xscale("log")
            ticks = [t for t, _ in TIME_TICKS]
            ax.xaxis.set_major_locator(FixedLocator(ticks))
            ax.set_xticks(ticks, [text for _, text in TIME_TICKS])
            for text in ax.get_xticklabels():  # the long-time ticks are close: slanted, they never overlap
                text.set(rotation=35, horizontalalignment="right", rotation_mode="anchor")
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xlim(low, high)
            ax.set_xlabel(TIME_AXIS_LABEL)
            ax.set_ylabel(ACCURACY_AXIS_LABEL if index == 0 else "")
        axes[0].set_ylim(top=min(axes[0].get_ylim()[1], 101.0))  # shared: every panel
        heading = device_texts[devices[0]] if len(devices) == 1 else None
        for ax in axes:
            _legend(ax, None, _legend_title(center, band, heading, bands_left_out=bands_left_out))
        _merge_legends(axes, tables)  # one entry per configuration, right of the last panel
        if title:
            # about 14 characters an inch in the title's font: one line where the figure is wide enough
            fig.suptitle(wrap_title(title, width=int(14 * width)), x=0.01, horizontalalignment="left",
                         fontweight="bold")
    return fig, pd.concat(tables, ignore_index=True)


def accuracy_vs_stuck_at(
    summary: pd.DataFrame,
    *,
    device: str,
    center: str = "mean",
    band: Sequence[str] | None = ("ci95_low", "ci95_high"),
    title: str | None = None,
    max_bands: int = MAX_BANDS,
) -> tuple[Figure, pd.DataFrame]:
    """Accuracy (%) against the fraction of stuck devices, ``p_stuck_off + p_stuck_on`` in %
    (a missing or NaN one counts as 0), one curve per trained configuration of ``device``
    (method colour, shades for several values of its setting, method marker), the ``center``
    statistic with a shaded ``band`` where both band columns are defined, if there are no more
    than ``max_bands`` curves (as :func:`accuracy_vs_time`).

    Returns ``(fig, table)`` as :func:`accuracy_vs_time`, with the x value in the column
    ``stuck_pct``. Raises ``ValueError`` for a device not in the summary, one without
    ``p_stuck_off`` / ``p_stuck_on``, or several rows per (configuration, stuck fraction).
    """
    band = _check_columns(summary, center, band)
    rows = _device_rows(summary, device)
    parts = ["p_stuck_off", "p_stuck_on"]
    _needs(rows, device, parts, "the stuck fraction (p_stuck_off + p_stuck_on)")
    rows = rows.copy()
    fractions = [rows[c].astype(float).fillna(0.0) if c in rows.columns else pd.Series(0.0, index=rows.index)
                 for c in parts]
    rows["stuck_pct"] = (100.0 * (fractions[0] + fractions[1])).round(9)
    halves = bool(np.allclose(fractions[0], fractions[1], rtol=0.0, atol=1e-12))
    configs = trained_configurations(rows)
    colors = dict(zip(configs, curve_colors(configs)))
    text = device_label(summary, device, leave_out=parts)
    band, bands_left_out = _bands_if_few(band, len(configs), max_bands)
    tables = []
    with style_context():
        fig, ax = _new_figure()
        for method, value in configs:
            drawn = _configuration_curve(ax, rows, method, value, "stuck_pct", device, text, center=center,
                                         band=band, color=colors[(method, value)])
            if drawn is not None:
                tables.append(drawn)
        all_x = rows["stuck_pct"].to_numpy(dtype=float)
        pad = 0.025 * (all_x.max() - all_x.min()) if all_x.max() > all_x.min() else 0.5
        ax.set_xlim(all_x.min() - pad, all_x.max() + pad)  # room for the end markers
        # two lines: one ran under the legend beside the axes
        ax.set_xlabel("Stuck devices, p_stuck_off + p_stuck_on (%)" + ("\n(equal halves)" if halves else ""))
        ax.set_ylabel(ACCURACY_AXIS_LABEL)
        ax.set_ylim(top=min(ax.get_ylim()[1], 101.0))
        handles = [
            Line2D([], [], color=colors[c], marker=METHOD_MARKERS.get(c[0], "o"), markeredgecolor="white",
                   markeredgewidth=0.6, label=drawn_label(curve_label(*c))) for c in configs
        ]
        _legend(ax, handles, _legend_title(center, band, text, bands_left_out=bands_left_out))
        if title:
            ax.set_title(wrap_title(title), loc="left")
    return fig, pd.concat(tables, ignore_index=True)
