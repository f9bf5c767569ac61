"""End to end: the Snakemake workflow on a tiny config in a temporary directory."""

import copy
import json
import os
import re
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
        # QAT with seeds of its own: the method registry's settings, folders and figures
        "qat": {"levels": [2, 4], "seeds": [14], "training": {"epochs": 1, "lr_scheduler": None}},
        "qat_noise": {"levels": 4, "noise_sd": [0.01], "seeds": [14], "training": {"epochs": 1, "lr_scheduler": None}},
    }
    config["evaluation"].update({"sigma_inference": [0, 0.1, 0.2], "draws": 3})
    task["evaluation"]["device_draws"] = 2  # every device model of the demo, 2 draws each
    cnn = config["tasks"]["cifar_standin"]  # the CIFAR code path: MobileNetV2, augmentation, absmax
    cnn["seeds"] = [14]
    cnn["model"]["inverted_residual_setting"] = [[1, 8, 1, 1], [4, 16, 1, 2]]
    cnn["training"].update(epochs=1, lr_scheduler=None)
    cnn["methods"]["mat"] = {"sigma_train": [0.2], "training": {"epochs": 1}}
    cnn["evaluation"] = {"draws": 2, "draws_per_chunk": 1}
    # the demo trains and evaluates per method (mnist here); the CIFAR task per model, as the paper configs
    cnn["resources"].update(train_jobs="per_model", evaluate_jobs="per_model")
    config["tasks"] = {"mnist": task, "cifar_standin": cnn}
    config["comparisons"] = {}
    return config


def path_without_venv() -> str:
    """PATH without the venv's bin folder (as for a user who calls .venv/bin/snakemake without
    activating the venv): the rules must find papermill and python through Snakemake's own
    interpreter, not through PATH."""
    venv_bin = str(SNAKEMAKE.parent)
    return os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p and p != venv_bin)


