"""What the workflow runs and where its files go, derived from a validated config.

Pure functions without Snakemake imports: the rules call them to build their target lists and
paths, the command line calls them to run single jobs, and the tests check them directly.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from . import methods as registry
from . import paths
from .config import format_sigma
from .datasets.raw import RawData, raw_data
from .settings import DeviceSettings, MonteCarloSettings, NoisyUpdates, TrainingSettings, settings_dict

#: figure stems written by notebooks/figures.ipynb for every task
FIGURE_STEMS = tuple(paths.TASK_FIGURES.values())
TABLE_STEMS = FIGURE_STEMS + (paths.PUBLISHED_TABLE,)


@dataclass(frozen=True, order=True)
class ModelRun:
    """One trained model: a task, a method, the value of the method's swept setting (its
    training noise level for MAT, its number of levels for QAT, ...; 0 for a method that sweeps
    none, see :mod:`memristor_mat.methods`) and a training seed."""

    task: str
    method: str
    setting: float
    seed: int

    @property
    def sigma_train(self) -> float:
        """The training forward-noise level (0 for a method trained without forward noise)."""
        return float(self.setting) if registry.method(self.method).sweep == "sigma_train" else 0.0

    @property
    def setting_dir(self) -> str:
        """The folder of the setting: ``sigma~0.2`` (MAT), ``levels~4`` (QAT), ``sigma~0`` (vanilla)."""
        sweep = registry.method(self.method).sweep
        key = registry.SETTINGS[sweep].path_key if sweep is not None else registry.SETTINGS["sigma_train"].path_key
        return f"{key}~{format_sigma(self.setting)}"

    @property
    def wildcards(self) -> dict[str, str]:
        return {"task": self.task, "method": self.method, "setting": self.setting_dir, "seed": str(self.seed)}

    @property
    def model_dir(self) -> str:
        return paths.MODEL_DIR.format(**self.wildcards)

    @property
    def checkpoint(self) -> str:
        return paths.MODEL.format(**self.wildcards)

    @property
    def metrics(self) -> str:
        return paths.METRICS.format(**self.wildcards)

    @property
    def resume(self) -> str:
        return paths.RESUME.format(**self.wildcards)

    @property
    def models_key(self) -> str:
        """The model's folder below its method (``sigma~0.2/seed~14``): its evaluation job's
        ``{models}`` where the task evaluates per model."""
        return paths.ONE_MODEL.format(**self.wildcards)

    @classmethod
    def from_wildcards(cls, task: str, method: str, setting: str, seed: str) -> "ModelRun":
        """The run of a path's wildcards; ``setting`` is the folder name (``levels~4``)."""
        key, _, value = setting.partition("~")
        run = cls(task, method, float(value), int(seed))
        if run.setting_dir.partition("~")[0] != key:
            raise ValueError(f"{method} models live in {run.setting_dir.partition('~')[0]}~<value> folders, not {setting!r}")
        return run


def model_runs(config: dict[str, Any], task: str | None = None) -> list[ModelRun]:
    """Every model the config asks for: one per seed and value of the method's swept setting."""
    runs = []
    for task_name, task_config in config["tasks"].items():
        if task is not None and task_name != task:
            continue
        for method, spec in task_config["methods"].items():
            sweep = registry.method(method).sweep
            for value in (spec[sweep] if sweep is not None else [0.0]):
                runs += [ModelRun(task_name, method, float(value), seed) for seed in method_seeds(task_config, method)]
    return sorted(runs)


def method_seeds(task_config: dict[str, Any], method: str) -> list[int]:
    """The training seeds of one method: its own ``seeds`` or the task's (the original trained
    3 QAT models per level count beside 5 of every other method)."""
    return list(task_config["methods"][method].get("seeds", task_config["seeds"]))


#: the Monte-Carlo evaluations of a task: the study's inference levels and the device cross-evaluation
EVALUATION_SHARDS = {"study": paths.EVALUATION, "devices": paths.DEVICE_EVALUATION}
#: where each kind of evaluation job keeps its finished chunks while it runs
EVALUATION_PROGRESS = {"study": paths.EVALUATION_PROGRESS, "devices": paths.DEVICE_EVALUATION_PROGRESS}


