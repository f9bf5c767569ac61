"""Tests of memristor_mat.reporting's figures and of the papermill figures notebook."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from memristor_mat.reporting.curves import plot_accuracy_vs_noise, plot_sigma_train_curves
from memristor_mat.reporting.heatmaps import plot_sigma_heatmap
from memristor_mat.reporting.style import (
    METHOD_LABELS,
    curve_label,
    drawn_label,
    noise_axis_label,
    sampling_label,
    save_figure,
)
from memristor_mat.reporting.summary import summarise

REPO = Path(__file__).resolve().parents[1]
LEVELS = [0.0, 0.01, 0.05, 0.1, 0.2, 0.3]
CONFIGS = [  # (method, sigma_train, noise level at which accuracy halves)
    ("vanilla", 0.0, 0.15),
    ("noisy_updates", 0.0, 0.16),
    ("mat", 0.1, 0.25),
    ("mat", 0.2, 0.35),
    ("mat_scratch", 0.2, 0.4),
]


def synthetic_table(
    task: str = "mnist", n_models: int = 3, n_draws: int = 4, clean_copies: bool = False
) -> pd.DataFrame:
    """One row per model x level x draw; at the noise-free level one row per model, or (with
    ``clean_copies``, as older evaluations wrote it) that row copied once per draw."""
    rng = np.random.default_rng(0)
    records = []
    for method, sigma_train, half in CONFIGS:
        for seed in range(n_models):
            for sigma_inference in LEVELS:
                clean_acc = None
                for draw in range(n_draws if sigma_inference > 0 or clean_copies else 1):
                    clean = 0.97 - 0.1 * sigma_train
                    acc = 0.1 + (clean - 0.1) / (1 + (sigma_inference / half) ** 4)
                    acc = float(np.clip(acc + rng.normal(0, 0.01), 0, 1))
                    if sigma_inference == 0:
                        clean_acc = acc = clean_acc if clean_acc is not None else acc
                    records.append(dict(
                        task=task, dataset=task, arch="mlp", method=method,
                        sigma_train=sigma_train, seed=seed, noise_model="gaussian",
                        reference="2absmax", sigma_inference=sigma_inference, draw=draw,
                        eval_seed=100 * seed + draw, n_test=1000,
                        n_correct=int(round(acc * 1000)), accuracy=acc,
                    ))
    return pd.DataFrame(records)


@pytest.fixture(scope="module")
def summary() -> pd.DataFrame:
    return summarise(synthetic_table(), bootstrap_resamples=50, seed=0)


def curve_lines(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def test_labels():
    assert METHOD_LABELS["mat"] == "MAT (fine-tuned)"
    assert METHOD_LABELS["mat_scratch"] == "MAT (from scratch)"
    assert curve_label("mat", 0.2) == "MAT (fine-tuned), σ_train = 20%"
    assert curve_label("vanilla", 0.0) == "Vanilla"
    assert curve_label("new_method", 0.05) == "new_method, σ_train = 5%"
    # noise_sd 0 is a trained configuration of QAT + noise (without the noise), not "not applied"
    assert curve_label("qat_noise", 0.0) == "QAT + noise, noise_sd = 0"
    assert curve_label("qat_noise", 0.01) == "QAT + noise, noise_sd = 0.01"
    assert curve_label("qat", 4) == "QAT, 4 levels"


def test_drawn_labels_write_sigma_with_a_subscript():
    # as the axis titles do ($\sigma_\mathrm{inference}$); no visible underscore
    assert drawn_label("MAT (fine-tuned), σ_train = 20%") == r"MAT (fine-tuned), $\sigma_\mathrm{train}$ = 20%"
    assert drawn_label("σ_inference = 5%") == r"$\sigma_\mathrm{inference}$ = 5%"
    assert drawn_label("Published (mean), σ_inference = 5%") == r"Published (mean), $\sigma_\mathrm{inference}$ = 5%"
    assert drawn_label("Vanilla, no noise (97.1%)") == "Vanilla, no noise (97.1%)"
    assert drawn_label("QAT + noise, noise_sd = 0.01") == "QAT + noise, noise_sd = 0.01"


def test_noise_axis_names_the_reference(summary):
    fig, _ = plot_accuracy_vs_noise(summary, curves=[("vanilla", 0.0)])
    assert fig.axes[0].get_xlabel().endswith("(% of 2 max$|W|$)")
    cifar_axis = summary.assign(reference="absmax")
    assert noise_axis_label(cifar_axis).endswith("(% of max$|W|$)")
    assert noise_axis_label(summary.drop(columns="reference")).endswith("(%)")
    mixed = pd.concat([summary, cifar_axis])
    assert noise_axis_label(mixed).endswith("(%)")  # no single reference to name


def test_long_titles_are_wrapped(summary):
    title = "CIFAR_STANDIN (STAND-IN for CIFAR: MNIST digits as 32x32 RGB, MobileNetV2 (demo size)): 2 models"
    fig, _ = plot_accuracy_vs_noise(summary, curves=[("vanilla", 0.0)], title=title)
    shown = fig.axes[0].get_title(loc="left")
    assert "\n" in shown and shown.replace("\n", " ") == title


def test_sampling_label(summary):
    # the noise-free level (one evaluation per model) does not count as "1 draw"
    assert set(summary.loc[summary["sigma_inference"] == 0, "n_draws"]) == {1}
    assert sampling_label(summary) == "3 models × 4 draws"
    old_shape = summarise(synthetic_table(clean_copies=True), bootstrap_resamples=10)
    assert set(old_shape.loc[old_shape["sigma_inference"] == 0, "n_draws"]) == {1}
    assert sampling_label(old_shape) == "3 models × 4 draws"
    assert sampling_label(summarise(synthetic_table(n_models=1, n_draws=7), bootstrap_resamples=10)) == (
        "1 model × 7 draws"
    )
    clean_only = summary[summary["sigma_inference"] == 0]
    assert sampling_label(clean_only) == "3 models × 1 draw"
    # summaries written before n_draws existed
    legacy = summary.drop(columns="n_draws").assign(n_samples=summary["n_models"] * summary["n_draws"])
    assert sampling_label(legacy) == "3 models × 4 draws"
    mixed = summary.copy()
    mixed.loc[mixed["method"] == "mat", "n_models"] = 5
    mixed.loc[mixed["method"] == "mat", "n_draws"] = 100
    assert sampling_label(mixed) == "3–5 models × 4–100 draws"


def test_accuracy_vs_noise_table_is_what_is_plotted(summary):
    curves = [("vanilla", 0.0), ("noisy_updates", 0.0), ("mat", 0.2)]
    fig, table = plot_accuracy_vs_noise(summary, curves=curves, title="demo")
    ax = fig.axes[0]
    lines = curve_lines(ax)
    points = table[table["element"] == "curve"]
    assert list(dict.fromkeys(points["label"])) == [curve_label(m, s) for m, s in curves]
    assert len(points) == 3 * len(LEVELS)
    # the table's labels are plain text; the figure draws sigma's subscript
    assert set(lines) == {drawn_label(label) for label in points["label"]} | {
        drawn_label(label) for label in table.loc[table["element"] == "clean_reference", "label"]}
    assert r"MAT (fine-tuned), $\sigma_\mathrm{train}$ = 20%" in lines
    assert not any("σ_" in text.get_text() for text in fig.axes[0].get_legend().get_texts())
    for label, part in points.groupby("label", sort=False):
        line = lines[drawn_label(label)]
        np.testing.assert_array_equal(line.get_xdata(), part["noise_level_pct"].to_numpy())
        np.testing.assert_array_equal(line.get_ydata(), part["mean"].to_numpy())
    # the table holds the summary's numbers
    mat = points[points["method"] == "mat"]
    expected = summary[(summary["method"] == "mat") & np.isclose(summary["sigma_train"], 0.2)]
    np.testing.assert_allclose(mat["mean"], expected.sort_values("sigma_inference")["mean"])
    np.testing.assert_allclose(mat["p12"], expected.sort_values("sigma_inference")["p12"])
    np.testing.assert_array_equal(mat["n_models"], [3] * len(LEVELS))
    np.testing.assert_array_equal(mat["n_draws"], [1] + [4] * (len(LEVELS) - 1))
    assert "n_samples" not in points.columns
    # shaded bands span exactly p12 .. p88
    assert len(ax.collections) == 3
    for collection, (_, part) in zip(ax.collections, points.groupby("label", sort=False)):
        ys = np.concatenate([p.vertices[:, 1] for p in collection.get_paths()])
        assert ys.min() == pytest.approx(part["p12"].min())
        assert ys.max() == pytest.approx(part["p88"].max())
    # clean reference: dash-dot line at vanilla's clean mean
    ref = table[table["element"] == "clean_reference"]
    assert len(ref) == 1
    ref_line = lines[drawn_label(ref["label"].iloc[0])]
    assert ref_line.get_linestyle() == "-."
    clean = summary[(summary["method"] == "vanilla") & (summary["sigma_inference"] == 0.0)]
    assert set(ref_line.get_ydata()) == {clean["mean"].iloc[0]} == {ref["mean"].iloc[0]}
    assert "%" in ax.get_xlabel() and "%" in ax.get_ylabel()
    assert ax.get_title(loc="left") == "demo"


def test_accuracy_vs_noise_median_iqr_and_no_band(summary):
    fig, table = plot_accuracy_vs_noise(
        summary, curves=[("mat_scratch", 0.2)], center="median", band=("q25", "q75"),
        clean_reference=None,
    )
    assert {"median", "q25", "q75"} <= set(table.columns) and "mean" not in table.columns
    assert (table["element"] == "curve").all()
    line = fig.axes[0].get_lines()[0]
    np.testing.assert_array_equal(line.get_ydata(), table["median"].to_numpy())
    fig, table = plot_accuracy_vs_noise(summary, curves=[("vanilla", 0.0)], band=None)
    assert len(fig.axes[0].collections) == 0
    assert "p12" not in table.columns


def test_missing_curve_names_it_and_lists_available(summary):
    with pytest.raises(ValueError, match=r"'mat', sigma_train=0\.7.*available.*'mat', 0\.1"):
        plot_accuracy_vs_noise(summary, curves=[("vanilla", 0.0), ("mat", 0.7)])
    with pytest.raises(ValueError, match="nope"):
        plot_accuracy_vs_noise(summary, curves=[("nope", 0.0)])
    with pytest.raises(ValueError, match="clean reference|not in the summary"):
        plot_accuracy_vs_noise(summary, curves=[("mat", 0.1)], clean_reference=("x", 0.0))
    with pytest.raises(ValueError, match="available methods"):
        plot_sigma_train_curves(summary, method="nope")
    with pytest.raises(ValueError, match="available methods"):
        plot_sigma_heatmap(summary, methods=["nope"])
    with pytest.raises(ValueError, match="no column"):
        plot_accuracy_vs_noise(summary, curves=[("mat", 0.1)], center="average")


def test_mixed_tasks_are_rejected(summary):
    other = summary.assign(task="cifar10", dataset="cifar10")
    both = pd.concat([summary, other], ignore_index=True)
    with pytest.raises(ValueError, match="filter the summary"):
        plot_accuracy_vs_noise(both, curves=[("vanilla", 0.0)])
    with pytest.raises(ValueError, match="filter the summary"):
        plot_sigma_heatmap(both, methods=["mat"])


def test_sigma_train_curves_table_is_what_is_plotted(summary):
    fig, table = plot_sigma_train_curves(summary, method="mat", center="median", band=("q25", "q75"))
    points = table[table["element"] == "curve"]
    assert list(dict.fromkeys(points["label"])) == ["Vanilla", "σ_train = 10%", "σ_train = 20%"]
    lines = curve_lines(fig.axes[0])
    legend = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert legend[:3] == ["Vanilla", r"$\sigma_\mathrm{train}$ = 10%", r"$\sigma_\mathrm{train}$ = 20%"]
    for label, part in points.groupby("label", sort=False):
        line = lines[drawn_label(label)]
        np.testing.assert_array_equal(line.get_xdata(), part["noise_level_pct"].to_numpy())
        np.testing.assert_array_equal(line.get_ydata(), part["median"].to_numpy())
    assert (table["element"] == "clean_reference").sum() == 1


def test_heatmap_table_is_what_is_plotted(summary):
    fig, table = plot_sigma_heatmap(summary, methods=["mat"])
    assert list(table["method"]) == ["vanilla", "mat", "mat"]
    assert list(table["sigma_train_pct"]) == [0.0, 10.0, 20.0]
    level_cols = [f"{100 * s:g}" for s in LEVELS]
    assert list(table.columns[-len(level_cols):]) == level_cols
    values = table[level_cols].to_numpy(dtype=float)
    ax = fig.axes[0]
    mesh = ax.collections[0]
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(values.shape), values)
    texts = [t.get_text() for t in ax.texts]
    assert texts == [f"{v:.1f}" for v in values.ravel()]
    expected = summary[
        (summary["method"] == "mat") & np.isclose(summary["sigma_train"], 0.2)
        & np.isclose(summary["sigma_inference"], 0.1)
    ]["mean"].iloc[0]
    assert table.loc[2, "10"] == expected
    assert list(table["label"]) == ["Vanilla", "MAT (fine-tuned), σ_train = 10%", "MAT (fine-tuned), σ_train = 20%"]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "Vanilla", r"MAT (fine-tuned), $\sigma_\mathrm{train}$ = 10%", r"MAT (fine-tuned), $\sigma_\mathrm{train}$ = 20%"]


def test_heatmap_has_a_row_per_trained_configuration_of_every_method(summary):
    # QAT models appear as their own rows (one per number of levels), after the MAT rows
    qat = summary[summary["method"] == "vanilla"].assign(method="qat", levels=4)
    qat8 = qat.assign(levels=8, mean=qat["mean"] - 1.0)
    both = pd.concat([summary.assign(levels=0), qat, qat8], ignore_index=True)
    fig, table = plot_sigma_heatmap(both)
    expected = [("vanilla", 0)] + [(m, 0) for m in ("noisy_updates", "mat", "mat_scratch")
                                   for _ in both.loc[both["method"] == m, "sigma_train"].unique()]
    assert list(zip(table["method"], table["levels"])) == expected + [("qat", 4), ("qat", 8)]
    assert list(table["label"])[-2:] == ["QAT, 4 levels", "QAT, 8 levels"]
    np.testing.assert_allclose(table.iloc[-1, -len(LEVELS):].to_numpy(dtype=float),
                               qat8.sort_values("sigma_inference")["mean"].to_numpy())


def test_save_figure_writes_pdf_and_png(tmp_path, summary):
    fig, _ = plot_accuracy_vs_noise(summary, curves=[("vanilla", 0.0)])
    pdf, png = save_figure(fig, tmp_path / "figs", "accuracy_vs_noise")
    assert pdf == tmp_path / "figs" / "accuracy_vs_noise.pdf"
    assert png == tmp_path / "figs" / "accuracy_vs_noise.png"
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    assert sorted(p.name for p in pdf.parent.iterdir()) == [pdf.name, png.name]
    # reproducible output: the same figure built again is saved to the same bytes
    again, _ = plot_accuracy_vs_noise(summary, curves=[("vanilla", 0.0)])
    pdf2, png2 = save_figure(again, tmp_path / "again", "accuracy_vs_noise")
    assert pdf2.read_bytes() == pdf.read_bytes() and png2.read_bytes() == png.read_bytes()


def test_figures_notebook_runs_with_papermill(tmp_path, monkeypatch):
    import papermill  # pinned (envs/requirements.txt): a missing one is a broken environment, not a skip
    import ipykernel  # noqa: F401  (the kernel papermill starts)
    from memristor_mat.reporting.summary import paired_differences

    summary_path, paired_path = tmp_path / "summary.parquet", tmp_path / "paired.parquet"
    summarise(synthetic_table(n_models=2, n_draws=2), bootstrap_resamples=20).to_parquet(
        summary_path
    )
    paired_differences(synthetic_table(n_models=2, n_draws=2), bootstrap_resamples=20).to_parquet(paired_path)
    figures, tables = tmp_path / "figs", tmp_path / "tabs"
    src = str(REPO / "src")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [src] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    ))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    papermill.execute_notebook(
        str(REPO / "notebooks" / "figures.ipynb"),
        str(tmp_path / "out.ipynb"),
        parameters=dict(
            summary_path=str(summary_path),
            paired_path=str(paired_path),
            task="mnist",
            figures_dir=str(figures),
            tables_dir=str(tables),
            headline_method="mat",
            headline_sigma_train=0.2,
            center="median",  # as the ECG tasks: every figure shows it, the heatmap too
            band=["q25", "q75"],
            data_label="synthetic test data",
            show_published=True,
        ),
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
        execution_timeout=120,
    )
    stems = ["accuracy_vs_noise", "gain_vs_noise", "sigma_train_curves", "heatmap_sigma_train_inference"]
    for stem in stems:
        for suffix in (".pdf", ".png"):
            assert (figures / f"{stem}{suffix}").stat().st_size > 0
        for suffix in (".csv", ".md"):
            assert (tables / f"{stem}{suffix}").stat().st_size > 0
    comparison = pd.read_csv(tables / "published_comparison.csv")
    assert set(comparison["method"]) == {"vanilla", "noisy_updates", "mat_scratch"}
    assert (tables / "published_comparison.md").exists()
    figure1 = pd.read_csv(tables / "accuracy_vs_noise.csv")
    # the headline (mat) and, at the same sigma_train, MAT from scratch
    assert set(figure1["method"]) == {"vanilla", "noisy_updates", "mat", "mat_scratch"}
    # show_published: the original's curves beside ours where it has them
    published = figure1[figure1["element"] == "published"]
    assert set(published["method"]) == {"vanilla", "noisy_updates", "mat_scratch"}
    figure2 = pd.read_csv(tables / "sigma_train_curves.csv")  # the published MNIST vanilla beside ours
    assert set(figure2.loc[figure2["element"] == "published", "method"]) == {"vanilla"}
    gain = pd.read_csv(tables / "gain_vs_noise.csv")  # figure 1's curves less the baseline
    assert set(gain["method"]) == {"noisy_updates", "mat", "mat_scratch"}
    heatmap = pd.read_csv(tables / "heatmap_sigma_train_inference.csv")
    written = pd.read_parquet(summary_path)
    expected = written[(written["method"] == "mat") & (written["sigma_train"] == 0.2)
                       & (written["sigma_inference"] == 0.05)]["median"].iloc[0]
    cell = heatmap[(heatmap["method"] == "mat") & (heatmap["sigma_train_pct"] == 20)]["5"].iloc[0]
    assert cell == pytest.approx(expected, abs=0.051)  # the median (written to 0.1 point), not the mean


def test_figures_notebook_rejects_misspelt_parameter(tmp_path, monkeypatch):
    import papermill  # pinned (envs/requirements.txt): a missing one is a broken environment, not a skip
    import ipykernel  # noqa: F401  (the kernel papermill starts)
    monkeypatch.setenv("PYTHONPATH", str(REPO / "src"))
    with pytest.raises(papermill.PapermillExecutionError, match="figure_dir"):
        papermill.execute_notebook(
            str(REPO / "notebooks" / "figures.ipynb"),
            str(tmp_path / "out.ipynb"),
            parameters=dict(figure_dir=str(tmp_path / "figs")),  # misspelt figures_dir
            kernel_name="python3",
            cwd=str(tmp_path),
            progress_bar=False,
            execution_timeout=60,
        )
    assert not (tmp_path / "figs").exists()


def test_figure_one_draws_every_method_at_the_headline_sigma_train(summary, monkeypatch):
    # README "Extending": a new method is one registry entry, and the figures read the registry;
    # the task's first figure named vanilla, noisy_updates, mat and mat_scratch itself
    from types import MappingProxyType

    from memristor_mat import methods as registry
    from memristor_mat.reporting.curves import headline_curves

    # the demo's choice, in the registry's order: vanilla, noisy updates, the headline, MAT the other way
    assert headline_curves(summary, "mat_scratch", 0.2) == [
        ("vanilla", 0.0), ("noisy_updates", 0.0), ("mat_scratch", 0.2), ("mat", 0.2)]
    assert headline_curves(summary[summary["method"] != "noisy_updates"], "mat", 0.1) == [
        ("vanilla", 0.0), ("mat", 0.1)]  # mat_scratch has no 10 % model
    added = registry.Method("mat_epoch", "MAT (one draw per epoch)", "a plug-in", color="#ca9161", marker="X",
                            sweep="sigma_train", starts_from="vanilla")
    monkeypatch.setattr(registry, "METHODS", MappingProxyType({**registry.METHODS, "mat_epoch": added}))
    extended = summary.copy()
    extended.loc[extended["method"] == "mat_scratch", "method"] = "mat_epoch"
    assert headline_curves(extended, "mat", 0.2) == [
        ("vanilla", 0.0), ("noisy_updates", 0.0), ("mat", 0.2), ("mat_epoch", 0.2)]
    fig, table = plot_accuracy_vs_noise(extended, curves=headline_curves(extended, "mat", 0.2))
    assert "mat_epoch" in set(table["method"])
    # another baseline (figures.baseline_method) comes first in vanilla's place
    assert headline_curves(summary, "mat", 0.2, baseline="noisy_updates") == [
        ("noisy_updates", 0.0), ("vanilla", 0.0), ("mat", 0.2), ("mat_scratch", 0.2)]


def test_gain_figure_draws_the_paired_differences_and_their_interval():
    from memristor_mat.reporting.curves import plot_gain_vs_noise
    from memristor_mat.reporting.summary import paired_differences

    paired = paired_differences(synthetic_table(), bootstrap_resamples=50)
    curves = [("vanilla", 0.0), ("noisy_updates", 0.0), ("mat", 0.2)]
    fig, table = plot_gain_vs_noise(paired, curves=curves, title="gain")
    ax = fig.axes[0]
    # the baseline is the zero line, not a curve
    assert set(table["method"]) == {"noisy_updates", "mat"} and (table["baseline"] == "vanilla").all()
    mat = table[table["method"] == "mat"].sort_values("sigma_inference")
    expected = paired[(paired["method"] == "mat") & (paired["sigma_train"] == 0.2)].sort_values("sigma_inference")
    assert list(mat["difference"]) == pytest.approx(list(expected["difference"]))
    assert list(mat["ci95_low"]) == pytest.approx(list(expected["ci95_low"]))
    lines = {line.get_label(): line for line in ax.get_lines()}
    drawn = lines[drawn_label(curve_label("mat", 0.2))]
    assert list(drawn.get_ydata()) == pytest.approx(list(expected["difference"]))
    assert any(list(line.get_ydata()) == [0.0, 0.0] for line in ax.get_lines())  # no gain
    assert "Vanilla" in ax.get_ylabel() and len(ax.collections) == 2  # a CI band per curve
    # MAT gains at high noise in the synthetic table (its accuracy halves later)
    assert expected["difference"].iloc[-1] > 10
    # nothing but the baseline: a figure that says so and an empty table
    fig, table = plot_gain_vs_noise(paired[paired["method"] == "nope"], curves=[("vanilla", 0.0)])
    assert table.empty and "nothing to compare" in fig.axes[0].texts[0].get_text()


def test_published_numbers_are_drawn_beside_ours(summary):
    from memristor_mat.reporting.summary import published_numbers

    published = published_numbers("mnist")
    fig, table = plot_accuracy_vs_noise(
        summary, curves=[("vanilla", 0.0), ("mat_scratch", 0.2), ("mat", 0.2)], published=published
    )
    drawn = table[table["element"] == "published"]
    # the original has vanilla and mat_scratch 20% for MNIST, but no fine-tuned mat
    assert set(drawn["method"]) == {"vanilla", "mat_scratch"}
    vanilla = drawn[drawn["method"] == "vanilla"].sort_values("noise_level_pct")
    assert vanilla["mean"].tolist() == [97.51, 97.47, 96.45, 89.72, 78.03, 63.39, 49.49]
    lines = curve_lines(fig.axes[0])
    line = lines[drawn_label(vanilla["label"].iloc[0])]
    assert line.get_linestyle() == ":"
    assert list(line.get_ydata()) == vanilla["mean"].tolist()


def test_task_comparison_has_one_panel_per_task(summary):
    from memristor_mat.reporting.curves import plot_task_comparison

    other = summary[summary["method"] != "mat_scratch"]
    fig, table = plot_task_comparison(
        [("Spiking", summary), ("Non-spiking", other)],
        curves=[("vanilla", 0.0), ("mat_scratch", 0.2)], center="median", band=("q25", "q75"),
    )
    assert len(fig.axes) == 2
    assert set(table["panel"]) == {"Spiking", "Non-spiking"}
    # a curve a task lacks is left out of that panel only
    assert set(table[table["panel"] == "Non-spiking"]["method"]) == {"vanilla"}
    spiking = table[(table["panel"] == "Spiking") & (table["element"] == "curve")
                    & (table["method"] == "mat_scratch")]
    line = curve_lines(fig.axes[0])[drawn_label(spiking["label"].iloc[0])]
    assert list(line.get_ydata()) == spiking["median"].tolist()
    # one legend, right of the last panel, naming the curves of every panel: mat_scratch is drawn
    # in the first panel only; the clean lines share one entry
    legends = [ax.get_legend() for ax in fig.axes]
    assert legends[0] is None and legends[1] is not None
    entries = [text.get_text() for text in legends[1].get_texts()]
    assert r"MAT (from scratch), $\sigma_\mathrm{train}$ = 20%" in entries and len(entries) == len(set(entries)) == 3
    assert sum("no noise" in entry for entry in entries) == 1


def test_task_comparison_shares_an_axis_that_holds_every_panel(summary):
    # the shared accuracy axis was fixed by the first panel: a later task with lower accuracies
    # (a new, more fragile network) was cut off at the first panel's lowest value
    from memristor_mat.reporting.curves import plot_task_comparison

    stat = ["median", "q25", "q75"]
    fragile = summary.copy()
    fragile[stat] = fragile[stat] * 0.5
    curves = [("vanilla", 0.0), ("mat", 0.2)]
    fig, table = plot_task_comparison([("MLP", summary), ("CNN", fragile)], curves=curves, center="median",
                                      band=("q25", "q75"))
    drawn = table[table["element"] == "curve"]
    for ax in fig.axes:
        bottom, top = ax.get_ylim()
        assert bottom <= drawn[stat].min().min() and top >= drawn[stat].max().max()
        assert top <= 101.0
    # and the same axis whichever task comes first
    swapped, _ = plot_task_comparison([("CNN", fragile), ("MLP", summary)], curves=curves, center="median",
                                      band=("q25", "q75"))
    assert swapped.axes[0].get_ylim() == fig.axes[0].get_ylim()


def test_curves_of_one_method_at_several_sigma_train_get_distinct_colours():
    from memristor_mat.reporting.style import curve_colors, method_color

    curves = [("vanilla", 0.0), ("mat", 0.2), ("mat", 0.1), ("mat_scratch", 0.1)]
    colors = curve_colors(curves)
    assert len({tuple(c) if not isinstance(c, str) else c for c in colors}) == 4
    assert colors[0] == method_color("vanilla") and colors[3] == method_color("mat_scratch")
    # darker = larger sigma_train
    import colorsys
    lightness = [colorsys.rgb_to_hls(*matplotlib_rgb(c))[1] for c in colors[1:3]]
    assert lightness[0] < lightness[1]


@pytest.mark.parametrize("count", [2, 3, 5])
def test_every_methods_shades_are_told_apart_and_seen_on_white(count):
    # QAT's pink sat at the old palette's light end: its 2- and 4-level curves had one colour
    from memristor_mat import methods as registry
    from memristor_mat.reporting.style import MAX_SHADE_LUMINANCE, method_shades, relative_luminance

    for method in registry.method_names():
        luminance = [relative_luminance(c) for c in method_shades(method, count)]
        assert luminance[0] <= MAX_SHADE_LUMINANCE + 1e-9, method
        assert all(a - b >= 0.04 for a, b in zip(luminance, luminance[1:])), (method, luminance)


def matplotlib_rgb(color):
    from matplotlib.colors import to_rgb

    return to_rgb(color)
