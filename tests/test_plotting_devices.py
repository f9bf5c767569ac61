"""Tests of memristor_mat.reporting.devices (the device cross-evaluation figures) and of
notebooks/devices.ipynb."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgb

from memristor_mat.reporting.devices import (
    DAY,
    YEAR,
    accuracy_vs_stuck_at,
    accuracy_vs_time,
    condition_label,
    device_heatmap,
    device_label,
    device_sampling_label,
    time_label,
)
from memristor_mat.reporting.heatmaps import trained_configurations
from memristor_mat.reporting.style import curve_label, drawn_label, method_color, save_figure

REPO = Path(__file__).resolve().parents[1]
TIMES = [1.0, 3600.0, DAY, 30 * DAY, YEAR, 10 * YEAR]
#: (method, sigma_train, levels, noise_sd) in the order the heatmap shows them
CONFIGS = [
    ("vanilla", 0.0, 0, 0.0),
    ("noisy_updates", 0.0, 0, 0.0),
    ("mat", 0.1, 0, 0.0),
    ("mat", 0.2, 0, 0.0),
    ("mat_scratch", 0.2, 0, 0.0),
    ("qat", 0.0, 4, 0.0),
    ("qat_noise", 0.0, 4, 0.01),
]
SWEPT = [(m, {"mat": s, "mat_scratch": s, "qat": lv, "qat_noise": sd}.get(m, 0.0)) for m, s, lv, sd in CONFIGS]
#: device -> (noise_model, conditions)
DEVICES = {
    "pcm": ("pcm", [{"t_inference": t} for t in TIMES]),
    "pcm_uncompensated": ("pcm", [{"t_inference": t} for t in TIMES]),
    "rram": ("rram", [{"t_inference": t} for t in (1.0, DAY, 2 * DAY)]),
    # p_stuck_on half of p_stuck_off: x must be their sum, not twice one of them
    "stuck_at": ("stuck_at", [{"p_stuck_off": p, "p_stuck_on": p / 2} for p in (0.0, 0.01, 0.02, 0.05)]),
    "levels_pcm": ("levels+pcm", [{"n_levels": 16.0, "t_inference": t} for t in (1.0, DAY)]),
    "gaussian": ("gaussian", [{"sigma_inference": 0.1}]),
}
CONDITION_COLUMNS = ["sigma_inference", "t_inference", "n_levels", "p_stuck_off", "p_stuck_on"]


def fake_summary(devices=DEVICES, configs=CONFIGS, seed=0) -> pd.DataFrame:
    """A device summary: one row per configuration x device condition, distinct accuracies;
    noisy_updates has one model (no CI), mat 0.1's CI is NaN at its two last PCM times."""
    rng = np.random.default_rng(seed)
    records = []
    # the devices in a shuffled order, so that the heatmap's order must come from `devices`
    for device, (noise_model, conditions) in devices.items():
        for method, sigma_train, levels, noise_sd in configs:
            for condition in conditions:
                mean = float(rng.uniform(20, 98))
                n_models = 1 if method == "noisy_updates" else 3
                ci = (mean - 1.5, mean + 1.2) if n_models > 1 else (np.nan, np.nan)
                late = condition.get("t_inference", 0) >= YEAR
                if (method, sigma_train) == ("mat", 0.1) and device == "pcm" and late:
                    ci = (np.nan, np.nan)
                record = dict(task="mnist", dataset="mnist", arch="mlp", method=method, sigma_train=sigma_train,
                              levels=levels, noise_sd=noise_sd, device=device, noise_model=noise_model)
                record.update({c: condition.get(c, np.nan) for c in CONDITION_COLUMNS})
                record.update(n_models=n_models, n_draws=20, mean=mean, std=2.0, between_model_sd=1.0,
                              within_model_sd=1.5, median=mean + 0.1, q25=mean - 1, q75=mean + 1, p12=mean - 2,
                              p88=mean + 2, ci95_low=ci[0], ci95_high=ci[1])
                records.append(record)
    frame = pd.DataFrame(records)
    return frame.sample(frac=1.0, random_state=1).reset_index(drop=True)  # no order to rely on


