"""Every file the workflow reads or writes: one pattern each, with Snakemake's ``{wildcard}`` fields.

The rules take their inputs, outputs, logs and benchmarks from here, the library formats the
same patterns for the paths of one job (:class:`memristor_mat.pipeline.ModelRun`), and the
notebooks receive the figure names as parameters: a file is named in one place. Torch-free
(read when the workflow is parsed).
"""

from __future__ import annotations

import os

RESULTS = "results"
FIGURES = "figures"

# --- one dataset, one model ------------------------------------------------------------------
#: downloaded or generated files, as the datasets lay them out (immutable: no rule deletes them)
RAW_DIR = "data/raw"
#: the fetch job's output: the raw files of one ``{raw}`` key (memristor_mat.datasets.raw) with
#: their sizes and SHA-256 sums (a manifest, so that a rerun never deletes the files themselves)
RAW_MANIFEST = RAW_DIR + "/manifests/{raw}.json"
#: what a ``{raw}`` key may hold (the rule's wildcard constraint)
RAW_KEY = r"[a-z0-9][a-z0-9_.\-]*"


def raw_dir_of(manifest: str) -> str:
    """The raw-data folder of a :data:`RAW_MANIFEST` path (the folder above its ``manifests/``)."""
    return os.path.dirname(os.path.dirname(manifest))
PREPARED = "results/prepared/{task}.npz"
#: one model's folder; ``{setting}`` is its method's swept setting, e.g. ``sigma~0.2``, ``levels~4``
MODEL_DIR = "results/models/{task}/{method}/{setting}/seed~{seed}"
MODEL = MODEL_DIR + "/model.pt"
METRICS = MODEL_DIR + "/metrics.csv"
#: the models of one setting of a method (its seeds): one training job's output where the task's
#: ``resources.train_jobs`` is ``per_setting`` (the models keep their paths above, inside it)
SETTING_DIR = "results/models/{task}/{method}/{setting}"
#: a method's models: one training job's output where the task's ``resources.train_jobs`` is
#: ``per_method`` (the models keep their paths above, inside it)
METHOD_DIR = "results/models/{task}/{method}"
#: every model of a task: one training job's output where ``resources.train_jobs`` is ``per_task``
TASK_MODELS_DIR = "results/models/{task}"
#: a model's end-of-epoch state while its job runs (outside the job's outputs, which Snakemake
#: deletes before it reruns a job; a killed job resumes from it)
RESUME = "results/resume/{task}/{method}/{setting}/seed~{seed}.pt"
#: how a per-model job names its log and benchmark files
MODEL_JOB = "{task}/{method}/{setting}/seed~{seed}"
#: an evaluation job's models: one (``sigma~0.2/seed~14``, the model's folder below its method),
#: the seeds of one setting where the task's ``resources.evaluate_jobs`` is ``per_setting``
#: (``sigma~0.2/all_seeds``), or all of the method's models where it is ``per_method``
ONE_MODEL = "{setting}/seed~{seed}"
ALL_SEEDS = "all_seeds"
SETTING_MODELS = "{setting}/" + ALL_SEEDS
ALL_MODELS = "all_models"
#: an evaluation job's ``{method}`` where the task's ``resources.evaluate_jobs`` is ``per_task``:
#: every model of every method (its ``{models}`` is :data:`ALL_MODELS`)
ALL_METHODS = "all_methods"
#: how a per-setting training job names its log and benchmark files
SETTING_JOB = "{task}/{method}/" + SETTING_MODELS
#: how a per-method training job names its log and benchmark files
METHOD_JOB = "{task}/{method}/" + ALL_MODELS
#: how a per-task training job names its log and benchmark files
TASK_JOB = "{task}/" + ALL_METHODS + "/" + ALL_MODELS
#: one evaluation job's Monte-Carlo shard, and the same models on every device of the task's
#: cross-evaluation (``evaluation.devices``)
EVALUATION = "results/evaluation/{task}/{method}/{models}.parquet"
DEVICE_EVALUATION = "results/device_evaluation/{task}/{method}/{models}.parquet"
#: an evaluation job's finished chunks of draws while it runs, a JSON file per model (outside
#: the job's outputs, which Snakemake deletes before it reruns a job; a killed job resumes from it)
EVALUATION_PROGRESS = "results/progress/evaluation/{task}/{method}/{models}"
DEVICE_EVALUATION_PROGRESS = "results/progress/device_evaluation/{task}/{method}/{models}"
#: how an evaluation job names its log and benchmark files
EVALUATION_JOB = "{task}/{method}/{models}"