#: How a task's ``resources.train_jobs`` and ``evaluate_jobs`` group its models into jobs: one
#: job per model, per setting of a method (its seeds: one point of a figure), per method, per task.
JOB_UNITS = ("per_model", "per_setting", "per_method", "per_task")


def job_key(run: ModelRun, unit: str) -> tuple[str, str]:
    """The ``({method}, {models})`` of the job that holds ``run`` where jobs are ``unit``."""
    if unit == "per_model":
        return run.method, run.models_key
    if unit == "per_setting":
        return run.method, paths.SETTING_MODELS.format(setting=run.setting_dir)
    if unit == "per_method":
        return run.method, paths.ALL_MODELS
    if unit == "per_task":
        return paths.ALL_METHODS, paths.ALL_MODELS
    raise ValueError(f"unknown job unit {unit!r}; expected one of {list(JOB_UNITS)}")


@dataclass(frozen=True)
class EvaluationJob:
    """One evaluation job: the models it evaluates in one process (one, a setting's seeds, all of a
    method's, or all of the task's, by the task's ``resources.evaluate_jobs``) and the shard it
    writes."""

    task: str
    method: str  #: a method, or :data:`paths.ALL_METHODS` (all of the task's models)
    #: ``sigma~0.2/seed~14`` (one model), ``sigma~0.2/all_seeds`` (a setting's) or :data:`paths.ALL_MODELS`
    models: str
    runs: tuple[ModelRun, ...]

    @property
    def wildcards(self) -> dict[str, str]:
        return {"task": self.task, "method": self.method, "models": self.models}

    def shard(self, kind: str) -> str:
        """Its Parquet shard of the study (``kind="study"``) or of the cross-evaluation (``"devices"``)."""
        return EVALUATION_SHARDS[kind].format(**self.wildcards)

    def progress(self, kind: str) -> str:
        """The folder of its finished chunks while it runs (``kind`` as for :meth:`shard`)."""
        return EVALUATION_PROGRESS[kind].format(**self.wildcards)


def evaluation_jobs(config: dict[str, Any], task: str) -> list[EvaluationJob]:
    """The task's evaluation jobs, in model order: one per model, per setting, per method, or one
    for the whole task (``resources.evaluate_jobs``)."""
    unit = config["tasks"][task]["resources"]["evaluate_jobs"]
    groups: dict[tuple[str, str], list[ModelRun]] = {}
    for run in model_runs(config, task):
        groups.setdefault(job_key(run, unit), []).append(run)
    return [EvaluationJob(task, method, models, tuple(group)) for (method, models), group in groups.items()]


def evaluation_job(config: dict[str, Any], task: str, method: str, models: str) -> EvaluationJob:
    """The evaluation job of a shard's wildcards."""
    for job in evaluation_jobs(config, task):
        if (job.method, job.models) == (method, models):
            return job
    unit = config["tasks"][task]["resources"]["evaluate_jobs"]
    raise ValueError(f"task {task} has no evaluation job {method}/{models} (it evaluates {unit})")


def method_runs(config: dict[str, Any], task: str, method: str) -> list[ModelRun]:
    """The models of one method of a task (one training job where it trains per method)."""
    runs = [run for run in model_runs(config, task) if run.method == method]
    if not runs:
        raise ValueError(f"task {task} has no {method} models")
    return runs


def setting_runs(config: dict[str, Any], task: str, method: str, setting: str) -> list[ModelRun]:
    """The models of one setting (``sigma~0.2``) of a method: its seeds (one training job where the
    task trains per setting)."""
    runs = [run for run in method_runs(config, task, method) if run.setting_dir == setting]
    if not runs:
        raise ValueError(f"task {task} has no {method} models at {setting}")
    return runs