@pytest.fixture(scope="module")
def summary() -> pd.DataFrame:
    return fake_summary()


def row_of(summary, device, method, sigma_train, levels, noise_sd, **condition) -> pd.Series:
    mask = (summary["device"] == device) & (summary["method"] == method)
    mask &= np.isclose(summary["sigma_train"], sigma_train) & (summary["levels"] == levels)
    mask &= np.isclose(summary["noise_sd"], noise_sd)
    for column, value in condition.items():
        mask &= np.isclose(summary[column], value)
    rows = summary[mask]
    assert len(rows) == 1, (device, method, condition)
    return rows.iloc[0]


# --------------------------------------------------------------------------------------------- labels


@pytest.mark.parametrize("seconds, text", [
    (1, "1 s"), (60, "1 min"), (3600, "1 h"), (7200, "2 h"), (86400, "1 day"), (172800, "2 days"),
    (30 * 86400, "1 month"), (YEAR / 12, "1 month"), (YEAR, "1 year"), (365 * 86400, "1 year"),
    (10 * YEAR, "10 years"), (3650 * 86400, "10 years"), (45, "45 s"), (1.5, "1.5 s"), (320000, "3.2e+05 s"),
])
def test_time_label(seconds, text):
    assert time_label(seconds) == text


@pytest.mark.parametrize("mapping, text", [
    (dict(device="pcm", noise_model="pcm", t_inference=DAY), "PCM, 1 day"),
    (dict(device="pcm_uncompensated", noise_model="pcm", t_inference=YEAR), "PCM uncompensated, 1 year"),
    (dict(device="rram", noise_model="rram", t_inference=2 * DAY), "RRAM, 2 days"),
    (dict(device="stuck_at", noise_model="stuck_at", p_stuck_off=0.02, p_stuck_on=0.02), "stuck 2% + 2%"),
    (dict(device="levels_pcm", noise_model="levels+pcm", n_levels=16.0, t_inference=DAY), "16 levels + PCM, 1 day"),
    (dict(device="gaussian", noise_model="gaussian", sigma_inference=0.1), "Gaussian 10%"),
    # NaN condition columns (other devices' keys) are not part of the condition
    (dict(device="pcm", noise_model="pcm", t_inference=YEAR, sigma_inference=np.nan, p_stuck_off=np.nan),
     "PCM, 1 year"),
    # no noise model: read from the device's name where it can be
    (dict(device="pcm_uncompensated", t_inference=10 * YEAR), "PCM uncompensated, 10 years"),
    (dict(device="chip_a", noise_model="pcm", t_inference=60.0), "chip_a (PCM), 1 min"),
    (dict(device="chip_a"), "chip_a"),
])
def test_condition_label(mapping, text):
    assert condition_label(mapping) == text
    assert condition_label(pd.Series(mapping)) == text


def test_device_label_and_sampling(summary):
    assert device_label(summary, "pcm_uncompensated", leave_out=("t_inference",)) == "PCM uncompensated"
    assert device_label(summary, "levels_pcm", leave_out=("t_inference",)) == "16 levels + PCM"
    # no sigma_inference column: every row counts
    assert device_sampling_label(summary.drop(columns="sigma_inference")) == "1–3 models × 20 draws"
    # no stuck devices is the clean network, evaluated once per model: not "1–20 draws"
    stuck = summary[summary["device"] == "stuck_at"].copy()
    clean = (stuck["p_stuck_off"] == 0) & (stuck["p_stuck_on"] == 0)
    stuck.loc[clean, "n_draws"] = 1
    assert device_sampling_label(stuck) == "1–3 models × 20 draws"
    assert device_sampling_label(stuck[clean]) == "1–3 models × 1 draw"


# --------------------------------------------------------------------------------------------- heatmap


