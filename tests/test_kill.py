"""A real `kill -9` of the whole workflow (Snakemake and its jobs) at several points, then the
same command again: the rerun finishes with exactly the numbers of an uninterrupted run, keeps
what had finished (trained epochs, evaluated chunks of draws), and leaves no partial file. After a hard kill Snakemake's lock stays behind;
the documented way past it is `snakemake --unlock` (it only removes the lock), then the same
command."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from test_workflow import REPO, SNAKEMAKE, path_without_venv

pytestmark = pytest.mark.slow


def kill_config() -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    task = config["tasks"]["mnist"]
    task["seeds"] = [14, 15]  # per task (the demo's train_jobs): four models in one training job
    task["training"]["epochs"] = 3
    task["methods"] = {"vanilla": {}, "mat_scratch": {"sigma_train": [0.2]}}
    task["figures"].update(headline_method="mat_scratch", headline_sigma_train=0.2)
    # no device cross-evaluation: none of the kill points is in it, and it was half of the final
    # run's job time (its job and figures run whole in test_workflow.py; a killed device
    # evaluation resumes from its chunks in test_cli.py)
    for key in ("devices", "device_draws"):
        task["evaluation"].pop(key, None)
    config["tasks"] = {"mnist": task}
    config["comparisons"] = {}
    config["evaluation"].update(sigma_inference=[0, 0.1, 0.2], draws=40, draws_per_chunk=4)
    return config


def command(workdir: Path, config_path: Path, targets=()) -> list[str]:
    # the targets before --configfile, which takes every argument that follows it
    return [str(SNAKEMAKE), *targets, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores", "2",
            "--configfile", str(config_path)]


def run(argv, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PATH": path_without_venv()})


def start_and_kill_when(argv, point, ready, timeout=600) -> None:
    """Start the workflow in its own process group; SIGKILL the whole group once ``ready()``.

    Polled every 10 ms: on an AMD EPYC Zen 5 the mid-training point lasts about 0.13 s (the
    second model's first epoch to the job's end), which polling every 0.2 s missed now and then."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PATH": path_without_venv()}, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert process.poll() is None, f"the workflow ended before the kill point ({point})"
            assert time.monotonic() < deadline, f"the kill point never came ({point})"
            time.sleep(0.01)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:  # the whole group had ended: the assertion above says why
            pass
        process.wait()


def test_kill_9_anywhere_then_rerun_gives_the_uninterrupted_numbers(tmp_path):
    config = kill_config()
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    paths = {}
    for workdir in (reference_dir, killed_dir):
        workdir.mkdir()
        paths[workdir] = workdir / "config.yaml"
        paths[workdir].write_text(yaml.safe_dump(config))
    # the reference only as far as the tables compared below (the killed run goes all the way)
    compared = ("results/mnist/accuracy.parquet", "results/mnist/training_metrics.csv")
    reference = run(command(reference_dir, paths[reference_dir], compared))
    assert reference.returncode == 0, reference.stderr[-3000:]

    argv = command(killed_dir, paths[killed_dir])
    resume = killed_dir / "results/resume/mnist/vanilla/sigma~0"
    kill_points = {
        "data preparation": lambda: (killed_dir / "results/logs/prepare_data/mnist.log").exists(),
        # the job's first model done (its state kept until the job ends), the second one epoch in
        "mid-training, after an epoch": lambda: (resume / "seed~15.pt").exists(),
        # the evaluation job's first chunks of draws done (kept until the job ends)
        "evaluation": lambda: any((killed_dir / "results/progress/evaluation").rglob("model-*.json")),
        "a notebook": lambda: (killed_dir / "results/notebooks/mnist_figures.ipynb").exists(),
    }
    for index, (point, ready) in enumerate(kill_points.items()):
        start_and_kill_when(argv, point, ready)
        if index == 0:
            # the same command stops at the killed run's stale lock, before any job, and says how
            # (Snakemake checks its lock before it looks at any job: once shows it for every point)
            blocked = run(argv)
            assert blocked.returncode != 0 and "--unlock" in blocked.stdout + blocked.stderr, point
        assert run([*argv, "--unlock"]).returncode == 0
    final = run(argv)
    assert final.returncode == 0, final.stderr[-3000:]
    # nothing finished was redone: the finished model came back from its last state, the other
    # continued from its last epoch
    log = (killed_dir / "results/logs/train/mnist/all_methods/all_models.log").read_text()
    assert "vanilla/sigma~0/seed~14.pt from epoch 3 of 3" in log
    assert "vanilla/sigma~0/seed~15.pt from epoch" in log
    log = (killed_dir / "results/logs/evaluate/mnist/all_methods/all_models.log").read_text()
    assert "finished chunks taken from" in log

    # identical numbers: every Monte-Carlo count, every training metric but wall seconds
    ours = pd.read_parquet(killed_dir / "results/mnist/accuracy.parquet")
    theirs = pd.read_parquet(reference_dir / "results/mnist/accuracy.parquet")
    assert ours.equals(theirs)
    metrics = [pd.read_csv(d / "results/mnist/training_metrics.csv").drop(columns="seconds")
               for d in (killed_dir, reference_dir)]
    assert metrics[0].equals(metrics[1])
    assert (killed_dir / "figures/mnist/accuracy_vs_noise.png").stat().st_size > 0
    # no partial file left behind, no resume state of a finished model
    leftovers = [p for p in (killed_dir / "results").rglob("*")
                 if p.name.startswith(".") and p.is_file() and p.name != ".snakemake_timestamp"]  # Snakemake's own
    assert not leftovers, leftovers
    assert not [p for p in (killed_dir / "results/resume").rglob("*") if p.is_file()]
    assert not [p for p in (killed_dir / "results/progress").rglob("*") if p.is_file()]