def model_inputs(config: dict[str, Any], runs, file: str = "checkpoint") -> list[str]:
    """What a rule lists as input to read these models' ``file`` (``checkpoint`` or ``metrics``):
    the file itself where the task trains per model, the setting's, the method's or the task's
    folder (one job's output, with the file inside at the same path) where it trains per setting,
    per method or per task."""
    inputs: list[str] = []
    for run in runs:
        unit = config["tasks"][run.task]["resources"]["train_jobs"]
        if unit == "per_setting":
            path = paths.SETTING_DIR.format(**run.wildcards)
        elif unit == "per_method":
            path = paths.METHOD_DIR.format(task=run.task, method=run.method)
        elif unit == "per_task":
            path = paths.TASK_MODELS_DIR.format(task=run.task)
        elif unit == "per_model":
            path = getattr(run, file)
        else:
            raise ValueError(f"unknown job unit {unit!r}; expected one of {list(JOB_UNITS)}")
        if path not in inputs:
            inputs.append(path)
    return inputs


def training_groups(config: dict[str, Any], task: str) -> list[tuple[ModelRun, ...]]:
    """The task's training jobs, as the models each trains (``resources.train_jobs``), in the
    order one job can train them (:func:`training_order`)."""
    groups: dict[str, list[ModelRun]] = {}
    for run in model_runs(config, task):
        groups.setdefault(model_inputs(config, [run])[0], []).append(run)
    return [tuple(training_order(group)) for group in groups.values()]


def training_jobs(config: dict[str, Any], runs) -> list[dict[str, Any]]:
    """What one training job (one model, a method's or a task's models) trains, model by model: its
    :func:`train_job` and its files (checkpoint, metrics, resume state, pretrained checkpoint)."""
    jobs = []
    for run in runs:
        pretrained = pretrained_run(run)
        jobs.append({**train_job(config, run), "run": run.wildcards, "checkpoint": run.checkpoint,
                     "metrics": run.metrics, "resume": run.resume,
                     "pretrained": None if pretrained is None else pretrained.checkpoint})
    return jobs


def training_order(runs) -> list[ModelRun]:
    """``runs`` in an order one job can train them in: each fine-tuning run after the model it
    starts from where that model is among ``runs`` (a per-task job trains vanilla, then mat),
    otherwise in the given order."""
    pending = list(runs)
    # the model each run waits for: its pretrained one, where this job trains it
    waits_for = {run: pretrained_run(run) for run in pending}
    waits_for = {run: start for run, start in waits_for.items() if start in waits_for}
    done, order = set(), []
    while pending:
        ready = [run for run in pending if run not in waits_for or waits_for[run] in done]
        if not ready:
            raise ValueError(f"no training order for {pending}: their pretrained models form a cycle")
        order += ready
        done.update(ready)
        pending = [run for run in pending if run not in done]
    return order


def pretrained_run(run: ModelRun) -> ModelRun | None:
    """The model a fine-tuning run starts from (same task and seed), or None."""
    start = registry.method(run.method).starts_from
    return None if start is None else ModelRun(run.task, start, 0.0, run.seed)


def run_settings(config: dict[str, Any], run: ModelRun) -> dict[str, float]:
    """Every setting of the run's model (sigma_train, levels, noise_sd, ...), 0 where not applied."""
    return registry.run_settings(run.method, run.setting, config["tasks"][run.task]["methods"][run.method])


def check_run(config: dict[str, Any], run: ModelRun) -> None:
    runs = model_runs(config, run.task)
    if run not in runs:
        asked = [f"{other.setting_dir}/seed~{other.seed}" for other in runs if other.method == run.method]
        raise ValueError(f"{run} is not one of the models the config asks for; the config's {run.method} models "
                         f"of task {run.task!r}: {', '.join(asked) or 'none'}")


def prepared_data(task: str) -> str:
    return paths.PREPARED.format(task=task)


def raw_data_jobs(config: dict[str, Any]) -> dict[str, RawData]:
    """The raw files the config's tasks read, by key: one fetch job each, however many tasks read
    them (with ``download`` where any of those tasks asks for it)."""
    jobs: dict[str, RawData] = {}
    for task in config["tasks"].values():
        raw = raw_data(task["dataset"])
        if raw is None:
            continue
        if raw.key in jobs and "download" in raw.options:
            download = jobs[raw.key].options["download"] or raw.options["download"]
            raw = RawData(raw.dataset, raw.key, {**raw.options, "download": download})
        jobs[raw.key] = raw
    return jobs