def test_device_heatmap_cells_and_order(summary):
    order = ["gaussian", "pcm", "stuck_at"]
    fig, table = device_heatmap(summary, devices=order, title="Devices")
    # rows: the existing heatmap's trained configurations, in its order
    assert trained_configurations(summary) == SWEPT
    rows = table.drop_duplicates("row").sort_values("row")
    assert rows["label"].tolist() == [curve_label(m, v) for m, v in SWEPT]
    assert rows["method"].tolist() == [c[0] for c in CONFIGS]
    # columns: devices in the given order, conditions ascending
    columns = table.drop_duplicates("column").sort_values("column")
    assert columns["device"].tolist() == ["gaussian"] + ["pcm"] * len(TIMES) + ["stuck_at"] * 4
    assert columns["condition"].tolist() == (
        ["Gaussian 10%"] + [f"PCM, {time_label(t)}" for t in TIMES]
        + ["stuck 0% + 0%", "stuck 1% + 0.5%", "stuck 2% + 1%", "stuck 5% + 2.5%"]
    )
    assert len(table) == len(CONFIGS) * (1 + len(TIMES) + 4)
    # every cell is the summary's mean of its configuration and condition
    for _, cell in table.iterrows():
        condition = {c: cell[c] for c in CONDITION_COLUMNS if not pd.isna(cell[c])}
        expected = row_of(summary, cell["device"], cell["method"], cell["sigma_train"], cell["levels"],
                          cell["noise_sd"], **condition)
        assert cell["mean"] == pytest.approx(expected["mean"], abs=1e-12)
        assert cell["n_models"] == expected["n_models"]
    # the figure shows that matrix, labelled by rows and columns
    ax = fig.axes[0]
    mesh = ax.collections[0].get_array().reshape(len(rows), len(columns))
    matrix = table.pivot(index="row", columns="column", values="mean").to_numpy()
    np.testing.assert_allclose(np.asarray(mesh), matrix)
    assert [t.get_text() for t in ax.get_yticklabels()] == [drawn_label(label) for label in rows["label"]]
    assert r"MAT (fine-tuned), $\sigma_\mathrm{train}$ = 10%" in [t.get_text() for t in ax.get_yticklabels()]
    assert [t.get_text() for t in ax.get_xticklabels()] == columns["condition"].tolist()
    texts = [t.get_text() for t in ax.texts]
    assert texts == [f"{v:.1f}" for v in matrix.ravel()]
    assert ax.get_title(loc="left") == "Devices"


def test_device_heatmap_defaults_and_missing_cells(summary, tmp_path):
    part = summary[~((summary["device"] == "rram") & (summary["method"] == "qat")
                     & np.isclose(summary["t_inference"], DAY))]
    fig, table = device_heatmap(part.drop(columns=["p_stuck_off", "p_stuck_on", "n_levels"]).query(
        "device in ['rram', 'pcm_uncompensated']"))
    # default order: as the devices first appear in the summary
    first = list(dict.fromkeys(part.loc[part["device"].isin(["rram", "pcm_uncompensated"]), "device"]))
    assert list(dict.fromkeys(table["device"])) == first
    missing = table[(table["method"] == "qat") & (table["device"] == "rram") & np.isclose(table["t_inference"], DAY)]
    assert len(missing) == 1 and np.isnan(missing["mean"].iloc[0]) and np.isnan(missing["n_models"].iloc[0])
    assert table["mean"].isna().sum() == 1
    assert save_figure(fig, tmp_path, "device_heatmap")[1].stat().st_size > 1000


def test_device_heatmap_errors(summary):
    with pytest.raises(ValueError, match="'memristor_x'.*not in the device summary"):
        device_heatmap(summary, devices=["pcm", "memristor_x"])
    with pytest.raises(ValueError, match="p95"):
        device_heatmap(summary, center="p95")
    twice = pd.concat([summary, summary[summary["device"] == "rram"].assign(task="ecg")])
    with pytest.raises(ValueError, match="several summary rows.*task"):
        device_heatmap(twice, devices=["rram"])


# --------------------------------------------------------------------------------------------- time