# --- one task -------------------------------------------------------------------------------
TASK_DIR = "results/{task}"
ACCURACY = TASK_DIR + "/accuracy.parquet"
ACCURACY_CSV = TASK_DIR + "/accuracy.csv"
SUMMARY = TASK_DIR + "/summary.parquet"
SUMMARY_CSV = TASK_DIR + "/summary.csv"
SUMMARY_MD = TASK_DIR + "/summary.md"
#: every trained configuration against the task's baseline, paired by seed and device draw
PAIRED = TASK_DIR + "/paired_differences.parquet"
PAIRED_CSV = TASK_DIR + "/paired_differences.csv"
PAIRED_MD = TASK_DIR + "/paired_differences.md"
TRAINING_METRICS = TASK_DIR + "/training_metrics.csv"
PROVENANCE = TASK_DIR + "/provenance.csv"
DEVICE_ACCURACY = TASK_DIR + "/device_accuracy.parquet"
DEVICE_ACCURACY_CSV = TASK_DIR + "/device_accuracy.csv"
DEVICE_SUMMARY = TASK_DIR + "/device_summary.parquet"
DEVICE_SUMMARY_CSV = TASK_DIR + "/device_summary.csv"
DEVICE_PAIRED = TASK_DIR + "/device_paired_differences.parquet"
DEVICE_PAIRED_CSV = TASK_DIR + "/device_paired_differences.csv"
TRACES = TASK_DIR + "/traces.parquet"
TABLES_DIR = TASK_DIR + "/tables"
FIGURES_DIR = "figures/{task}"
#: a figure (``ext`` pdf or png) and the table of its numbers (``ext`` csv or md)
FIGURE = FIGURES_DIR + "/{stem}.{ext}"
TABLE = TABLES_DIR + "/{stem}.{ext}"

# --- across tasks ---------------------------------------------------------------------------
COMPARISON_FIGURE = "figures/comparisons/{comparison}.{ext}"
COMPARISON_TABLE = "results/comparisons/{comparison}.{ext}"
REPORT = "results/report.html"

#: the figures notebooks/figures.ipynb draws for every task, by role (the notebook's parameters)
TASK_FIGURES = {
    "accuracy": "accuracy_vs_noise",
    "sigma_train": "sigma_train_curves",
    "heatmap": "heatmap_sigma_train_inference",
    "gain": "gain_vs_noise",
}
#: the tables it writes beside them: one per figure, and ours against the published numbers
PUBLISHED_TABLE = "published_comparison"
PER_MODEL_TABLE = "per_model"
HEARTBEAT_FIGURE = "heartbeat_raster"
#: the cross-evaluation's figures (notebooks/devices.ipynb), each with its table
DEVICE_FIGURES = {"heatmap": "device_heatmap", "gain": "device_gain_heatmap", "time": "accuracy_vs_time",
                  "stuck_at": "accuracy_vs_stuck_at"}
FIGURE_EXTENSIONS = ("pdf", "png")
TABLE_EXTENSIONS = ("csv", "md")


def log(rule: str, job: str) -> str:
    """The log of one job of ``rule`` (``job``: e.g. :data:`MODEL_JOB` or ``"{task}"``)."""
    return f"results/logs/{rule}/{job}.log"


def benchmark(rule: str, job: str) -> str:
    """The Snakemake benchmark file of one job of ``rule`` (read by benchmarks/demo_time.py)."""
    return f"results/benchmarks/{rule}/{job}.tsv"


def executed_notebook(name: str) -> str:
    """Where papermill keeps an executed notebook (a log, kept when the notebook fails)."""
    return f"results/notebooks/{name}.ipynb"


class _KeepMissing(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(pattern: str, **fields) -> str:
    """``pattern`` with the given fields filled in and the others left as ``{wildcards}``,
    e.g. ``fill(FIGURE, stem="accuracy_vs_noise", ext="png")`` -> ``figures/{task}/accuracy_vs_noise.png``."""
    return pattern.format_map(_KeepMissing(fields))
