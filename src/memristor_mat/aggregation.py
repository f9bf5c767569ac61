"""Aggregation: one task's evaluation shards concatenated into its tidy tables, summaries and
provenance. Table work only, so it imports no torch: an aggregation job starts in a fraction of
the time of a job that computes (``benchmarks/job_overhead.py``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import methods as registry
from . import paths
from .datasets.errors import DataError
from .io import atomic_path
from .provenance import provenance
from .reporting.summary import (CONDITION_COLUMNS, GROUP_KEYS, device_keys, paired_differences, per_model_summary,
                                precision_plan, summarise)
from .reporting.tables import write_table

#: columns of the tidy accuracy table, in order (one row per model x level x draw); every
#: setting of the method registry (sigma_train, levels, noise_sd) is a column, 0 where not applied
ACCURACY_COLUMNS = [
    "task", "dataset", "arch", "method", *registry.SETTING_COLUMNS, "seed", "noise_model", "reference",
    "sigma_inference", "draw", "eval_seed", "n_test", "n_correct", "accuracy",
]


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def device_accuracy_columns(condition_columns: Sequence[str]) -> list[str]:
    """Columns of a device cross-evaluation table with these condition columns."""
    return ["task", "dataset", "arch", "method", *registry.SETTING_COLUMNS, "seed", "device", "noise_model",
            *condition_columns, "draw", "eval_seed", "n_test", "n_correct", "accuracy"]


def write_parquet(table: pd.DataFrame, path: str | os.PathLike, metadata: dict[str, str]) -> None:
    """Parquet with provenance in the file's key-value metadata."""
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    merged = {**(arrow.schema.metadata or {}), **{f"memristor_mat.{k}".encode(): str(v).encode()
                                                 for k, v in metadata.items()}}
    with atomic_path(path) as tmp:
        pq.write_table(arrow.replace_schema_metadata(merged), tmp)


def read_parquet_metadata(path: str | os.PathLike) -> dict[str, str]:
    raw = pq.read_schema(path).metadata or {}
    prefix = b"memristor_mat."
    return {k[len(prefix):].decode(): v.decode() for k, v in raw.items() if k.startswith(prefix)}


def aggregate(
    shard_paths: Sequence[str | os.PathLike],
    metrics_paths: Sequence[str | os.PathLike],
    *,
    label: str,
    accuracy_path: str | os.PathLike,
    accuracy_csv_path: str | os.PathLike,
    summary_path: str | os.PathLike,
    summary_stem: str | os.PathLike,
    per_model_stem: str | os.PathLike,
    metrics_out_path: str | os.PathLike | None,
    provenance_path: str | os.PathLike,
    paired_path: str | os.PathLike,
    paired_stem: str | os.PathLike,
    baseline: str = "vanilla",
    interval: str = "t",
) -> pd.DataFrame:
    """Concatenate one task's shards into the tidy table, its summary statistics (models as the
    independent units, SPEC §4), a table per model and every configuration against
    ``baseline``, paired by seed and draw (:func:`~memristor_mat.reporting.summary.paired_differences`),
    their confidence intervals by ``interval`` (``t`` or ``bootstrap``, recorded in the
    provenance); the provenance also goes to a small (key, value) CSV that the report shows. Without
    ``metrics_paths`` (evaluations run by the command line) no metrics table is written."""
    if not shard_paths:
        raise ValueError("no evaluation shards to aggregate")
    tables, shard_meta = _read_shards(shard_paths, lambda table: ACCURACY_COLUMNS)
    # every input read before the first output is written: a bad one leaves the outputs as they were
    metrics = pd.concat([_read_metrics(p) for p in metrics_paths], ignore_index=True) if metrics_paths else None
    table = pd.concat(tables, ignore_index=True)
    table = table.sort_values(["method", *registry.SETTING_COLUMNS, "seed", "sigma_inference", "draw"],
                              ignore_index=True)
    meta = {
        **_shard_provenance(shard_meta),
        "shard_config_hashes": ",".join(sorted({m.get("config_hash", "?") for m in shard_meta})),
        "shard_git_commits": ",".join(sorted({m.get("git_commit", "unknown") for m in shard_meta})),
        "label": label,
        "confidence_interval": interval,
    }
    summary = summarise(table, interval=interval)  # before the first write: a bad interval writes nothing
    write_parquet(table, accuracy_path, meta)
    write_csv(table, accuracy_csv_path)
    write_parquet(summary, summary_path, meta)
    write_table(summary, summary_stem)
    write_table(per_model_summary(table), per_model_stem)
    paired = paired_differences(table, baseline=baseline, interval=interval)
    write_parquet(paired, paired_path, meta)
    write_table(paired, paired_stem)
    if metrics is not None:
        write_csv(metrics, metrics_out_path)
    write_csv(pd.DataFrame(sorted(meta.items()), columns=["key", "value"]), provenance_path)
    return summary