def test_accuracy_vs_time_curves(summary, tmp_path):
    fig, table = accuracy_vs_time(summary, devices=["pcm", "pcm_uncompensated"], title="Drift")
    # one panel per device, in the order given, on a shared accuracy axis
    assert len(fig.axes) == 2
    panels = dict(zip(["pcm", "pcm_uncompensated"], fig.axes))
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["PCM", "PCM uncompensated"]
    assert fig.axes[0].get_shared_y_axes().joined(fig.axes[0], fig.axes[1])
    assert fig.axes[0].get_ylim() == fig.axes[1].get_ylim()
    assert fig.get_suptitle() == "Drift"
    for ax in fig.axes:
        assert ax.get_xscale() == "log"
        low, high = ax.get_xlim()
        assert 1 / 1.5 < low <= 1.0 and 10 * YEAR <= high < 1.5 * 10 * YEAR
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert labels == ["1 s", "1 min", "1 h", "1 day", "1 month", "1 year", "10 years"]
        np.testing.assert_allclose(ax.get_xticks(), [1, 60, 3600, DAY, YEAR / 12, YEAR, 10 * YEAR])
    for device, ax in panels.items():
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert len(lines) == len(CONFIGS)
        for (method, sigma_train, levels, noise_sd), swept in zip(CONFIGS, SWEPT):
            line = lines[drawn_label(curve_label(*swept))]
            expected = [row_of(summary, device, method, sigma_train, levels, noise_sd, t_inference=t)["mean"]
                        for t in TIMES]
            np.testing.assert_allclose(line.get_xdata(), TIMES)
            np.testing.assert_allclose(line.get_ydata(), expected)
            assert line.get_linestyle() == "-"  # the panel tells the devices apart
            if method in ("vanilla", "noisy_updates", "qat"):  # one configuration: the method's colour
                assert to_rgb(line.get_color()) == pytest.approx(method_color(method))
    # one legend, right of the last panel: one entry per configuration, sigma as drawn
    assert fig.axes[0].get_legend() is None
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend == [drawn_label(curve_label(*s)) for s in SWEPT]
    assert r"MAT (fine-tuned), $\sigma_\mathrm{train}$ = 10%" in legend and not any("σ_" in e for e in legend)
    # 7 curves a panel: more bands than can be told apart, none drawn, and the table has none
    assert not any(isinstance(c, PolyCollection) for ax in fig.axes for c in ax.collections)
    assert "No bands (95% CI of the mean)" in fig.axes[1].get_legend().get_title().get_text()
    assert "ci95_low" not in table.columns and "ci95_high" not in table.columns
    curve = table[(table["method"] == "vanilla") & (table["device"] == "pcm")]
    assert curve["t_inference"].tolist() == TIMES and set(curve["label"]) == {"Vanilla"}
    assert set(table.loc[table["device"] == "pcm_uncompensated", "device_label"]) == {"PCM uncompensated"}
    mat = table[table["method"] == "mat"]
    assert set(mat["label"]) == {"MAT (fine-tuned), σ_train = 10%", "MAT (fine-tuned), σ_train = 20%"}  # plain text
    assert len(table) == 2 * len(CONFIGS) * len(TIMES)
    assert save_figure(fig, tmp_path, "accuracy_vs_time")[0].stat().st_size > 1000


def test_accuracy_vs_time_bands_where_they_can_be_told_apart(summary):
    few = summary[summary["method"].isin(["vanilla", "mat"])]  # 3 curves a panel
    fig, table = accuracy_vs_time(few, devices=["pcm", "pcm_uncompensated"], band=("p12", "p88"))
    assert all(any(isinstance(c, PolyCollection) for c in ax.collections) for ax in fig.axes)
    assert {"p12", "p88"} <= set(table.columns)
    assert "Band: 12th–88th percentile" in fig.axes[-1].get_legend().get_title().get_text()
    # the limit is the caller's: with max_bands=2 these 3 curves are drawn without bands
    fig, table = accuracy_vs_time(few, devices=["pcm", "pcm_uncompensated"], band=("p12", "p88"), max_bands=2)
    assert not any(isinstance(c, PolyCollection) for ax in fig.axes for c in ax.collections)
    assert "p12" not in table.columns
    assert "3 curves a panel" in fig.axes[-1].get_legend().get_title().get_text()