def raw_manifests(config: dict[str, Any], task: str) -> list[str]:
    """The fetch job's output that a task's data preparation waits for (none: its data ship in a package)."""
    raw = raw_data(config["tasks"][task]["dataset"])
    return [] if raw is None else [paths.RAW_MANIFEST.format(raw=raw.key)]


def task_results(task: str, name: str) -> str:
    return os.path.join(paths.TASK_DIR.format(task=task), name)


def _figures(task: str, stems) -> list[str]:
    return [paths.FIGURE.format(task=task, stem=stem, ext=ext) for stem in stems for ext in paths.FIGURE_EXTENSIONS]


def _tables(task: str, stems) -> list[str]:
    return [paths.TABLE.format(task=task, stem=stem, ext=ext) for stem in stems for ext in paths.TABLE_EXTENSIONS]


def figure_files(task: str) -> list[str]:
    return _figures(task, FIGURE_STEMS)


def table_files(task: str) -> list[str]:
    return _tables(task, TABLE_STEMS)


def method_figures(config: dict[str, Any], task: str) -> dict[str, str]:
    """The figures the task's methods add (registry ``figures``: stem -> plotting function),
    e.g. ``accuracy_vs_levels`` for ``qat``."""
    return {stem: function for method in config["tasks"][task]["methods"]
            for stem, function in registry.method(method).figures.items()}


def method_figure_files(config: dict[str, Any], task: str) -> list[str]:
    stems = method_figures(config, task)
    return _figures(task, stems) + _tables(task, stems)


def comparison_files(name: str) -> list[str]:
    return [paths.COMPARISON_FIGURE.format(comparison=name, ext=ext) for ext in paths.FIGURE_EXTENSIONS] + [
        paths.COMPARISON_TABLE.format(comparison=name, ext=ext) for ext in paths.TABLE_EXTENSIONS]


def trace_figure_files(config: dict[str, Any], task: str) -> list[str]:
    if not config["tasks"][task]["figures"]["traces"]:
        return []
    return _figures(task, [paths.HEARTBEAT_FIGURE])


def trace_runs(config: dict[str, Any], task: str) -> list[ModelRun]:
    """The models whose activity the heartbeat figure shows: the baseline (``figures.baseline_method``)
    and the headline method at the headline sigma_train, the headline's first seed; the headline's
    last."""
    task_config = config["tasks"][task]
    figures = task_config["figures"]
    headline, baseline = figures["headline_method"], figures["baseline_method"]
    seed = method_seeds(task_config, headline)[0]
    # the baseline's model of that seed, where it trains one (a method may train other seeds)
    runs = [ModelRun(task, baseline, 0.0, seed)] if seed in method_seeds(task_config, baseline) else []
    sigma = figures["headline_sigma_train"] if registry.method(headline).sweep == "sigma_train" else 0.0
    if headline != baseline:
        runs.append(ModelRun(task, headline, float(sigma), seed))
    return runs


def task_noise(config: dict[str, Any], task: str) -> dict[str, Any]:
    """The top-level noise settings with the task's overrides (whole keys: ``options`` replaces)."""
    return {**config["noise"], **config["tasks"][task].get("noise", {})}


def training_settings(config: dict[str, Any], run: ModelRun) -> TrainingSettings:
    """The task's training settings with the method's overrides (shallow, per key)."""
    task = config["tasks"][run.task]
    training = {**task["training"], **task["methods"][run.method].get("training", {})}
    noise = task_noise(config, run.task)
    entry = registry.method(run.method)
    settings = run_settings(config, run)
    return TrainingSettings(
        method=run.method,
        epochs=training["epochs"],
        batch_size=training["batch_size"],
        optimizer=dict(training["optimizer"]),
        seed=run.seed,
        sigma_train=run.sigma_train,
        method_options={name: settings[name] for name in (entry.sweep, *entry.fixed)
                        if name not in (None, "sigma_train")},
        lr_scheduler=dict(training["lr_scheduler"]) if training.get("lr_scheduler") else None,
        weight_clip_std=training.get("weight_clip_std"),
        noise_model=noise["model"],
        noise_options=dict(noise["options"]),
        include_normalization=noise["include_normalization"],
        noisy_updates=NoisyUpdates(**training.get("noisy_updates", {})),
        **({"eval_batch_size": training["eval_batch_size"]} if "eval_batch_size" in training else {}),
        augmentation=dict(training["augmentation"]) if training.get("augmentation") else None,
        mixed_precision=training.get("mixed_precision"),
        memory_format=training.get("memory_format", "contiguous"),
        shuffle=training.get("shuffle", True),
    )


