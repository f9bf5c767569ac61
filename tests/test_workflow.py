"""End to end: the Snakemake workflow on a tiny config in a temporary directory."""

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from memristor_mat import pipeline
from memristor_mat.config import load_config

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")

pytestmark = pytest.mark.slow


def tiny_config():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    task = config["tasks"]["mnist"]
    task["seeds"] = [14, 15]
    task["training"]["epochs"] = 2
    task["training"]["noisy_updates"] = {"last_epochs": 1, "every_n_batches": 20, "relative_sd": 0.01}
    task["methods"] = {
        "vanilla": {},
        "noisy_updates": {},
        "mat": {"sigma_train": [0.2], "training": {"epochs": 1}},
        "mat_scratch": {"sigma_train": [0.1, 0.2]},
    }
    config["evaluation"].update({"sigma_inference": [0, 0.1, 0.2], "draws": 3})
    return config


def snakemake(workdir, *args, timeout=600):
    env = {**os.environ, "PATH": f"{SNAKEMAKE.parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    config_path = workdir / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny_config()))
    result = snakemake(workdir, "--cores", "2", "--configfile", str(config_path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir, config_path


def test_workflow_produces_figures_tables_and_tidy_table(finished_run):
    workdir, config_path = finished_run
    config = load_config(config_path)
    for path in pipeline.figure_files("mnist") + pipeline.table_files("mnist"):
        assert (workdir / path).stat().st_size > 0, path
    table = pd.read_parquet(workdir / "results/mnist/accuracy.parquet")
    runs = pipeline.model_runs(config)
    assert len(runs) == 2 * (1 + 1 + 1 + 2)
    # one row per model x inference level x draw
    assert len(table) == len(runs) * 3 * 3
    assert not table.duplicated(["method", "sigma_train", "seed", "sigma_inference", "draw"]).any()
    assert set(table.method) == {"vanilla", "noisy_updates", "mat", "mat_scratch"}
    assert table.accuracy.between(0, 1).all()
    summary = pd.read_csv(workdir / "results/mnist/summary.csv")
    assert len(summary) == 5 * 3
    assert (summary.n_models == 2).all() and (summary.n_samples == 6).all()
    executed = workdir / "results/notebooks/mnist_figures.ipynb"
    assert executed.exists()


def test_provenance_travels_with_the_results(finished_run):
    workdir, _ = finished_run
    from memristor_mat.runs import read_parquet_metadata

    meta = read_parquet_metadata(workdir / "results/mnist/accuracy.parquet")
    assert {"config_hash", "library_version", "torch_version", "git_commit"} <= meta.keys()


def test_rerun_has_nothing_to_do(finished_run):
    workdir, config_path = finished_run
    result = snakemake(workdir, "-n", "--cores", "1", "--configfile", str(config_path))
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_bad_config_fails_before_any_job(tmp_path):
    config = tiny_config()
    config["tasks"]["mnist"]["training"]["batch_size"] = 0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "--cores", "1", "--configfile", str(path))
    assert result.returncode != 0
    assert "batch_size" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_paper_config_dry_run_shows_the_whole_study(tmp_path):
    result = snakemake(tmp_path, "-n", "--cores", "4", "--configfile", str(REPO / "config/paper_mnist.yaml"))
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    # 5 seeds x (vanilla + noisy_updates + 4 mat + 4 mat_scratch) models, each trained and evaluated
    assert "train              50" in out and "evaluate           50" in out


def test_lint_is_clean():
    result = subprocess.run([str(SNAKEMAKE), "--lint"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
