"""Tests of memristor_mat.summary: statistics by hand, bootstrap, validation, published numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from memristor_mat.summary import (
    PUBLISHED_COLUMNS,
    SUMMARY_COLUMNS,
    compare_with_published,
    published_numbers,
    summarise,
    write_table,
)


def tidy(rows: list[tuple], **fixed) -> pd.DataFrame:
    """Tidy accuracy table from (method, sigma_train, seed, sigma_inference, draw, accuracy)."""
    base = dict(
        task="mnist", dataset="mnist", arch="mlp", noise_model="gaussian", reference="2absmax",
        n_test=100,
    )
    base.update(fixed)
    records = []
    for method, sigma_train, seed, sigma_inference, draw, accuracy in rows:
        record = dict(base)
        record.update(
            method=method, sigma_train=sigma_train, seed=seed, sigma_inference=sigma_inference,
            draw=draw, eval_seed=1000 * seed + draw, accuracy=accuracy,
            n_correct=int(round(accuracy * base["n_test"])),
        )
        records.append(record)
    return pd.DataFrame(records)


@pytest.fixture
def small_table() -> pd.DataFrame:
    # group A: vanilla at 10%: 2 models x 2 draws, accuracies 0.9, 0.8, 0.7, 0.6
    # group B: vanilla at 0%: 1 model x 1 draw, 0.95
    # group C: mat 0.2 at 10%: 3 models x 1 draw, 0.5, 0.5, 0.8
    return tidy(
        [
            ("vanilla", 0.0, 0, 0.1, 0, 0.9),
            ("vanilla", 0.0, 0, 0.1, 1, 0.8),
            ("vanilla", 0.0, 1, 0.1, 0, 0.7),
            ("vanilla", 0.0, 1, 0.1, 1, 0.6),
            ("vanilla", 0.0, 0, 0.0, 0, 0.95),
            ("mat", 0.2, 0, 0.1, 0, 0.5),
            ("mat", 0.2, 1, 0.1, 0, 0.5),
            ("mat", 0.2, 2, 0.1, 0, 0.8),
        ]
    )


def row(summary: pd.DataFrame, method: str, sigma_train: float, sigma_inference: float) -> pd.Series:
    sel = summary[
        (summary["method"] == method)
        & np.isclose(summary["sigma_train"], sigma_train)
        & np.isclose(summary["sigma_inference"], sigma_inference)
    ]
    assert len(sel) == 1
    return sel.iloc[0]


def test_statistics_match_hand_computation(small_table):
    s = summarise(small_table, bootstrap_resamples=200, seed=1)
    assert list(s.columns) == list(SUMMARY_COLUMNS)
    assert len(s) == 3
    a = row(s, "vanilla", 0.0, 0.1)
    # values 90, 80, 70, 60 (percent)
    assert a["n_models"] == 2 and a["n_samples"] == 4
    assert a["mean"] == pytest.approx(75.0)
    assert a["median"] == pytest.approx(75.0)
    assert a["std"] == pytest.approx(math.sqrt((15**2 + 5**2 + 5**2 + 15**2) / 3))
    # linear interpolation on sorted [60, 70, 80, 90]: position p * 3
    assert a["q25"] == pytest.approx(67.5)
    assert a["q75"] == pytest.approx(82.5)
    assert a["p12"] == pytest.approx(63.6)
    assert a["p88"] == pytest.approx(86.4)
    assert a["noise_level_pct"] == pytest.approx(10.0)
    assert a["sigma_train_pct"] == pytest.approx(0.0)

    b = row(s, "vanilla", 0.0, 0.0)
    assert b["n_models"] == 1 and b["n_samples"] == 1
    assert b["mean"] == pytest.approx(95.0)
    assert math.isnan(b["std"])
    assert b["ci95_low"] == pytest.approx(95.0) and b["ci95_high"] == pytest.approx(95.0)

    c = row(s, "mat", 0.2, 0.1)
    assert c["n_models"] == 3 and c["n_samples"] == 3
    assert c["mean"] == pytest.approx(60.0)
    assert c["median"] == pytest.approx(50.0)
    assert c["sigma_train_pct"] == pytest.approx(20.0)


def test_sorted_and_independent_of_row_order(small_table):
    s1 = summarise(small_table, bootstrap_resamples=300, seed=3)
    shuffled = small_table.sample(frac=1.0, random_state=7).reset_index(drop=True)
    s2 = summarise(shuffled, bootstrap_resamples=300, seed=3)
    pd.testing.assert_frame_equal(s1, s2)
    assert list(s1["method"]) == ["mat", "vanilla", "vanilla"]
    assert list(s1["sigma_inference"]) == [0.1, 0.0, 0.1]


def test_bootstrap_ci_contains_mean_and_is_deterministic(small_table):
    s1 = summarise(small_table, bootstrap_resamples=500, seed=11)
    s2 = summarise(small_table, bootstrap_resamples=500, seed=11)
    pd.testing.assert_frame_equal(s1, s2)
    assert (s1["ci95_low"] <= s1["mean"]).all()
    assert (s1["mean"] <= s1["ci95_high"]).all()
    a = row(s1, "vanilla", 0.0, 0.1)
    assert a["ci95_low"] < a["mean"] < a["ci95_high"]
    assert 60.0 <= a["ci95_low"] and a["ci95_high"] <= 90.0


def test_bootstrap_depends_on_seed():
    acc = np.linspace(0.5, 0.9, 50) ** 2
    table = tidy([("vanilla", 0.0, i % 5, 0.1, i, a) for i, a in enumerate(acc)])
    s1 = summarise(table, bootstrap_resamples=500, seed=11).iloc[0]
    s2 = summarise(table, bootstrap_resamples=500, seed=12).iloc[0]
    assert (s1["ci95_low"], s1["ci95_high"]) != (s2["ci95_low"], s2["ci95_high"])
    assert s1["mean"] == s2["mean"]


def test_bootstrap_ci_of_a_group_does_not_depend_on_other_groups(small_table):
    full = summarise(small_table, bootstrap_resamples=400, seed=5)
    only_vanilla = summarise(
        small_table[small_table["method"] == "vanilla"], bootstrap_resamples=400, seed=5
    )
    a_full = row(full, "vanilla", 0.0, 0.1)
    a_alone = row(only_vanilla, "vanilla", 0.0, 0.1)
    assert a_full["ci95_low"] == a_alone["ci95_low"]
    assert a_full["ci95_high"] == a_alone["ci95_high"]


def test_bootstrap_ci_width_shrinks_like_standard_error():
    rng = np.random.default_rng(0)
    acc = np.clip(rng.normal(0.8, 0.05, size=400), 0, 1)
    table = tidy([("vanilla", 0.0, i % 5, 0.1, i, a) for i, a in enumerate(acc)])
    s = summarise(table, bootstrap_resamples=2000, seed=0).iloc[0]
    se = s["std"] / math.sqrt(400)
    assert (s["ci95_high"] - s["ci95_low"]) == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_float_noise_in_sigma_does_not_split_groups():
    table = tidy(
        [
            ("mat", 0.1 + 0.2, 0, 0.1 + 0.2, 0, 0.5),
            ("mat", 0.3, 1, 0.3, 0, 0.7),
        ]
    )
    s = summarise(table, bootstrap_resamples=10)
    assert len(s) == 1
    assert s.loc[0, "n_models"] == 2
    assert s.loc[0, "noise_level_pct"] == 30.0
    assert s.loc[0, "sigma_train_pct"] == 30.0


def test_missing_columns_are_named(small_table):
    with pytest.raises(ValueError, match=r"seed.*accuracy|accuracy.*seed"):
        summarise(small_table.drop(columns=["seed", "accuracy"]))


@pytest.mark.parametrize("bad", [1.5, -0.01, 97.0, float("nan")])
def test_accuracy_outside_unit_interval_is_rejected(small_table, bad):
    table = small_table.copy()
    table.loc[2, "accuracy"] = bad
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        summarise(table)


def test_empty_table_is_rejected(small_table):
    with pytest.raises(ValueError, match="empty"):
        summarise(small_table.iloc[0:0])


def test_published_numbers_transcription():
    pub = published_numbers()
    assert list(pub.columns) == list(PUBLISHED_COLUMNS)
    combos = pub.groupby(["task", "method", "sigma_train"]).size()
    assert len(combos) == 12
    assert set(pub["task"]) == {"mnist", "cifar10", "cifar100", "ecg"}
    # MNIST has all 7 levels, the others stop at 20%
    assert (combos.loc["mnist"] == 7).all()
    assert (combos.drop(index="mnist", level="task") == 6).all()
    assert len(pub) == 6 * 7 + 6 * 6
    assert not pub.duplicated(["task", "method", "sigma_train", "sigma_inference"]).any()

    def value(task, method, sigma_train, sigma_inference):
        sel = pub[
            (pub["task"] == task) & (pub["method"] == method)
            & np.isclose(pub["sigma_train"], sigma_train)
            & np.isclose(pub["sigma_inference"], sigma_inference)
        ]
        assert len(sel) == 1, (task, method, sigma_train, sigma_inference)
        return sel.iloc[0]

    assert value("mnist", "mat_scratch", 0.2, 0.2)["accuracy_pct"] == 92.72
    assert value("mnist", "vanilla", 0.0, 0.3)["accuracy_pct"] == 49.49
    assert value("mnist", "noisy_updates", 0.0, 0.3)["accuracy_pct"] == 32.74
    assert value("mnist", "mat_scratch", 0.3, 0.0)["accuracy_pct"] == 93.21
    assert value("cifar10", "vanilla", 0.0, 0.2)["accuracy_pct"] == 13.50
    assert value("cifar10", "mat", 0.05, 0.1)["accuracy_pct"] == 86.53
    assert value("cifar100", "vanilla", 0.0, 0.15)["accuracy_pct"] == 8.06
    assert value("cifar100", "mat", 0.05, 0.0)["accuracy_pct"] == 65.06
    ecg = value("ecg", "mat_scratch", 0.1, 0.2)
    assert ecg["accuracy_pct"] == 91.34 and ecg["statistic"] == "median"
    assert value("ecg", "vanilla", 0.0, 0.0)["accuracy_pct"] == 96.64
    assert "absmax" in value("cifar10", "vanilla", 0.0, 0.0)["note"]
    assert set(pub.loc[pub["task"] != "ecg", "statistic"]) == {"mean"}
    assert set(pub.loc[pub["task"] == "ecg", "statistic"]) == {"median"}
    # '-' cells have no row
    assert pub[(pub["task"] == "cifar10") & np.isclose(pub["sigma_inference"], 0.3)].empty


def test_published_numbers_task_filter():
    assert set(published_numbers("cifar100")["task"]) == {"cifar100"}
    assert len(published_numbers("mnist")) == 42
    assert published_numbers("no_such_task").empty


def test_compare_with_published_difference():
    table = tidy(
        [
            ("vanilla", 0.0, 0, 0.0, 0, 0.96),
            ("vanilla", 0.0, 1, 0.0, 0, 0.98),  # mean 97.0 vs 97.51 published
            ("vanilla", 0.0, 0, 0.2, 0, 0.70),  # 70.0 vs 63.39
            ("vanilla", 0.0, 0, 0.25, 0, 0.5),  # level not published: left out
            ("mat", 0.2, 0, 0.2, 0, 0.9),  # published has mat_scratch, not mat: left out
        ]
    )
    s = summarise(table, bootstrap_resamples=10)
    cmp = compare_with_published(s, "mnist")
    assert len(cmp) == 2
    assert set(cmp["method"]) == {"vanilla"}
    assert list(cmp["sigma_inference"]) == [0.0, 0.2]
    assert list(cmp["statistic"]) == ["mean", "mean"]
    assert cmp["published"].tolist() == [97.51, 63.39]
    assert cmp["ours"].tolist() == pytest.approx([97.0, 70.0])
    assert cmp["difference"].tolist() == pytest.approx([97.0 - 97.51, 70.0 - 63.39])
    for col in ("mean", "median", "noise_level_pct", "note"):
        assert col in cmp.columns
    # other tasks of the summary are ignored
    assert compare_with_published(s, "cifar10").empty


def test_compare_with_published_uses_median_for_ecg():
    table = tidy(
        [("mat_scratch", 0.1, i, 0.1, 0, a) for i, a in enumerate([0.90, 0.95, 0.96])],
        task="ecg", dataset="ecg", arch="cnn1d",
    )
    s = summarise(table, bootstrap_resamples=10)
    cmp = compare_with_published(s, "ecg")
    assert len(cmp) == 1
    r = cmp.iloc[0]
    assert r["statistic"] == "median"
    assert r["mean"] == pytest.approx(93.666666, abs=1e-4)
    assert r["ours"] == pytest.approx(95.0)
    assert r["published"] == 93.32
    assert r["difference"] == pytest.approx(95.0 - 93.32)


def test_write_table_writes_csv_and_markdown(tmp_path, small_table):
    s = summarise(small_table, bootstrap_resamples=10)
    stem = tmp_path / "tables" / "summary_sigma_0.2"
    csv_path, md_path = write_table(s, stem)
    assert csv_path == tmp_path / "tables" / "summary_sigma_0.2.csv"
    assert md_path == tmp_path / "tables" / "summary_sigma_0.2.md"
    back = pd.read_csv(csv_path)
    assert list(back.columns) == list(s.columns)
    assert back["mean"].tolist() == pytest.approx(s["mean"].tolist())
    md = md_path.read_text()
    assert md.splitlines()[0].startswith("|") and "mean" in md.splitlines()[0]
    assert "75.00" in md  # floats with 2 decimals
    assert len(md.splitlines()) == 2 + len(s)
    # no temporary files left behind
    assert sorted(p.name for p in stem.parent.iterdir()) == [csv_path.name, md_path.name]


def test_write_table_empty_frame(tmp_path):
    csv_path, md_path = write_table(pd.DataFrame(columns=["a", "b"]), tmp_path / "empty")
    assert csv_path.read_text().strip() == "a,b"
    assert "no rows" in md_path.read_text()


def test_paper_cifar_config_names_its_tasks_as_the_published_curves():
    """figures.show_published looks the curves up by task name: the paper CIFAR config's
    MobileNetV2 tasks must be the published ones, on the published axis (R = max|W|)."""
    from memristor_mat.config import load_config
    from memristor_mat.pipeline import task_noise

    config = load_config(Path(__file__).resolve().parents[1] / "config/paper_cifar.yaml")
    for task in ("cifar10", "cifar100"):
        published = published_numbers(task)
        assert config["tasks"][task]["figures"]["show_published"]
        assert set(zip(published.method, published.sigma_train)) == {("vanilla", 0.0), ("mat", 0.05)}
        assert set(published.sigma_inference) <= set(config["evaluation"]["sigma_inference"])
        assert task_noise(config, task)["options"]["reference"] == "absmax"
        assert published.note.str.contains("absmax").all()