def band_extents(ax, color) -> list[tuple[float, float]]:
    """The x extents of the band polygons drawn in ``color``."""
    extents = []
    for collection in ax.collections:
        same = to_rgb(collection.get_facecolor()[0]) == pytest.approx(to_rgb(color))
        if isinstance(collection, PolyCollection) and same:
            for path in collection.get_paths():
                x = path.vertices[:, 0]
                extents.append((float(x.min()), float(x.max())))
    return extents


def test_accuracy_vs_time_band_only_where_ci_exists():
    part = fake_summary(devices={"pcm": DEVICES["pcm"]},
                        configs=[c for c in CONFIGS if c[0] in ("vanilla", "noisy_updates") or c[:2] == ("mat", 0.1)])
    fig, table = accuracy_vs_time(part, devices=["pcm"])
    ax = fig.axes[0]
    # vanilla: CI everywhere, one band over every time
    assert band_extents(ax, method_color("vanilla")) == [(1.0, 10 * YEAR)]
    # one model: no CI, no band
    assert band_extents(ax, method_color("noisy_updates")) == []
    # mat 0.1: CI NaN from 1 year on: the band stops at the last time with a CI
    assert band_extents(ax, method_color("mat")) == [(1.0, 30 * DAY)]
    mat = part[part["method"] == "mat"].sort_values("t_inference")
    polygon = [c for c in ax.collections if to_rgb(c.get_facecolor()[0]) == pytest.approx(method_color("mat"))][0]
    ys = polygon.get_paths()[0].vertices[:, 1]
    finite = mat[mat["ci95_low"].notna()]
    assert set(np.round(ys, 9)) <= set(np.round(np.r_[finite["ci95_low"], finite["ci95_high"]], 9))
    assert min(ys) == pytest.approx(finite["ci95_low"].min()) and max(ys) == pytest.approx(finite["ci95_high"].max())
    # the table holds the band as drawn (NaN where there is none)
    assert table.loc[table["method"] == "noisy_updates", "ci95_low"].isna().all()
    # band=None: no band at all
    fig, _ = accuracy_vs_time(part, devices=["pcm"], band=None)
    assert not any(isinstance(c, PolyCollection) for c in fig.axes[0].collections)
    # a single device names itself in the legend's title
    assert "PCM" in accuracy_vs_time(part, devices=["pcm"])[0].axes[0].get_legend().get_title().get_text()


def test_accuracy_vs_time_errors(summary):
    with pytest.raises(ValueError, match="'pcm_drift'.*not in the device summary"):
        accuracy_vs_time(summary, devices=["pcm", "pcm_drift"])
    with pytest.raises(ValueError, match="lists a device twice"):
        accuracy_vs_time(summary, devices=["pcm", "pcm"])
    with pytest.raises(ValueError, match="'stuck_at'.*t_inference"):
        accuracy_vs_time(summary, devices=["pcm", "stuck_at"])
    no_time = summary[summary["device"].isin(["stuck_at", "gaussian"])].drop(columns="t_inference")
    with pytest.raises(ValueError, match="'gaussian'.*no column 't_inference'"):
        accuracy_vs_time(no_time, devices=["gaussian"])
    with pytest.raises(ValueError, match="ci95_lo"):
        accuracy_vs_time(summary, devices=["pcm"], band=("ci95_lo", "ci95_high"))
    with pytest.raises(ValueError, match="several summary rows"):
        accuracy_vs_time(summary.assign(n_levels=np.nan).replace({"device": {"levels_pcm": "pcm"}}), devices=["pcm"])


# --------------------------------------------------------------------------------------------- stuck at