def aggregate_devices(
    shard_paths: Sequence[str | os.PathLike],
    *,
    accuracy_path: str | os.PathLike,
    accuracy_csv_path: str | os.PathLike,
    summary_path: str | os.PathLike,
    summary_csv_path: str | os.PathLike,
    paired_path: str | os.PathLike,
    paired_csv_path: str | os.PathLike,
    baseline: str = "vanilla",
    interval: str = "t",
) -> pd.DataFrame:
    """One task's device cross-evaluation: the shards concatenated into the tidy table (one row
    per model x device condition x draw), its summary, with the CI (``interval``) of
    :func:`~memristor_mat.reporting.summary.summarise` per trained configuration x device
    condition, and every configuration against ``baseline`` on the same chips
    (:func:`~memristor_mat.reporting.summary.paired_differences`)."""
    if not shard_paths:
        raise ValueError("no device evaluation shards to aggregate")
    tables, shard_meta = _read_shards(
        shard_paths, lambda table: device_accuracy_columns([c for c in CONDITION_COLUMNS if c in table.columns]))
    table = pd.concat(tables, ignore_index=True)
    conditions = [c for c in CONDITION_COLUMNS if c in table.columns]
    table = table.loc[:, device_accuracy_columns(conditions)].sort_values(
        ["method", *registry.SETTING_COLUMNS, "seed", "device", *conditions, "draw"], ignore_index=True,
        na_position="first")
    meta = {
        **_shard_provenance(shard_meta),
        "shards": str(len(shard_paths)),
        "confidence_interval": interval,
    }
    summary = summarise(table, keys=device_keys(table), interval=interval)
    write_parquet(table, accuracy_path, meta)
    write_csv(table, accuracy_csv_path)
    write_parquet(summary, summary_path, meta)
    write_csv(summary, summary_csv_path)
    paired = paired_differences(table, baseline=baseline, keys=device_keys(table), interval=interval)
    write_parquet(paired, paired_path, meta)
    write_csv(paired, paired_csv_path)
    return summary


def summarise_tables(shard_paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                     baseline: str = "vanilla", label: str = "", interval: str = "t") -> Path:
    """The tables the workflow's aggregate writes for a task, from evaluation tables written one
    by one (``memristor-mat evaluate``; the study's or, all with a ``device`` column, the
    cross-evaluation's), into ``out_dir`` under the workflow's file names: the tidy table, the
    summary, (the study's) a table per model, and the paired differences against ``baseline``,
    with ``interval``'s confidence intervals. Returns ``out_dir``."""
    if not shard_paths:
        raise ValueError("no evaluation tables to summarise")
    devices = _device_tables(shard_paths, "summarise")
    out = Path(out_dir)

    def name(pattern: str) -> Path:  # the workflow's file name of a task's table
        return out / Path(pattern).name

    if devices:
        aggregate_devices(shard_paths, accuracy_path=name(paths.DEVICE_ACCURACY),
                          accuracy_csv_path=name(paths.DEVICE_ACCURACY_CSV), summary_path=name(paths.DEVICE_SUMMARY),
                          summary_csv_path=name(paths.DEVICE_SUMMARY_CSV), paired_path=name(paths.DEVICE_PAIRED),
                          paired_csv_path=name(paths.DEVICE_PAIRED_CSV), baseline=baseline, interval=interval)
    else:
        aggregate(shard_paths, [], label=label, accuracy_path=name(paths.ACCURACY),
                  accuracy_csv_path=name(paths.ACCURACY_CSV), summary_path=name(paths.SUMMARY),
                  summary_stem=name(paths.SUMMARY_CSV).with_suffix(""),
                  per_model_stem=out / paths.PER_MODEL_TABLE, metrics_out_path=None,
                  provenance_path=name(paths.PROVENANCE), paired_path=name(paths.PAIRED),
                  paired_stem=name(paths.PAIRED_CSV).with_suffix(""), baseline=baseline, interval=interval)
    return out


