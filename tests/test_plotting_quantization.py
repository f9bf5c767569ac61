"""Tests of memristor_mat.reporting.quantization: the QAT figures (accuracy vs levels, vs noise_sd)."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb

from memristor_mat import methods as registry
from memristor_mat.reporting.quantization import (
    format_noise_sd,
    plot_accuracy_vs_levels,
    plot_accuracy_vs_qat_noise,
)
from memristor_mat.runs import ACCURACY_COLUMNS
from memristor_mat.reporting.style import drawn_label, save_figure
from memristor_mat.reporting.summary import published_numbers, summarise

INFERENCE = [0.0, 0.05, 0.1]
QAT_LEVELS = [2, 4, 8, 16, 32]
NOISE_SDS = [0.0, 1e-5, 1e-4, 1e-3, 2.5e-3, 1e-2, 2.5e-2, 5e-2, 1e-1]


def synthetic_table(n_models: int = 3, n_draws: int = 4, qat_noise_levels: int = 4) -> pd.DataFrame:
    """The tidy accuracy table (memristor_mat.runs.ACCURACY_COLUMNS) of vanilla, qat (one model
    per levels value and seed) and qat_noise (one per noise_sd and seed) runs."""
    rng = np.random.default_rng(1)
    configs = [("vanilla", 0, 0.0)]
    configs += [("qat", n, 0.0) for n in QAT_LEVELS]
    configs += [("qat_noise", qat_noise_levels, sd) for sd in NOISE_SDS]
    records = []
    for method, levels, noise_sd in configs:
        for seed in range(n_models):
            for sigma_inference in INFERENCE:
                for draw in range(n_draws if sigma_inference > 0 else 1):
                    clean = 0.97 - (0.04 / levels if levels else 0.0) - 0.1 * noise_sd
                    acc = float(np.clip(clean - sigma_inference * 0.3 + rng.normal(0, 0.005), 0, 1))
                    records.append(dict(
                        task="mnist", dataset="mnist", arch="mlp", method=method, sigma_train=0.0,
                        levels=levels, noise_sd=noise_sd, seed=seed, noise_model="gaussian",
                        reference="2absmax", sigma_inference=sigma_inference, draw=draw,
                        eval_seed=100 * seed + draw, n_test=1000, n_correct=int(round(acc * 1000)),
                        accuracy=acc,
                    ))
    table = pd.DataFrame(records)
    assert list(table.columns) == list(ACCURACY_COLUMNS)
    return table


@pytest.fixture(scope="module")
def summary() -> pd.DataFrame:
    return summarise(synthetic_table(), bootstrap_resamples=20, seed=0)


def published_qat() -> pd.DataFrame:
    """The published QAT numbers of SPEC §5 as published_numbers("mnist") gives them (with the
    columns levels and noise_sd), beside a vanilla row that must be ignored."""
    rows = [("vanilla", 0, 0.0, 97.51)]
    rows += [("qat", n, 0.0, a) for n, a in zip(QAT_LEVELS, [93.87, 96.90, 97.42, 97.62, 97.80])]
    rows += [("qat_noise", 4, sd, a) for sd, a in zip(
        NOISE_SDS, [96.99, 97.00, 97.04, 97.21, 96.86, 97.04, 96.98, 96.77, 96.17])]
    return pd.DataFrame([dict(task="mnist", method=m, sigma_train=0.0, levels=n, noise_sd=sd, sigma_inference=0.0,
                              statistic="mean", accuracy_pct=a, note="") for m, n, sd, a in rows])


#: the lines' labels in the tables (plain text) and as drawn (sigma's subscript in mathtext)
LEVEL_LABELS = ["no inference noise", "σ_inference = 5%", "σ_inference = 10%"]
DRAWN_LEVEL_LABELS = ["no inference noise", r"$\sigma_\mathrm{inference}$ = 5%", r"$\sigma_\mathrm{inference}$ = 10%"]


def lines_by_label(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def expected_curve(summary, method, sigma_inference, x_column):
    rows = summary[(summary["method"] == method) & np.isclose(summary["sigma_inference"], sigma_inference)]
    return rows.sort_values(x_column)


# --------------------------------------------------------------------------- accuracy vs levels


def test_levels_table_is_what_is_plotted(summary):
    fig, table = plot_accuracy_vs_levels(summary)
    ax = fig.axes[0]
    curves = table[table["element"] == "curve"]
    assert list(table.columns) == ["element", "label", "method", "levels", "noise_sd", "sigma_inference",
                                   "noise_level_pct", "n_models", "n_draws", "mean", "p12", "p88"]
    assert set(curves["method"]) == {"qat"}
    assert len(curves) == len(QAT_LEVELS) * len(INFERENCE)
    lines = lines_by_label(ax)
    assert set(lines) == set(DRAWN_LEVEL_LABELS)
    assert [text.get_text() for text in ax.get_legend().get_texts()] == DRAWN_LEVEL_LABELS
    for sigma, label in zip(INFERENCE, LEVEL_LABELS):
        expected = expected_curve(summary, "qat", sigma, "levels")
        part = curves[curves["label"] == label]
        # the table holds the summary's numbers, and the line draws them
        np.testing.assert_array_equal(part["levels"].to_numpy(), QAT_LEVELS)
        for column in ("mean", "p12", "p88", "n_models", "n_draws", "noise_level_pct"):
            np.testing.assert_array_equal(part[column].to_numpy(), expected[column].to_numpy())
        np.testing.assert_array_equal(lines[drawn_label(label)].get_xdata(), QAT_LEVELS)
        np.testing.assert_array_equal(lines[drawn_label(label)].get_ydata(), expected["mean"].to_numpy())
    # a band per line, the noise-free line darkest
    assert len(ax.collections) == len(INFERENCE)
    lightness = [np.mean(to_rgb(lines[label].get_color())) for label in DRAWN_LEVEL_LABELS]
    assert lightness[0] < lightness[1] < lightness[2]
    # log2 axis, ticks at the levels, labelled 2, 4, 8, ...
    assert ax.get_xscale() == "log"
    assert list(ax.get_xticks()) == QAT_LEVELS
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "4", "8", "16", "32"]
    assert "QAT" in ax.get_legend().get_title().get_text()
    assert "3 models × 4 draws" in ax.get_legend().get_title().get_text()


def test_levels_selected_noise_levels_median_iqr_and_no_band(summary):
    fig, table = plot_accuracy_vs_levels(summary, center="median", band=("q25", "q75"), noise_levels=[0.1, 0.0])
    assert sorted(table["sigma_inference"].unique()) == [0.0, 0.1]
    assert {"median", "q25", "q75"} <= set(table.columns) and "mean" not in table.columns
    expected = expected_curve(summary, "qat", 0.1, "levels")
    part = table[table["sigma_inference"] == 0.1]
    np.testing.assert_array_equal(part["q75"].to_numpy(), expected["q75"].to_numpy())
    assert "interquartile range" in fig.axes[0].get_legend().get_title().get_text()

    fig, table = plot_accuracy_vs_levels(summary, band=None, noise_levels=[0.05])
    assert len(fig.axes[0].collections) == 0
    assert list(table.columns[-1:]) == ["mean"] and set(table["sigma_inference"]) == {0.05}


def test_levels_published_points_are_drawn_beside_the_noise_free_line(summary):
    fig, table = plot_accuracy_vs_levels(summary, published=published_qat(), title="MNIST: QAT")
    published = table[table["element"] == "published"]
    assert len(published) == 5
    assert set(published["method"]) == {"qat"} and set(published["sigma_inference"]) == {0.0}
    np.testing.assert_array_equal(published["levels"].to_numpy(), QAT_LEVELS)
    np.testing.assert_array_equal(published["mean"].to_numpy(), [93.87, 96.90, 97.42, 97.62, 97.80])
    line = lines_by_label(fig.axes[0])[drawn_label(published["label"].iloc[0])]
    assert line.get_linestyle() == ":" and line.get_markerfacecolor() == "none"
    np.testing.assert_array_equal(line.get_ydata(), [93.87, 96.90, 97.42, 97.62, 97.80])
    # the colour of the noise-free line
    assert line.get_color() == lines_by_label(fig.axes[0])["no inference noise"].get_color()
    assert fig.axes[0].get_title(loc="left") == "MNIST: QAT"
    # not drawn when the noise-free line is not
    _, table = plot_accuracy_vs_levels(summary, published=published_qat(), noise_levels=[0.05])
    assert set(table["element"]) == {"curve"}


def test_levels_errors(summary):
    with pytest.raises(ValueError, match="no rows of method 'qat'.*available methods"):
        plot_accuracy_vs_levels(summary[summary["method"] != "qat"])
    with pytest.raises(ValueError, match=r"no column\(s\) \['p13'\]"):
        plot_accuracy_vs_levels(summary, band=("p12", "p13"))
    with pytest.raises(ValueError, match=r"no column\(s\) \['average'\]"):
        plot_accuracy_vs_levels(summary, center="average")
    with pytest.raises(ValueError, match="pair"):
        plot_accuracy_vs_levels(summary, band=("p12",))
    with pytest.raises(ValueError, match="inference noise level 0.3 .* available"):
        plot_accuracy_vs_levels(summary, noise_levels=[0.3])
    with pytest.raises(ValueError, match=r"no column\(s\) \['levels'"):
        plot_accuracy_vs_levels(summary.drop(columns=["levels"]))
    two_tasks = pd.concat([summary, summary.assign(task="other", dataset="other")], ignore_index=True)
    with pytest.raises(ValueError, match="several summary rows.*task"):
        plot_accuracy_vs_levels(two_tasks)
    with pytest.raises(ValueError, match=r"published numbers of 'qat' have no column\(s\) \['levels'"):
        plot_accuracy_vs_levels(summary, published=published_qat().drop(columns=["levels"]))


# --------------------------------------------------------------------------- accuracy vs qat noise


def test_qat_noise_table_is_what_is_plotted(summary):
    fig, table = plot_accuracy_vs_qat_noise(summary)
    ax = fig.axes[0]
    curves = table[table["element"] == "curve"]
    assert set(curves["method"]) == {"qat_noise"} and set(curves["levels"]) == {4}
    assert len(curves) == len(NOISE_SDS) * len(INFERENCE)
    lines = lines_by_label(ax)
    for sigma, label in zip(INFERENCE, LEVEL_LABELS):
        expected = expected_curve(summary, "qat_noise", sigma, "noise_sd")
        part = curves[curves["label"] == label]
        np.testing.assert_array_equal(part["noise_sd"].to_numpy(), NOISE_SDS)
        for column in ("mean", "p12", "p88", "n_models", "n_draws"):
            np.testing.assert_array_equal(part[column].to_numpy(), expected[column].to_numpy())
        np.testing.assert_array_equal(lines[drawn_label(label)].get_xdata(), NOISE_SDS)
        np.testing.assert_array_equal(lines[drawn_label(label)].get_ydata(), expected["mean"].to_numpy())
    # symlog: linear up to the smallest positive noise_sd, so 0 is on the axis
    assert ax.get_xscale() == "symlog"
    assert ax.xaxis.get_transform().linthresh == pytest.approx(1e-5)
    assert ax.get_xlim()[0] < 0.0 < ax.get_xlim()[1]
    assert list(ax.get_xticks()) == pytest.approx([0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1])
    assert list(ax.get_xticks(minor=True)) == pytest.approx([2.5e-3, 2.5e-2, 5e-2])
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1e-5", "1e-4", "1e-3", "0.01", "0.1"]
    assert "QAT + noise, 4 levels" in ax.get_legend().get_title().get_text()


def test_qat_noise_published_points_of_the_same_levels(summary):
    fig, table = plot_accuracy_vs_qat_noise(summary, published=published_qat())
    published = table[table["element"] == "published"]
    np.testing.assert_array_equal(published["noise_sd"].to_numpy(), NOISE_SDS)
    np.testing.assert_array_equal(
        published["mean"].to_numpy(), [96.99, 97.00, 97.04, 97.21, 96.86, 97.04, 96.98, 96.77, 96.17])
    assert set(published["levels"]) == {4} and set(published["sigma_inference"]) == {0.0}
    line = lines_by_label(fig.axes[0])[drawn_label(published["label"].iloc[0])]
    assert line.get_linestyle() == ":" and line.get_markerfacecolor() == "none"
    # the published runs had 4 levels: not drawn beside an 8-level summary
    eight = summarise(synthetic_table(n_models=2, n_draws=2, qat_noise_levels=8), bootstrap_resamples=5)
    fig, table = plot_accuracy_vs_qat_noise(eight, published=published_qat())
    assert set(table["element"]) == {"curve"}
    assert "8 levels" in fig.axes[0].get_legend().get_title().get_text()


def test_qat_noise_axis_without_positive_noise_and_with_one_value(summary):
    zero = summary[(summary["method"] != "qat_noise") | (summary["noise_sd"] == 0.0)]
    fig, table = plot_accuracy_vs_qat_noise(zero, band=None)
    ax = fig.axes[0]
    assert ax.xaxis.get_transform().linthresh == pytest.approx(1e-5)  # the default
    assert set(table["noise_sd"]) == {0.0}
    some = summary[(summary["method"] != "qat_noise") | summary["noise_sd"].isin([0.0, 2.5e-3, 5e-2])]
    fig, _ = plot_accuracy_vs_qat_noise(some)
    ax = fig.axes[0]
    assert ax.xaxis.get_transform().linthresh == pytest.approx(2.5e-3)
    assert list(ax.get_xticks()) == pytest.approx([0.0, 1e-2])
    assert list(ax.get_xticks(minor=True)) == pytest.approx([2.5e-3, 5e-2])


def test_qat_noise_errors(summary):
    with pytest.raises(ValueError, match="no rows of method 'qat_noise'"):
        plot_accuracy_vs_qat_noise(summary[summary["method"] != "qat_noise"])
    with pytest.raises(ValueError, match=r"no column\(s\) \['ci95_hi'\]"):
        plot_accuracy_vs_qat_noise(summary, band=("ci95_low", "ci95_hi"))
    mixed = pd.concat([summary, summarise(synthetic_table(n_models=2, n_draws=2, qat_noise_levels=8),
                                          bootstrap_resamples=5).query("method == 'qat_noise'")])
    with pytest.raises(ValueError, match=r"several numbers of levels \[4, 8\]"):
        plot_accuracy_vs_qat_noise(mixed)


def test_noise_sd_tick_labels():
    assert [format_noise_sd(v) for v in (0, 1e-5, 1e-4, 1e-3, 2.5e-3, 0.01, 0.05, 0.1, 1.0)] == [
        "0", "1e-5", "1e-4", "1e-3", "2.5e-3", "0.01", "0.05", "0.1", "1"]


# --------------------------------------------------------------------------- both


@pytest.mark.parametrize("plot", [plot_accuracy_vs_levels, plot_accuracy_vs_qat_noise])
def test_figures_save_to_pdf_and_png(tmp_path, summary, plot):
    fig, _ = plot(summary, published=published_qat(), title="A long title " * 8)
    pdf, png = save_figure(fig, tmp_path, plot.__name__)
    assert pdf.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    legend = fig.axes[0].get_legend()
    assert legend.get_bbox_to_anchor().bounds[0] > fig.axes[0].get_window_extent().x1 - 1  # outside, right


@pytest.mark.parametrize("method, x_column, xs", [("qat", "levels", QAT_LEVELS), ("qat_noise", "noise_sd", NOISE_SDS)])
def test_the_registry_names_these_figures(summary, method, x_column, xs):
    # the named figure is the method's own: it draws that method's rows along its own setting
    (reference,) = registry.METHODS[method].figures.values()
    module, name = reference.split(":")
    _, table = getattr(importlib.import_module(module), name)(summary)
    curves = table[table["element"] == "curve"]
    assert set(curves["method"]) == {method}
    for sigma in INFERENCE:
        part = curves[np.isclose(curves["sigma_inference"], sigma)]
        expected = expected_curve(summary, method, sigma, x_column)
        np.testing.assert_allclose(part[x_column].to_numpy(), xs, rtol=1e-12)
        np.testing.assert_array_equal(part["mean"].to_numpy(), expected["mean"].to_numpy())


def test_with_the_shipped_published_numbers(summary):
    published = published_numbers("mnist")
    # published.csv ships the QAT rows (SPEC §5): their absence is a broken package, not a skip
    assert {"levels", "noise_sd"} <= set(published.columns)
    assert set(published["method"]) >= {"qat", "qat_noise"}
    # SPEC §5: the numbers drawn are the published ones
    _, table = plot_accuracy_vs_levels(summary, published=published)
    drawn = table[table["element"] == "published"]
    np.testing.assert_array_equal(drawn["levels"].to_numpy(), QAT_LEVELS)
    np.testing.assert_array_equal(drawn["mean"].to_numpy(), [93.87, 96.90, 97.42, 97.62, 97.80])
    _, table = plot_accuracy_vs_qat_noise(summary, published=published)
    drawn = table[table["element"] == "published"]
    np.testing.assert_allclose(drawn["noise_sd"].to_numpy(), NOISE_SDS, rtol=1e-12)
    np.testing.assert_array_equal(
        drawn["mean"].to_numpy(), [96.99, 97.00, 97.04, 97.21, 96.86, 97.04, 96.98, 96.77, 96.17])