def test_accuracy_vs_stuck_at(summary, tmp_path):
    fig, table = accuracy_vs_stuck_at(summary, device="stuck_at", title="Stuck")
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines) == [drawn_label(curve_label(*s)) for s in SWEPT]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == list(lines) and not any("σ_" in entry for entry in legend)
    offs = [0.0, 0.01, 0.02, 0.05]
    for (method, sigma_train, levels, noise_sd), swept in zip(CONFIGS, SWEPT):
        line = lines[drawn_label(curve_label(*swept))]
        rows = [row_of(summary, "stuck_at", method, sigma_train, levels, noise_sd, p_stuck_off=p, p_stuck_on=p / 2)
                for p in offs]
        np.testing.assert_allclose(line.get_xdata(), [100 * (r["p_stuck_off"] + r["p_stuck_on"]) for r in rows])
        np.testing.assert_allclose(line.get_xdata(), [0.0, 1.5, 3.0, 7.5])
        np.testing.assert_allclose(line.get_ydata(), [r["mean"] for r in rows])
    assert "equal halves" not in ax.get_xlabel() and "p_stuck_off + p_stuck_on" in ax.get_xlabel()
    assert table.loc[table["method"] == "vanilla", "stuck_pct"].tolist() == pytest.approx([0.0, 1.5, 3.0, 7.5])
    # 7 curves: more bands than can be told apart, none drawn, and the table has none
    assert not any(isinstance(c, PolyCollection) for c in ax.collections)
    assert "No bands (95% CI of the mean):\n7 curves would overlap" in ax.get_legend().get_title().get_text()
    assert "ci95_low" not in table.columns
    assert save_figure(fig, tmp_path, "accuracy_vs_stuck_at")[1].stat().st_size > 1000
    # where the caller allows them: bands only for configurations with a CI (noisy_updates has one model)
    fig, table = accuracy_vs_stuck_at(summary, device="stuck_at", max_bands=len(CONFIGS))
    assert band_extents(fig.axes[0], method_color("vanilla")) == [(0.0, 7.5)]
    assert band_extents(fig.axes[0], method_color("noisy_updates")) == []
    assert "ci95_low" in table.columns


def test_accuracy_vs_stuck_at_equal_halves_and_errors(summary):
    equal = fake_summary(devices={"stuck_at": ("stuck_at", [{"p_stuck_off": p, "p_stuck_on": p} for p in (0, 0.02)])},
                         configs=CONFIGS[:1])
    fig, table = accuracy_vs_stuck_at(equal, device="stuck_at")
    assert fig.axes[0].get_lines()[0].get_xdata().tolist() == [0.0, 4.0]
    assert "equal halves" in fig.axes[0].get_xlabel()
    with pytest.raises(ValueError, match="'stuck'.*not in the device summary"):
        accuracy_vs_stuck_at(summary, device="stuck")
    with pytest.raises(ValueError, match="'pcm'.*p_stuck_off"):
        accuracy_vs_stuck_at(summary, device="pcm")
    with pytest.raises(ValueError, match="'stuck_at'.*no column 'p_stuck_off'"):
        accuracy_vs_stuck_at(summary.drop(columns=["p_stuck_off", "p_stuck_on"]), device="stuck_at")


# --------------------------------------------------------------------------------------------- notebook


def _run_notebook(tmp_path, monkeypatch, **parameters):
    import papermill  # pinned (envs/requirements.txt): a missing one is a broken environment, not a skip
    import ipykernel  # noqa: F401  (the kernel papermill starts)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(REPO / "src")] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    ))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    papermill.execute_notebook(
        str(REPO / "notebooks" / "devices.ipynb"),
        str(tmp_path / "out.ipynb"),
        parameters=parameters,
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
        execution_timeout=120,
    )


