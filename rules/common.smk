# Helpers, target lists and wildcard constraints shared by every rule file.
import dataclasses
import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod

try:
    import memristor_mat
except ImportError:  # a checkout used without `pip install -e .` (e.g. jobs under --sdm conda)
    sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from memristor_mat import methods, paths, pipeline
from memristor_mat.config import validate_config

# Beyond the schema: names against the library's registries, checks across keys, strict integers.
validate_config(config)

ENV = "../envs/environment.yaml"
# papermill through an interpreter, never from PATH: the one running Snakemake (found even when
# its venv is not activated), or under --sdm conda the job environment's own python.
_CONDA_JOBS = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
PAPERMILL = ("python" if _CONDA_JOBS else shlex.quote(sys.executable)) + " -m papermill"
# papermill's Jupyter kernel binds ports that its papermill chose and let go of: a process
# starting at the same moment (another notebook job's kernel, any outgoing connection) can take
# one first, and the kernel dies unseen (papermill gives up after 60 s; nteract/papermill#511).
# Rare, and gone on a second try: the notebook jobs are retried once.
NOTEBOOK_RETRIES = 1
# Found beside the workflow even when it runs in another directory (snakemake -d).
NOTEBOOK = os.path.join(workflow.basedir, "notebooks", "figures.ipynb")
COMPARISON_NOTEBOOK = os.path.join(workflow.basedir, "notebooks", "comparison.ipynb")
TRACES_NOTEBOOK = os.path.join(workflow.basedir, "notebooks", "traces.ipynb")
METHOD_FIGURE_NOTEBOOK = os.path.join(workflow.basedir, "notebooks", "method_figure.ipynb")
DEVICES_NOTEBOOK = os.path.join(workflow.basedir, "notebooks", "devices.ipynb")


# the method's swept setting as a folder: sigma~0.2, levels~4, noise_sd~0.001
SETTING_PATTERN = "(" + "|".join(s.path_key for s in methods.SETTINGS.values()) + r")~[0-9]+(\.[0-9]+)?"


wildcard_constraints:
    task=r"[a-z][a-z0-9_]*",
    method="|".join(methods.method_names()),
    setting=SETTING_PATTERN,
    seed=r"[0-9]+",
    # an evaluation job's models: one model's folder below its method, a setting's seeds, or all of them
    models=f"{SETTING_PATTERN}/(seed~[0-9]+|{paths.ALL_SEEDS})|{paths.ALL_MODELS}",
    comparison=r"[a-z][a-z0-9_]*",
    raw=paths.RAW_KEY,


def run_of(wildcards):
    return pipeline.ModelRun.from_wildcards(
        wildcards.task, wildcards.method, wildcards.setting, wildcards.seed
    )


def method_runs(wildcards):
    return pipeline.method_runs(config, wildcards.task, wildcards.method)


def setting_runs(wildcards):
    return pipeline.setting_runs(config, wildcards.task, wildcards.method, wildcards.setting)


def pretrained_inputs(runs):
    """The models that ``runs`` fine-tune (vanilla of the same seed for mat), as rule inputs."""
    pretrained = [pipeline.pretrained_run(run) for run in runs]
    return pipeline.model_inputs(config, [run for run in pretrained if run is not None])


# an evaluation job's {method}: a method, or all of them where the task evaluates per task
EVALUATION_METHOD = "|".join([*methods.method_names(), paths.ALL_METHODS])


def evaluation_job(wildcards):
    return pipeline.evaluation_job(config, wildcards.task, wildcards.method, wildcards.models)


def evaluation_inputs(wildcards):
    return pipeline.model_inputs(config, evaluation_job(wildcards).runs)


def evaluation_checkpoints(wildcards):
    return [run.checkpoint for run in evaluation_job(wildcards).runs]


def evaluation_shards(wildcards, kind):
    return [job.shard(kind) for job in pipeline.evaluation_jobs(config, wildcards.task)]


# Priorities by stage, the DAG's long chains first, since the scheduler does not look ahead and
# orders ready jobs of one priority as it likes. Data preparation and training first, whenever
# they are ready (a task's evaluation, tables and figures wait for all of its models): without it
# a 2-core demo left the longest training (MNIST, one 98 s job) for last, with one core idle for a
# minute while it ran. Then the evaluations, before the short table and figure jobs, which then
# fill the end of the run: without it a 2-core demo ran most figures before the ECG evaluation
# (61 s, ready two minutes earlier), which then ran alone for 40 s at the end in half the runs.
TRAINING_PRIORITY = 2
EVALUATION_PRIORITY = 1


def task_resource(name):
    return lambda wildcards: config["tasks"][wildcards.task]["resources"][name]


def task_outputs(task):
    # the tidy table and the provenance are not committed (.gitignore), so a fresh clone, which
    # has the committed figures, still recomputes everything instead of "nothing to be done"
    return [
        pipeline.task_results(task, "accuracy.parquet"),
        pipeline.task_results(task, "provenance.csv"),
        pipeline.task_results(task, "summary.csv"),
        *pipeline.figure_files(task),
        *pipeline.table_files(task),
        *pipeline.trace_figure_files(config, task),
        *pipeline.method_figure_files(config, task),
        *pipeline.device_figure_files(config, task),
        *([pipeline.task_results(task, "device_accuracy.parquet")] if pipeline.task_devices(config, task) else []),
    ]


def comparison_parameters(name, summaries):
    """The comparison notebook's parameters as one YAML (JSON) string for papermill -y."""
    return pipeline.comparison_parameters(config, name, list(summaries))


def final_outputs():
    return [path for task in config["tasks"] for path in task_outputs(task)] + [
        path for name in config["comparisons"] for path in pipeline.comparison_files(name)
    ]