def plan_precision(table_paths: Sequence[str | os.PathLike], *, models: Sequence[int], draws: Sequence[int],
                   baseline: str | None = None) -> pd.DataFrame:
    """:func:`~memristor_mat.reporting.summary.precision_plan` of evaluation tables, Parquet or
    CSV: those ``memristor-mat evaluate`` writes or a task's tidy table
    (``results/<task>/accuracy.parquet`` or the ``.csv`` a checkout ships, the same for
    ``device_accuracy``), all of the study's levels or all of the cross-evaluation."""
    if not table_paths:
        raise ValueError("no evaluation tables to plan from")
    tables = []
    for path in table_paths:
        try:
            tables.append(pd.read_csv(path) if Path(path).suffix.lower() == ".csv" else pd.read_parquet(path))
        except (OSError, ValueError, pa.ArrowException) as error:
            raise DataError(f"evaluation table {path} is unreadable ({type(error).__name__}: {error})") from None
    devices = _one_kind({"device" in table.columns for table in tables}, "plan")
    for path, table in zip(table_paths, tables):
        required = (device_accuracy_columns([c for c in CONDITION_COLUMNS if c in table.columns]) if devices
                    else ACCURACY_COLUMNS)
        missing = [c for c in required if c not in table.columns]
        if missing:
            raise DataError(f"evaluation table {path} lacks the columns {missing}: is it an evaluation table?")
    table = pd.concat(tables, ignore_index=True)
    return precision_plan(table, models=models, draws=draws, baseline=baseline,
                          keys=device_keys(table) if devices else GROUP_KEYS)


def _device_tables(paths: Sequence[str | os.PathLike], verb: str) -> bool:
    """Whether the evaluation tables (Parquet) at ``paths`` are device cross-evaluations (all)
    or the study's (none); a mix or an unreadable table raises, naming it."""
    kinds = set()
    for path in paths:
        try:
            kinds.add("device" in pq.read_schema(path).names)
        except (OSError, pa.ArrowException) as error:
            raise DataError(f"evaluation table {path} is unreadable ({type(error).__name__}: {error})") from None
    return _one_kind(kinds, verb)


def _one_kind(kinds: set[bool], verb: str) -> bool:
    """True for device cross-evaluations only, False for the study's only; a mix raises."""
    if len(kinds) > 1:
        raise ValueError("the tables mix the study's evaluations and device cross-evaluations (evaluate --devices): "
                         f"{verb} each kind on its own")
    return kinds == {True}


def _read_shards(paths: Sequence[str | os.PathLike], required) -> tuple[list[pd.DataFrame], list[dict[str, str]]]:
    """Each shard's table and provenance, checked one by one: a shard that is unreadable or
    lacks a column (``required(table)``) is named, with what to do, instead of failing later
    in the concatenated table."""
    tables, metas = [], []
    for path in paths:
        try:
            table, meta = pd.read_parquet(path), read_parquet_metadata(path)
        except (OSError, ValueError, pa.ArrowException) as error:
            raise DataError(f"evaluation shard {path} is unreadable ({type(error).__name__}: {error}); "
                            "delete it and rerun: its evaluation job writes it again") from None
        missing = [c for c in required(table) if c not in table.columns]
        if missing:
            raise DataError(f"evaluation shard {path} lacks the columns {missing}: it was written by "
                            "another version or another kind of evaluation; delete it and rerun")
        tables.append(table)
        metas.append(meta)
    return tables, metas


def _read_metrics(path: str | os.PathLike) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as error:  # pandas' EmptyDataError and ParserError are ValueErrors
        raise DataError(f"training metrics {path} are unreadable ({type(error).__name__}: {error}); "
                        "delete the model's folder and rerun its training job") from None


def _shard_provenance(shard_meta: Sequence[dict[str, str]]) -> dict[str, str]:
    """Provenance of an aggregate: its shards' config hashes, and the torch version(s) they were
    computed with (this process imports no torch of its own)."""
    return provenance(sorted(m.get("config_hash", "") for m in shard_meta),
                      torch_version=",".join(sorted({m.get("torch_version", "unknown") for m in shard_meta})))