# a guard against a hung run, not a speed test: generous, as the tests share the cores (xdist)
def snakemake(workdir, *args, timeout=1500):
    env = {**os.environ, "PATH": path_without_venv()}
    return subprocess.run(
        [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )


def job_count(dry_run_output: str, rule: str) -> int:
    """A rule's count in the 'Job stats' table of a dry run."""
    match = re.search(rf"^{rule}\s+(\d+)$", dry_run_output, re.MULTILINE)
    assert match, f"rule {rule} is not in the dry run's job stats"
    return int(match.group(1))


def dry_run(workdir, config_path, *args) -> str:
    """The output of a successful dry run of ``config_path`` (with ``args``, e.g. a profile)."""
    result = snakemake(workdir, "-n", *(args or ("--cores", "4")), "--configfile", str(config_path))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def run_workflow(workdir, config):
    """The whole workflow on ``config`` in ``workdir``; returns (workdir, config path)."""
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "--cores", "2", "--configfile", str(config_path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir, config_path


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    return run_workflow(tmp_path_factory.mktemp("workflow"), tiny_config())


def test_cnn_standin_goes_through_the_workflow(finished_run):
    workdir, _ = finished_run
    table = pd.read_parquet(workdir / "results/cifar_standin/accuracy.parquet")
    # vanilla + mat, 1 seed; the clean level once, 2 noisy levels x 2 draws (the task's override)
    assert len(table) == 2 * (1 + 2 * 2)
    assert set(table.arch) == {"mobilenet_v2_cifar"} and set(table.reference) == {"absmax"}
    metrics = pd.read_csv(workdir / "results/cifar_standin/training_metrics.csv")
    assert metrics.test_accuracy_clean.max() > 0.2  # above chance (0.1) after one epoch
    # evaluated per model: a shard per model, at the model's own path
    shards = sorted(p.relative_to(workdir).as_posix() for p in (workdir / "results/evaluation/cifar_standin").rglob("*.parquet"))
    assert shards == ["results/evaluation/cifar_standin/mat/sigma~0.2/seed~14.parquet",
                      "results/evaluation/cifar_standin/vanilla/sigma~0/seed~14.parquet"]
    for path in pipeline.figure_files("cifar_standin"):
        assert (workdir / path).stat().st_size > 0, path


def test_workflow_produces_figures_tables_and_tidy_table(finished_run):
    workdir, config_path = finished_run
    config = load_config(config_path)
    for path in pipeline.figure_files("mnist") + pipeline.table_files("mnist"):
        assert (workdir / path).stat().st_size > 0, path
    table = pd.read_parquet(workdir / "results/mnist/accuracy.parquet")
    runs = pipeline.model_runs(config, "mnist")
    assert len(runs) == 2 * (1 + 1 + 1 + 2) + 2 + 1
    # one row per model x inference level x draw; the noise-free level once per model
    assert len(table) == len(runs) * (1 + 2 * 3)
    assert not table.duplicated(["method", "sigma_train", "levels", "noise_sd", "seed", "sigma_inference",
                                 "draw"]).any()
    assert set(table.method) == {"vanilla", "noisy_updates", "mat", "mat_scratch", "qat", "qat_noise"}
    assert table.accuracy.between(0, 1).all()
    # the settings of the method registry are columns: 0 where they do not apply
    assert sorted(table.loc[table.method == "qat", "levels"].unique()) == [2, 4]
    assert (table.loc[table.method == "qat_noise", ["levels", "noise_sd"]] == [4, 0.01]).all().all()
    assert (table.loc[~table.method.str.startswith("qat"), ["levels", "noise_sd"]] == 0).all().all()
    summary = pd.read_csv(workdir / "results/mnist/summary.csv")
    assert len(summary) == (5 + 3) * 3
    assert (summary.n_models == summary.method.map(lambda m: 1 if m.startswith("qat") else 2)).all()
    assert (summary.n_draws == summary.sigma_inference.map(lambda s: 1 if s == 0 else 3)).all()
    per_model = pd.read_csv(workdir / "results/mnist/tables/per_model.csv")
    assert len(per_model) == len(runs) * 3
    # evaluated per task (the demo's resources.evaluate_jobs): one shard with every model
    shards = sorted(p.relative_to(workdir).as_posix() for p in (workdir / "results/evaluation/mnist").rglob("*.parquet"))
    assert shards == ["results/evaluation/mnist/all_methods/all_models.parquet"]
    shard = pd.read_parquet(workdir / shards[0])
    mat = shard[shard.method == "mat_scratch"]
    assert sorted(set(zip(mat.sigma_train, mat.seed))) == [(0.1, 14), (0.1, 15), (0.2, 14), (0.2, 15)]
    assert len(shard) == len(table)
    # the QAT models are quantised: the deployed weights of a 2-level model take 2 values per tensor
    import torch
    state = torch.load(workdir / "results/models/mnist/qat/levels~2/seed~14/model.pt", weights_only=True)
    assert all(len(w.unique()) <= 2 for w in state["state_dict"].values())
    # QAT's own figures, from notebooks/method_figure.ipynb
    assert len(pipeline.method_figure_files(config, "mnist")) == 2 * 4
    for path in pipeline.method_figure_files(config, "mnist"):
        assert (workdir / path).stat().st_size > 0, path
    levels = pd.read_csv(workdir / "results/mnist/tables/accuracy_vs_levels.csv")
    assert sorted(levels.loc[levels.element == "curve", "levels"].unique()) == [2, 4]
    executed = workdir / "results/notebooks/mnist_figures.ipynb"
    assert executed.exists()


def test_cross_evaluation_on_every_device(finished_run):
    from memristor_mat.noise import make_noise_model

    workdir, config_path = finished_run
    config = load_config(config_path)
    runs = pipeline.model_runs(config, "mnist")
    devices = pipeline.monte_carlo_settings(config, "mnist").devices
    conditions = sum(len(d.conditions) for d in devices)
    # the demo's noise-free conditions (no stuck devices: the anchor of accuracy_vs_stuck_at)
    noise_free = [(d.name, c) for d in devices for c in d.conditions
                  if make_noise_model(d.model, d.options).is_identity(c)]
    assert [name for name, _ in noise_free] == ["stuck_at"]
    table = pd.read_parquet(workdir / "results/mnist/device_accuracy.parquet")
    # one row per model x device condition x draw (2 draws); a noise-free condition is the clean
    # network whatever the draw: one row per model
    assert len(table) == len(runs) * ((conditions - len(noise_free)) * 2 + len(noise_free))
    assert set(table.device) == {d.name for d in devices}
    assert set(table.noise_model) == {"gaussian", "pcm", "rram", "levels+pcm", "stuck_at"}
    # one column per condition key, empty where a device does not have it
    pcm = table[table.device == "pcm"]
    assert pcm.t_inference.notna().all() and pcm.sigma_inference.isna().all() and pcm.p_stuck_on.isna().all()
    assert sorted(table.loc[table.device == "levels_pcm", "n_levels"].unique()) == [16]
    # the Gaussian device is the study's noise: the same draws give the same numbers
    study = pd.read_parquet(workdir / "results/mnist/accuracy.parquet")
    keys = ["method", "sigma_train", "levels", "noise_sd", "seed", "draw"]
    gaussian = table[table.device == "gaussian"].merge(
        study[study.sigma_inference == 0.1], on=keys, suffixes=("", "_study"))
    assert len(gaussian) == len(runs) * 2 and (gaussian.n_correct == gaussian.n_correct_study).all()
    summary = pd.read_csv(workdir / "results/mnist/device_summary.csv")
    configurations = table.groupby(["method", "sigma_train", "levels", "noise_sd"]).ngroups
    assert len(summary) == configurations * conditions
    clean = (summary.device == "stuck_at") & (summary.p_stuck_off == 0) & (summary.p_stuck_on == 0)
    assert (summary.loc[~clean, "n_draws"] == 2).all() and (summary.loc[clean, "n_draws"] == 1).all()
    assert summary["mean"].between(0, 100).all()
    for path in pipeline.device_figure_files(config, "mnist"):
        assert (workdir / path).stat().st_size > 0, path
    heatmap = pd.read_csv(workdir / "results/mnist/tables/device_heatmap.csv")
    assert len(heatmap) == configurations * conditions


def test_provenance_travels_with_the_results(finished_run):
    workdir, _ = finished_run
    from memristor_mat.runs import read_parquet_metadata

    meta = read_parquet_metadata(workdir / "results/mnist/accuracy.parquet")
    assert {"config_hash", "library_version", "torch_version", "git_commit"} <= meta.keys()
    import torch

    # the aggregation job imports no torch: it records the torch its shards were computed with
    assert meta["torch_version"] == torch.__version__


def test_rerun_has_nothing_to_do(finished_run):
    workdir, config_path = finished_run
    result = snakemake(workdir, "-n", "--cores", "1", "--configfile", str(config_path))
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_fresh_clone_with_committed_figures_recomputes_everything(tmp_path):
    """A clone has the committed figures, tables and summaries but none of the ignored files
    (models, shards, the tidy table): `make demo` must still recompute, not find nothing to do."""
    config = tiny_config()
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    committed = [path for task in config["tasks"] for path in
                 pipeline.figure_files(task) + pipeline.table_files(task) + [pipeline.task_results(task, "summary.csv")]]
    for path in committed:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("committed")
    out = dry_run(tmp_path, config_path, "--cores", "2")
    # the demo's MNIST trains in one job (resources.train_jobs: per_task), the CIFAR stand-in per model here
    loaded = load_config(config_path)
    assert job_count(out, "train_task") == 1
    assert job_count(out, "train") == len(pipeline.model_runs(loaded, "cifar_standin"))
    assert job_count(out, "figures") == len(config["tasks"])


def test_training_and_evaluation_group_their_jobs_independently(tmp_path):
    # per-method training with per-model evaluation, the other way round, and a task evaluated in
    # one job: each job reads the checkpoints it needs from the jobs that write them
    config = tiny_config()
    config["tasks"]["mnist"]["resources"].update(train_jobs="per_method", evaluate_jobs="per_model")
    config["tasks"]["cifar_standin"]["resources"].update(train_jobs="per_model", evaluate_jobs="per_method")
    config["tasks"]["cnn_per_task"] = copy.deepcopy(config["tasks"]["cifar_standin"])
    config["tasks"]["cnn_per_task"]["resources"].update(train_jobs="per_task", evaluate_jobs="per_task")
    # a job per setting (its seeds) for training and evaluation alike
    config["tasks"]["mnist_per_setting"] = copy.deepcopy(config["tasks"]["mnist"])
    config["tasks"]["mnist_per_setting"]["resources"].update(train_jobs="per_setting", evaluate_jobs="per_setting")
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    out = dry_run(tmp_path, config_path, "--cores", "2")
    loaded = load_config(config_path)
    mnist, cifar = (pipeline.model_runs(loaded, task) for task in ("mnist", "cifar_standin"))
    settings = {(run.method, run.setting) for run in mnist}
    assert len(settings) < len(mnist)  # seeds to group
    assert job_count(out, "train_method") == len({run.method for run in mnist})
    assert job_count(out, "train_setting") == len(settings)
    assert job_count(out, "train_task") == 1
    assert job_count(out, "train") == len(cifar)
    assert job_count(out, "evaluate") == len(mnist) + len({run.method for run in cifar}) + 1 + len(settings)
    assert job_count(out, "evaluate_devices") == len(mnist) + len(settings)


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
    out = dry_run(tmp_path, REPO / "config/paper_mnist.yaml")
    # 5 seeds x (vanilla + noisy_updates + 4 mat + 4 mat_scratch) models, plus the original's QAT
    # grid (3 seeds x 5 level counts) and QAT + noise (10 seeds x 9 noise sds), each trained and
    # evaluated; QAT's two figures
    models = 5 * 10 + 3 * 5 + 10 * 9
    assert job_count(out, "train") == models and job_count(out, "evaluate") == models
    assert job_count(out, "method_figure") == 2
    # the cross-evaluation: every model on every device, its four figures (the heatmap, the
    # paired gains over vanilla, against time, against stuck devices)
    assert job_count(out, "evaluate_devices") == models and job_count(out, "device_figure") == 4
    assert job_count(out, "fetch_raw_data") == 1  # full MNIST, downloaded once before preparation


# the rules whose jobs a cluster queues; every other rule is light (tables, figures, targets) or
# needs the network (fetching raw data) and must run where the workflow was started
BATCH_RULES = {"prepare_data", "train", "train_setting", "train_method", "train_task", "evaluate", "evaluate_devices"}


def test_every_rule_but_the_heavy_ones_is_a_localrule():
    texts = [(REPO / "Snakefile").read_text(), *(p.read_text() for p in sorted((REPO / "rules").glob("*.smk")))]
    # "rule name:" and "use rule other as name" (each match: one group empty)
    matches = [m for text in texts for m in re.findall(r"^(?:rule (\w+):|use rule \w+ as (\w+))", text, re.MULTILINE)]
    rules = {defined or reused for defined, reused in matches}
    block = re.search(r"^localrules:\n((?:    \w+,\n)+)", texts[0], re.MULTILINE)
    local = set(re.findall(r"\w+", block.group(1)))
    assert local <= rules, local - rules
    assert rules - local == BATCH_RULES, rules - local



def test_every_notebook_job_is_retried_once():
    # a Jupyter kernel can lose one of its ports to a process starting beside it (papermill#511):
    # every rule that runs papermill retries, and no other rule does
    texts = [p.read_text() for p in sorted((REPO / "rules").glob("*.smk"))]
    blocks = [b for text in texts for b in re.split(r"(?m)^(?=rule |use rule )", text) if b.startswith(("rule", "use"))]
    notebooks = {re.match(r"\S+ (\w+)", b).group(1) for b in blocks if "runner=PAPERMILL" in b}
    retried = {re.match(r"\S+ (\w+)", b).group(1) for b in blocks if re.search(r"^    retries: NOTEBOOK_RETRIES$", b, re.MULTILINE)}
    assert notebooks == {"figures", "method_figure", "device_figure", "compare_tasks", "heartbeat_figure"}
    assert retried == notebooks
    common = (REPO / "rules/common.smk").read_text()
    assert int(re.search(r"^NOTEBOOK_RETRIES = (\d+)$", common, re.MULTILINE).group(1)) >= 1

def test_jobs_go_by_stage_training_then_evaluation_then_tables_and_figures():
    # the scheduler orders ready jobs of one priority as it likes; by stage, the long chains start
    # first and the short table and figure jobs fill the end (rules/common.smk)
    texts = [(REPO / "Snakefile").read_text(), *(p.read_text() for p in sorted((REPO / "rules").glob("*.smk")))]
    constants = {name: int(value) for text in texts
                 for name, value in re.findall(r"^(\w+_PRIORITY) = (\d+)$", text, re.MULTILINE)}
    priority = {}
    for text in texts:
        for block in re.split(r"^(?=rule \w+:)", text, flags=re.MULTILINE):
            name = re.match(r"rule (\w+):", block)
            if name:
                given = re.search(r"^    priority: (\w+)$", block, re.MULTILINE)
                priority[name.group(1)] = constants[given.group(1)] if given else 0
    first = {"fetch_raw_data", "prepare_data", "train", "train_method"}
    evaluations = {"evaluate", "evaluate_devices"}
    rest = set(priority) - first - evaluations
    assert {"aggregate", "figures", "compare_tasks", "record_traces"} <= rest
    assert min(priority[r] for r in first) > max(priority[r] for r in evaluations)
    assert min(priority[r] for r in evaluations) > max(priority[r] for r in rest)


def test_lint_is_clean():
    result = subprocess.run([str(SNAKEMAKE), "--lint"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


ECG_TASKS = ("ecg", "ecg_tanh", "ecg_improved")


def tiny_ecg_config():
    """The demo's ECG tasks (the original spiking and tanh networks, this project's network),
    shrunk: synthetic records, tiny networks, one seed."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for name in ECG_TASKS:
        task = config["tasks"][name]
        task["dataset"]["options"]["beats_per_record"] = 160
        task["model"]["hidden_size"] = 8
        task["seeds"] = [3]
        task["training"] = {**task["training"], "epochs": 1}
        task["methods"] = {"vanilla": {}, "mat": {"sigma_train": [0.1], "training": {"epochs": 1}}}
        task["figures"].update(headline_method="mat", headline_sigma_train=0.1)
        task["evaluation"] = {"draws": 2}
    # the demo trains and evaluates per task; here the tanh twin per method, this project's network
    # per setting (the tasks share one resources mapping through a YAML anchor: copies of their own)
    config["tasks"]["ecg_tanh"]["resources"] = {**config["tasks"]["ecg_tanh"]["resources"],
                                                "train_jobs": "per_method", "evaluate_jobs": "per_method"}
    config["tasks"]["ecg_improved"]["resources"] = {**config["tasks"]["ecg_improved"]["resources"],
                                                    "train_jobs": "per_setting", "evaluate_jobs": "per_setting"}
    config["tasks"] = {name: config["tasks"][name] for name in ECG_TASKS}
    for comparison in config["comparisons"].values():
        comparison["curves"] = [{"method": "vanilla"}, {"method": "mat", "sigma_train": 0.1}]
    config["evaluation"].update({"sigma_inference": [0, 0.2], "draws": 50})
    return config


@pytest.fixture(scope="module")
def finished_ecg_run(tmp_path_factory):
    return run_workflow(tmp_path_factory.mktemp("ecg_workflow"), tiny_ecg_config())


def test_ecg_branch_end_to_end(finished_ecg_run):
    workdir, _ = finished_ecg_run
    for task in ECG_TASKS:
        table = pd.read_parquet(workdir / f"results/{task}/accuracy.parquet")
        # 2 models x (1 clean + 2 draws at 20 %): the task's evaluation override (draws 2) applies
        assert len(table) == 2 * (1 + 2)
        assert set(table.arch) == {"recurrent_snn"}
        assert (workdir / f"figures/{task}/accuracy_vs_noise.png").stat().st_size > 0
    assert (workdir / "figures/ecg/heartbeat_raster.png").stat().st_size > 0
    shards = {task: sorted(p.relative_to(workdir / "results/evaluation" / task).as_posix()
                           for p in (workdir / "results/evaluation" / task).rglob("*.parquet")) for task in ECG_TASKS}
    assert shards["ecg"] == ["all_methods/all_models.parquet"]
    assert shards["ecg_tanh"] == ["mat/all_models.parquet", "vanilla/all_models.parquet"]
    assert shards["ecg_improved"] == ["mat/sigma~0.1/all_seeds.parquet", "vanilla/sigma~0/all_seeds.parquet"]
    # one training job for a task (the fine-tuning after the model it starts from), one per
    # method, one per setting
    logs = sorted(p.relative_to(workdir / "results/logs/train").as_posix()
                  for p in (workdir / "results/logs/train").rglob("*.log"))
    assert logs == ["ecg/all_methods/all_models.log",
                    "ecg_improved/mat/sigma~0.1/all_seeds.log", "ecg_improved/vanilla/sigma~0/all_seeds.log",
                    "ecg_tanh/mat/all_models.log", "ecg_tanh/vanilla/all_models.log"]
    assert (workdir / "results/models/ecg_improved/mat/sigma~0.1/seed~3/model.pt").is_file()
    assert not (workdir / "figures/ecg_tanh/heartbeat_raster.png").exists()  # traces only where asked
    traces = pd.read_parquet(workdir / "results/ecg/traces.parquet")
    assert set(traces.quantity) == {"signal", "event", "spike", "readout"}
    assert set(traces.beat_label) == {"normal (N)", "abnormal"}
    assert set(traces.dropna(subset=["method"]).method) == {"vanilla", "mat"}
    assert traces[traces.quantity == "spike"].value.isin([0.0, 1.0]).all()
    comparison = pd.read_csv(workdir / "results/comparisons/ecg_spiking_vs_tanh.csv")
    assert set(comparison.panel) == {"Spiking network", "Non-spiking twin (tanh)"}
    assert (workdir / "figures/comparisons/ecg_spiking_vs_tanh.png").stat().st_size > 0
    original_vs_improved = pd.read_csv(workdir / "results/comparisons/ecg_original_vs_improved.csv")
    assert original_vs_improved.panel.nunique() == 2
    # the original recipe reached the prepared data: unstratified split, original delta rule
    from memristor_mat.datasets import load_prepared

    assert "unstratified" in load_prepared(workdir / "results/prepared/ecg.npz").description
    assert "unstratified" not in load_prepared(workdir / "results/prepared/ecg_improved.npz").description
    # the records were written in the real WFDB format and read back through the MIT-BIH loader,
    # generated by one job for the three tasks
    assert list((workdir / "data/raw/ecg_synthetic").rglob("*.atr"))
    assert [p.name for p in (workdir / "results/logs/fetch_raw_data").iterdir()] == [
        "ecg_synthetic_seed-0_beats-160_abnormal-0.25_records-1.log"]
    manifest = json.loads((workdir / "data/raw/manifests/ecg_synthetic_seed-0_beats-160_abnormal-0.25_records-1.json")
                          .read_text())
    assert [Path(f["path"]).suffix for f in manifest["files"]] == [".dat", ".hea", ".atr"]


def test_paper_ecg_config_dry_run(tmp_path):
    out = dry_run(tmp_path, REPO / "config/paper_ecg.yaml")
    # 3 networks (original spiking and tanh, this project's) x 5 seeds x (vanilla, noisy_updates,
    # mat_scratch, mat)
    assert job_count(out, "train") == 60 and job_count(out, "evaluate") == 60
    # record 208 fetched once for the three networks, each of which prepares its own split
    assert job_count(out, "fetch_raw_data") == 1 and job_count(out, "prepare_data") == 3
    assert job_count(out, "compare_tasks") == 2 and job_count(out, "record_traces") == 2


def test_report_embeds_every_figure_and_table(finished_run):
    workdir, config_path = finished_run
    result = snakemake(workdir, "--configfile", str(config_path), "--report", "report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (workdir / "report.html").read_text()
    for stem in pipeline.FIGURE_STEMS:
        assert f"{stem}.png" in html, stem
    for stem in pipeline.TABLE_STEMS:
        assert f"{stem}.csv" in html, stem
    assert "device draws per" in html  # the captions say how many models x draws
    assert "accuracy_vs_levels.png" in html and "accuracy_vs_qat_noise.png" in html
    assert "qat, qat_noise: 1 model per configuration (seed 14)" in html
    assert "device_heatmap.png" in html and "accuracy_vs_time.png" in html and "device_summary.csv" in html
    assert "2 Monte-Carlo draws per model and" in html  # the device captions' own draws
    assert "t intervals (the models as the units" in html  # the captions name the interval computed


def rule_blocks(dry_run_output: str, rule: str) -> list[str]:
    return [block for block in dry_run_output.split("\n\n") if f"rule {rule}:" in block]


def test_paper_cifar_config_dry_run(tmp_path):
    out = dry_run(tmp_path, REPO / "config/paper_cifar.yaml", "--cores", "16")
    # (CIFAR-10, CIFAR-100) x MobileNetV2 + CIFAR-10 x ResNet-20, 3 seeds x (vanilla, mat)
    assert job_count(out, "train") == 18 and job_count(out, "evaluate") == 18
    assert job_count(out, "figures") == 3 and job_count(out, "prepare_data") == 3
    # CIFAR-10 downloaded once for MobileNetV2 and ResNet-20 (not by two jobs into one folder)
    assert job_count(out, "fetch_raw_data") == 2
    fetches = rule_blocks(out, "fetch_raw_data")
    assert sorted(re.search(r"output: (\S+)", block).group(1) for block in fetches) == [
        "data/raw/manifests/cifar10.json", "data/raw/manifests/cifar100.json"]
    train_blocks = rule_blocks(out, "train")
    assert all("threads: 8" in block and "gpu=1" in block for block in train_blocks)
    # mat fine-tunes the vanilla model of its seed
    mat = next(block for block in train_blocks if "cifar100/mat/sigma~0.05/seed~16" in block)
    assert "results/models/cifar100/vanilla/sigma~0/seed~16/model.pt" in mat


def test_slurm_profile_dry_run_requests_gpus_and_threads(tmp_path):
    profile = ("--workflow-profile", str(REPO / "profiles/slurm"))
    out = dry_run(tmp_path, REPO / "config/paper_cifar.yaml", *profile)
    train_blocks, evaluate_blocks = rule_blocks(out, "train"), rule_blocks(out, "evaluate")
    assert len(train_blocks) == 18 and all("gpu=1" in block for block in train_blocks)
    assert len(evaluate_blocks) == 18 and all("gpu=1" in block for block in evaluate_blocks)
    # no cpus_per_task default: the executor plugin then asks SLURM for each job's threads
    assert not any("cpus_per_task" in block for block in train_blocks)
    mnist = dry_run(tmp_path, REPO / "config/paper_mnist.yaml", *profile)
    assert all("gpu=0" in block for block in rule_blocks(mnist, "train"))


def test_provenance_table_is_in_the_report(finished_run):
    workdir, config_path = finished_run
    table = pd.read_csv(workdir / "results/mnist/provenance.csv")
    assert {"config_hash", "git_commit", "torch_version", "library_version"} <= set(table.key)
    result = snakemake(workdir, "--configfile", str(config_path), "--report", "report_provenance.html")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "provenance.csv" in (workdir / "report_provenance.html").read_text()