def test_devices_notebook_end_to_end(tmp_path, monkeypatch):
    small = {d: DEVICES[d] for d in ("pcm", "pcm_uncompensated", "stuck_at", "gaussian")}
    summary = fake_summary(devices=small, configs=CONFIGS[:3])
    other = summary.assign(task="ecg", mean=0.0)  # another task's rows: left out
    summary_path = tmp_path / "device_summary.parquet"
    pd.concat([summary, other]).to_parquet(summary_path)
    figures, tables = tmp_path / "figs", tmp_path / "tabs"
    _run_notebook(
        tmp_path, monkeypatch,
        summary_path=str(summary_path), task="mnist", figures_dir=str(figures), tables_dir=str(tables),
        devices=["gaussian", "pcm", "pcm_uncompensated", "stuck_at"], time_devices=["pcm", "pcm_uncompensated"],
        stuck_device="stuck_at", center="mean", data_label="synthetic test data",
    )
    for stem in ("device_heatmap", "accuracy_vs_time", "accuracy_vs_stuck_at"):
        for suffix in (".pdf", ".png", ".csv", ".md"):
            directory = figures if suffix in (".pdf", ".png") else tables
            assert (directory / f"{stem}{suffix}").stat().st_size > 0, (stem, suffix)
    heatmap = pd.read_csv(tables / "device_heatmap.csv")
    assert list(dict.fromkeys(heatmap["device"])) == ["gaussian", "pcm", "pcm_uncompensated", "stuck_at"]
    assert (heatmap["mean"] > 0).all() and len(heatmap) == 3 * (1 + 2 * len(TIMES) + 4)
    time = pd.read_csv(tables / "accuracy_vs_time.csv")
    assert set(time["device"]) == {"pcm", "pcm_uncompensated"} and math.isclose(time["t_inference"].max(), 10 * YEAR)


def test_devices_notebook_without_time_or_stuck_figures(tmp_path, monkeypatch):
    summary_path = tmp_path / "device_summary.parquet"
    fake_summary(devices={"rram": DEVICES["rram"]}, configs=CONFIGS[:2]).drop(
        columns=["p_stuck_off", "p_stuck_on", "n_levels", "sigma_inference"]).to_parquet(summary_path)
    figures, tables = tmp_path / "figs", tmp_path / "tabs"
    _run_notebook(
        tmp_path, monkeypatch,
        summary_path=str(summary_path), task="mnist", figures_dir=str(figures), tables_dir=str(tables),
        devices=[], time_devices=[], stuck_device="", center="median", data_label="synthetic",
    )
    assert sorted(p.name for p in figures.iterdir()) == ["device_heatmap.pdf", "device_heatmap.png"]
    assert sorted(p.name for p in tables.iterdir()) == ["device_heatmap.csv", "device_heatmap.md"]
    assert "median" in pd.read_csv(tables / "device_heatmap.csv").columns


def test_devices_notebook_draws_one_figure(tmp_path, monkeypatch):
    """``figure``: one workflow job per figure writes that figure alone."""
    summary_path = tmp_path / "device_summary.parquet"
    fake_summary(devices={"rram": DEVICES["rram"], "stuck_at": DEVICES["stuck_at"]}, configs=CONFIGS[:2]).to_parquet(
        summary_path)
    figures, tables = tmp_path / "figs", tmp_path / "tabs"
    _run_notebook(
        tmp_path, monkeypatch,
        summary_path=str(summary_path), task="mnist", figures_dir=str(figures), tables_dir=str(tables),
        devices=["rram", "stuck_at"], time_devices=["rram"], stuck_device="stuck_at", figure="accuracy_vs_time",
    )
    assert sorted(p.name for p in figures.iterdir()) == ["accuracy_vs_time.pdf", "accuracy_vs_time.png"]
    assert sorted(p.name for p in tables.iterdir()) == ["accuracy_vs_time.csv", "accuracy_vs_time.md"]


@pytest.mark.parametrize("parameters, message", [
    (dict(time_device=["pcm"]), r"unknown parameter.*'time_device'"),  # misspelt time_devices
    (dict(figure="heatmap"), r"figure must be one of"),
    (dict(figure="accuracy_vs_stuck_at", stuck_device=""), r"needs a stuck_device"),
    (dict(figure="device_gain_heatmap"), r"needs paired_path"),
])
def test_devices_notebook_rejects_bad_parameters(tmp_path, monkeypatch, parameters, message):
    import papermill  # pinned (envs/requirements.txt): a missing one is a broken environment, not a skip
    with pytest.raises(papermill.PapermillExecutionError, match=message):
        _run_notebook(tmp_path, monkeypatch, **parameters)
    assert not (tmp_path / "figures").exists()


