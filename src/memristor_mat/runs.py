"""One job of the pipeline each: train one model, evaluate one model. The jobs that need no torch
live where their work is, and their names are re-exported here: fetching raw data and preparing
a dataset (:mod:`memristor_mat.datasets`), the aggregation (:mod:`memristor_mat.aggregation`).

The Snakemake scripts and the command line both call these, so a single run outside the
workflow gives exactly the files the workflow would.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch

from . import methods as registry
from . import pipeline
from .aggregation import (ACCURACY_COLUMNS, aggregate, aggregate_devices, device_accuracy_columns,  # noqa: F401
                          read_parquet_metadata, write_csv, write_parquet)
from .allocator import retain_freed_memory
from .checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint
from .datasets import prepare_data  # noqa: F401  (the data jobs need no torch: re-exported for the command line)
from .datasets.raw import fetch_raw_data  # noqa: F401
from .datasets.splits import DatasetSplits, load_prepared
from .device import select_device
from .evaluation import EvaluationProgress, NormalsCache, device_accuracy, monte_carlo_accuracy
from .io import check_output_path, file_sha256
from .models import architecture_options, build_model
from .pipeline import ModelRun
from .provenance import provenance
from .settings import MonteCarloSettings, TrainingSettings
from .training import split_threads, train

log = logging.getLogger(__name__)


def prepare_process(threads: int) -> None:
    """Set this process up for a job's computation: exactly the cores the scheduler granted
    (results depend on them only through float order), and the memory it frees kept for its next
    allocations (:func:`memristor_mat.allocator.retain_freed_memory`: no page faults; the same
    numbers)."""
    torch.set_num_threads(max(1, int(threads)))
    retain_freed_memory()


def train_model(
    run: ModelRun,
    settings: TrainingSettings,
    model_config: dict[str, Any],
    *,
    data_path: str | os.PathLike,
    out_path: str | os.PathLike,
    metrics_path: str | os.PathLike,
    pretrained_path: str | os.PathLike | None = None,
    device: str = "auto",
    threads: int = 1,
    resume_path: str | os.PathLike | None = None,
    keep_resume: bool = False,
    data: DatasetSplits | None = None,
) -> None:
    """Train one model; resumable: its end-of-epoch state lives in ``resume_path`` (default
    ``<out>.resume``) until done, and after it where ``keep_resume`` (a job of several models
    deletes it once all are done: a rerun of a killed job then rewrites the finished ones from it
    instead of training them again). ``data``: the prepared dataset of ``data_path``, already
    loaded (a job of several models reads it once)."""
    torch_device = select_device(device)
    compute_threads, data_workers = split_threads(threads, torch_device, settings.augmentation is not None)
    prepare_process(compute_threads)
    data = data if data is not None else load_prepared(data_path)
    arch = model_config["arch"]
    options = architecture_options(arch, model_config, data.input_shape, data.num_classes)
    torch.manual_seed(run.seed)
    model = build_model(arch, **options)
    if pipeline.pretrained_run(run) is not None:
        if pretrained_path is None:
            start = pipeline.pretrained_run(run)
            raise ValueError(f"{run.method} fine-tunes the {start.method!r} model of seed {run.seed}: give its "
                             f"checkpoint (pretrained_path; on the command line --pretrained)")
        pretrained = load_checkpoint(pretrained_path)
        if (pretrained["arch"], pretrained["arch_options"]) != (arch, options):
            raise CheckpointError(
                f"pretrained checkpoint {pretrained_path} holds {pretrained['arch']} {pretrained['arch_options']}, "
                f"but this run needs {arch} {options}"
            )
        try:
            model.load_state_dict(pretrained["state_dict"])
        except (RuntimeError, TypeError) as error:
            raise CheckpointError(f"pretrained checkpoint {pretrained_path}: its weights do not fit {arch} "
                                  f"{options} ({error})") from None
    identity = {
        "arch": arch, "arch_options": options, "task": run.task, "dataset": data.name,
        "method": run.method, "sigma_train": run.sigma_train, "seed": run.seed,
        "method_settings": registry.run_settings(run.method, run.setting, settings.method_options),
        "settings": settings.as_dict(),
    }
    resume_path = Path(resume_path if resume_path is not None else str(out_path) + ".resume")
    result = train(model, data, settings, device=torch_device, resume_path=resume_path, resume_extra=identity,
                   data_workers=data_workers)
    save_checkpoint(out_path, {
        **identity,
        "state_dict": {k: v.detach().cpu() for k, v in result.model.state_dict().items()},
        "history": result.history,
        "provenance": provenance({"settings": settings.as_dict(), "model": model_config}),
    })
    history = pd.DataFrame(result.history)
    for key, value in reversed([("task", run.task), ("method", run.method), *identity["method_settings"].items(),
                                ("seed", run.seed)]):
        history.insert(0, key, value)
    write_csv(history, metrics_path)
    if not keep_resume:
        resume_path.unlink(missing_ok=True)


def train_models(jobs: Sequence[dict[str, Any]], *, data_path: str | os.PathLike, threads: int = 1) -> None:
    """One training job: the models of ``jobs`` (:func:`memristor_mat.pipeline.training_jobs`:
    one, a method's or a task's), one after the other in this process, in the given order (a
    fine-tuning run reads the checkpoint an earlier one wrote). Each keeps its
    end-of-epoch state until all are done, so a killed job resumes every model from its last
    epoch, finished ones included."""
    data = load_prepared(data_path)
    for job in jobs:
        run = ModelRun.from_wildcards(**job["run"])
        log.info("training %s", run)
        train_model(run, TrainingSettings.from_dict(job["settings"]), job["model"], data_path=data_path,
                    out_path=job["checkpoint"], metrics_path=job["metrics"], pretrained_path=job["pretrained"],
                    device=job["device"], threads=threads, resume_path=job["resume"], keep_resume=True,
                    data=data)
    for job in jobs:
        Path(job["resume"]).unlink(missing_ok=True)


def _evaluate(checkpoint_path, data: DatasetSplits, data_path, settings: MonteCarloSettings, torch_device, evaluate,
              normals_cache: NormalsCache | None = None, progress: EvaluationProgress | None = None):
    """Load a checkpoint (checked to match the test ``data``) and run ``evaluate`` on it; returns
    the table, the identity of the model (task, method, settings, seed ...) and the commit that
    trained it."""
    checkpoint = load_checkpoint(checkpoint_path, map_location="cpu")
    model = model_from_checkpoint(checkpoint, checkpoint_path).to(torch_device)
    if checkpoint.get("dataset") != data.name:
        raise CheckpointError(
            f"checkpoint {checkpoint_path} was trained on {checkpoint.get('dataset')!r}, "
            f"but the test data {data_path} is {data.name!r}"
        )
    # what names the rows, and whether the network takes these samples: checked before the
    # Monte-Carlo run, not after it
    try:
        method_settings = registry.unapplied_settings() | {
            "sigma_train": float(checkpoint["sigma_train"]), **checkpoint.get("method_settings", {})}
        identity = {
            "task": checkpoint["task"], "dataset": data.name, "arch": checkpoint["arch"],
            "method": checkpoint["method"], **method_settings, "seed": int(checkpoint["seed"]),
        }
        commit = dict(checkpoint.get("provenance") or {}).get("git_commit", "unknown")
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {checkpoint_path} lacks or garbles its identity ({error!r}); "
                              "retrain it (delete it and rerun its rule)") from None
    model.eval()
    try:
        with torch.no_grad():
            model(data.x_test[:1].to(torch_device))
    except RuntimeError as error:
        raise CheckpointError(
            f"checkpoint {checkpoint_path} ({checkpoint['arch']} {checkpoint['arch_options']}) does not take "
            f"the samples of {data_path} (shape {tuple(data.input_shape)}): {error}") from None
    table = evaluate(model, data.x_test, data.y_test, settings, normals_cache, progress)
    return table, identity, commit


def _study_columns(table: pd.DataFrame, identity: dict[str, Any], settings: MonteCarloSettings) -> pd.DataFrame:
    identity = identity | {"noise_model": settings.noise_model,
                           "reference": settings.noise_options.get("reference", ""), "eval_seed": settings.seed}
    for key, value in identity.items():
        table[key] = value
    return table[ACCURACY_COLUMNS]


def _device_columns(table: pd.DataFrame, identity: dict[str, Any], settings: MonteCarloSettings) -> pd.DataFrame:
    for key, value in reversed(list(identity.items())):
        table.insert(0, key, value)
    table.insert(table.columns.get_loc("draw") + 1, "eval_seed", settings.seed)
    return table


#: what an evaluation job computes, and the columns it writes: the study's inference levels
#: (``accuracy`` columns) or the cross-evaluation on ``settings.devices`` (:func:`device_accuracy_columns`)
EVALUATIONS = {"study": (monte_carlo_accuracy, _study_columns), "devices": (device_accuracy, _device_columns)}


def evaluate_models(
    checkpoint_paths: Sequence[str | os.PathLike],
    settings: MonteCarloSettings,
    *,
    data_path: str | os.PathLike,
    out_path: str | os.PathLike,
    device: str = "auto",
    threads: int = 1,
    kind: str = "study",
    normals_cache_mb: int = 256,
    progress_dir: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Monte-Carlo accuracy of checkpoints of one task -> one Parquet shard: at every inference
    level x draw (``kind="study"``), or on every device of ``settings.devices`` at each
    condition x draw (``kind="devices"``). Each model's rows are what it alone would give: the
    draws are seeded per draw, not per job. The models share the draws' normals through a
    :class:`~memristor_mat.evaluation.NormalsCache` of ``normals_cache_mb`` MiB.

    Resumable: each model's finished chunks of draws are kept in ``progress_dir`` (default
    ``<out>.progress``; :class:`~memristor_mat.evaluation.EvaluationProgress`, one file per
    model) until the shard is written, so a killed job recomputes only the chunk each model was
    in; a file of other settings, checkpoint, data or device type is not used."""
    if kind not in EVALUATIONS:
        raise ValueError(f"unknown evaluation {kind!r}; expected one of {sorted(EVALUATIONS)}")
    if kind == "devices" and not settings.devices:
        raise ValueError("no devices to evaluate: list them under evaluation.devices")
    if not checkpoint_paths:
        raise ValueError("no checkpoints to evaluate")
    evaluate, columns = EVALUATIONS[kind]
    prepare_process(threads)
    torch_device = select_device(device)
    data = load_prepared(data_path)
    tables, commits = [], []
    normals_cache = NormalsCache(normals_cache_mb * 2**20)
    progress_dir = Path(progress_dir if progress_dir is not None else str(out_path) + ".progress")
    check_output_path(out_path)
    data_sum = file_sha256(data_path)
    for index, checkpoint_path in enumerate(checkpoint_paths):
        # what the rows depend on; the threads only change the float order of sums, not a count
        fingerprint = json.dumps({
            "kind": kind, "settings": dataclasses.asdict(settings), "checkpoint": file_sha256(checkpoint_path),
            "data": data_sum, "device": torch_device.type, "torch": torch.__version__,
        }, sort_keys=True, default=str)
        progress = EvaluationProgress(progress_dir / f"model-{index}.json", fingerprint)
        table, identity, commit = _evaluate(checkpoint_path, data, data_path, settings, torch_device, evaluate,
                                            normals_cache, progress)
        if progress.reused:
            log.info("%s: %d finished chunks taken from %s", checkpoint_path, progress.reused, progress.path)
        tables.append(columns(table, identity, settings))
        commits.append(commit)
    log.info("normals of the draws: %d chunks drawn, %d taken from the cache (%.0f MiB kept)",
             normals_cache.misses, normals_cache.hits, normals_cache.used_bytes / 2**20)
    metadata = {
        **provenance(dataclasses.asdict(settings)),
        "checkpoint": ",".join(str(path) for path in checkpoint_paths),
        "training_git_commit": ",".join(sorted(set(commits))),
    }
    table = pd.concat(tables, ignore_index=True)
    write_parquet(table, out_path, metadata)
    shutil.rmtree(progress_dir, ignore_errors=True)
    return table


def evaluate_model(checkpoint_path: str | os.PathLike, settings: MonteCarloSettings, **options) -> pd.DataFrame:
    """:func:`evaluate_models` of one checkpoint (the command line's ``evaluate``)."""
    return evaluate_models([checkpoint_path], settings, **options)