def monte_carlo_settings(config: dict[str, Any], task: str) -> MonteCarloSettings:
    """The top-level evaluation settings with the task's overrides. The noised tensors are
    training's (``noise.include_normalization``) unless ``evaluation.include_normalization``
    says otherwise (the original's CIFAR evaluation noised BatchNorm, its training did not)."""
    evaluation = {**config["evaluation"], **config["tasks"][task].get("evaluation", {})}
    noise = task_noise(config, task)
    return MonteCarloSettings(
        sigma_inference=tuple(float(s) for s in evaluation["sigma_inference"]),
        draws=evaluation["draws"],
        seed=evaluation["seed"],
        noise_model=noise["model"],
        noise_options=dict(noise["options"]),
        include_normalization=evaluation.get("include_normalization", noise["include_normalization"]),
        draws_per_chunk=evaluation["draws_per_chunk"],
        batch_size=evaluation["batch_size"],
        devices=tuple(DeviceSettings.from_config(name, device) for name, device in task_devices(config, task).items()),
        memory_format=evaluation.get("memory_format", "contiguous"),
    )


def task_devices(config: dict[str, Any], task: str) -> dict[str, Any]:
    """The devices of the task's cross-evaluation (``evaluation.devices``; a task's own list
    replaces the top-level one), in config order."""
    return dict(config["tasks"][task].get("evaluation", {}).get("devices", config["evaluation"].get("devices", {})))


def train_job(config: dict[str, Any], run: ModelRun) -> dict[str, Any]:
    """Exactly what one training job depends on (Snakemake params: a change reruns only it)."""
    check_run(config, run)
    task = config["tasks"][run.task]
    return {"settings": training_settings(config, run).as_dict(), "model": dict(task["model"]),
            "device": config["device"]}


def evaluate_job(config: dict[str, Any], task: str) -> dict[str, Any]:
    """The study's evaluation; the devices are another job's (a change of them reruns only it)."""
    settings = settings_dict(monte_carlo_settings(config, task))
    del settings["devices"]
    return {"settings": settings, "device": config["device"]}


def device_evaluation_job(config: dict[str, Any], task: str) -> dict[str, Any]:
    """The cross-evaluation of one model: the devices and the Monte-Carlo settings they use."""
    settings = settings_dict(monte_carlo_settings(config, task))
    settings["draws"] = device_draws(config, task)
    return {"settings": settings, "device": config["device"]}


def device_draws(config: dict[str, Any], task: str) -> int:
    """Monte-Carlo draws per model and device condition (``evaluation.device_draws``, else ``draws``)."""
    evaluation = {**config["evaluation"], **config["tasks"][task].get("evaluation", {})}
    return int(evaluation.get("device_draws", evaluation["draws"]))


def device_figures(config: dict[str, Any], task: str) -> dict[str, Any]:
    """What notebooks/devices.ipynb draws for a task (none without devices): the heatmap of every
    device and its paired gains over the baseline; accuracy against time for the devices evaluated at several ``t_inference`` and
    nothing else swept (PCM, RRAM, any device with that condition key); accuracy against the
    stuck fraction for the first device with several stuck-at fractions. Chosen by the
    registry's condition keys, never by a device's or model's name."""
    settings = monte_carlo_settings(config, task).devices
    if not settings:
        return {"stems": [], "devices": [], "time_devices": [], "stuck_device": ""}

    def swept(device, key):
        return len({c.get(key) for c in device.conditions}) > 1

    # a curve per model needs one condition per time: devices that sweep t_inference alone
    time_devices = [d.name for d in settings if swept(d, "t_inference")
                    and not any(swept(d, key) for key in d.conditions[0] if key != "t_inference")]
    stuck = [d.name for d in settings if swept(d, "p_stuck_off") or swept(d, "p_stuck_on")]
    stems = [paths.DEVICE_FIGURES["heatmap"], paths.DEVICE_FIGURES["gain"]]
    stems += [paths.DEVICE_FIGURES["time"]] if time_devices else []
    stems += [paths.DEVICE_FIGURES["stuck_at"]] if stuck else []
    return {"stems": stems, "devices": [d.name for d in settings], "time_devices": time_devices,
            "stuck_device": stuck[0] if stuck else ""}