def paired_device_table() -> pd.DataFrame:
    """MAT against vanilla on 2 seeds x 4 chips: PCM at 1 s the same accuracy on every chip (no
    gain, no spread: an interval of [0, 0] that is no gain), PCM at 1 day 2 points better on
    every chip, 5 % + 2.5 % stuck 3 points worse give or take a point from chip to chip, alike
    for both seeds (2 seeds that differed would leave 1 degree of freedom: no resolved gain)."""
    from memristor_mat.reporting.summary import device_keys, paired_differences

    rows = []
    conditions = [("pcm", "pcm", {"t_inference": 1.0}, 0.0), ("pcm", "pcm", {"t_inference": DAY}, 0.02),
                  ("stuck_at", "stuck_at", {"p_stuck_off": 0.05, "p_stuck_on": 0.025}, -0.03)]
    for method, sigma_train, applies in (("vanilla", 0.0, 0.0), ("mat", 0.2, 1.0)):
        for seed in (14, 15):
            for device, model, condition, gain in conditions:
                for draw in range(4):
                    jitter = 0.01 * (draw % 3 - 1) if device == "stuck_at" else 0.0
                    rows.append({"task": "mnist", "dataset": "d", "arch": "mlp", "method": method,
                                 "sigma_train": sigma_train, "levels": 0, "noise_sd": 0.0, "seed": seed,
                                 "device": device, "noise_model": model,
                                 **{c: np.nan for c in CONDITION_COLUMNS}, **condition, "draw": draw,
                                 "eval_seed": 2024,
                                 "accuracy": 0.8 - 0.05 * draw + applies * (gain + jitter)})
    table = pd.DataFrame(rows)
    return paired_differences(table, keys=device_keys(table), bootstrap_resamples=200)


def test_device_gain_heatmap_draws_the_paired_gains_and_marks_the_unresolved():
    paired = paired_device_table()
    fig, table = device_heatmap(paired, devices=["pcm", "stuck_at"], gain_over="vanilla", title="gains")
    assert list(table["method"]) == ["mat"] * 3 and list(table["condition"]) == [
        "PCM, 1 s", "PCM, 1 day", "stuck 5% + 2.5%"]
    assert list(table["difference"]) == pytest.approx([0.0, 2.0, -3.0], abs=0.5)
    assert list(table["resolved"]) == [False, True, True]
    assert {"ci95_low", "ci95_high", "share_better", "share_worse"} <= set(table.columns)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["(+0.0)", "+2.0", f"{table['difference'].iloc[2]:+.1f}"]
    norm = ax.collections[0].norm  # a diverging scale, symmetric about 0
    assert norm.vmin == pytest.approx(-norm.vmax) and norm.vmax == pytest.approx(table["difference"].abs().max())
    assert "Accuracy − Vanilla (points), paired" in fig.axes[1].get_ylabel()


def test_devices_notebook_draws_the_gain_heatmap(tmp_path, monkeypatch):
    summary_path, paired_path = tmp_path / "device_summary.parquet", tmp_path / "paired.parquet"
    fake_summary(devices={"pcm": DEVICES["pcm"], "stuck_at": DEVICES["stuck_at"]}, configs=CONFIGS[:3]).to_parquet(
        summary_path)
    paired_device_table().to_parquet(paired_path)
    figures, tables = tmp_path / "figs", tmp_path / "tabs"
    _run_notebook(
        tmp_path, monkeypatch, summary_path=str(summary_path), paired_path=str(paired_path), task="mnist",
        figures_dir=str(figures), tables_dir=str(tables), devices=["pcm", "stuck_at"], time_devices=["pcm"],
        stuck_device="stuck_at", figure="device_gain_heatmap",
    )
    assert sorted(p.name for p in figures.iterdir()) == ["device_gain_heatmap.pdf", "device_gain_heatmap.png"]
    gains = pd.read_csv(tables / "device_gain_heatmap.csv")
    assert list(gains["resolved"]) == [False, True, True]