def device_figure_files(config: dict[str, Any], task: str) -> list[str]:
    stems = device_figures(config, task)["stems"]
    return _figures(task, stems) + _tables(task, stems)


def comparison_parameters(config: dict[str, Any], name: str, summary_paths: list[str]) -> str:
    """Parameters of notebooks/comparison.ipynb for one comparison, as JSON (valid YAML)."""
    comparison = config["comparisons"][name]
    tasks = comparison["tasks"]
    titles = comparison.get("panel_titles") or [config["tasks"][t].get("label", t) for t in tasks]
    return json.dumps({
        "summary_paths": summary_paths,
        "panel_titles": titles,
        "curves": [[c["method"], float(c["sigma_train"])] for c in comparison["curves"]],
        "center": comparison["center"],
        "band": list(comparison["band"]),
        "title": comparison["title"],
        "figure_stem": paths.COMPARISON_FIGURE.format(comparison=name, ext="")[:-1],
        "table_stem": paths.COMPARISON_TABLE.format(comparison=name, ext="")[:-1],
    })


#: How the report's captions name each ``figures.confidence_interval``.
INTERVAL_CAPTIONS = {
    "t": "t intervals (the models as the units; each mean square of models and draws with the t quantile of "
         "its own degrees of freedom, the same draws for all the models)",
    "bootstrap": "hierarchical bootstraps (models, then draws, the same ones for all the models)",
}


def confidence_interval(config: dict[str, Any], task: str) -> dict[str, str]:
    """A task's ``figures.confidence_interval``: the method its aggregates compute and what the
    report's captions call it."""
    method = config["tasks"][task]["figures"]["confidence_interval"]
    return {"method": method, "caption": INTERVAL_CAPTIONS[method]}


def caption_values(config: dict[str, Any], task: str) -> dict[str, str]:
    """What a task's report captions state, computed here rather than re-derived from the raw
    config in the caption template (where task overrides, per-method seeds and defaults are
    easy to get wrong): models per configuration, draws, statistics, the baseline, data, model, noise."""
    task_config = config["tasks"][task]
    by_seeds: dict[tuple[int, ...], list[str]] = {}
    for method in task_config["methods"]:
        by_seeds.setdefault(tuple(method_seeds(task_config, method)), []).append(method)
    models = "; ".join(
        f"{', '.join(methods)}: {len(seeds)} model{'s' if len(seeds) > 1 else ''} per configuration "
        f"(seed{'s' if len(seeds) > 1 else ''} {', '.join(str(s) for s in seeds)})"
        for seeds, methods in by_seeds.items())
    noise = task_noise(config, task)
    evaluation = monte_carlo_settings(config, task)
    figures = task_config["figures"]
    options = ", ".join(f"{k} {v}" for k, v in sorted(noise["options"].items()))
    return {
        "label": task_config.get("label", task),
        "models": models,
        "draws": str(evaluation.draws),
        "device_draws": str(device_draws(config, task)),
        "center": figures["center"],
        "band": "-".join(figures["band"]),
        "baseline": figures["baseline_method"],
        "interval": INTERVAL_CAPTIONS[figures["confidence_interval"]],
        "dataset": task_config["dataset"]["name"],
        "arch": task_config["model"]["arch"],
        "noise": f"{noise['model']}" + (f" ({options})" if options else "")
                 + (", the normalisation layers' parameters included" if evaluation.include_normalization else ""),
    }
