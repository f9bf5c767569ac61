"""Summary statistics of the Monte-Carlo accuracy table, and the published numbers to compare with.

The input of :func:`summarise` is the *tidy accuracy table*: one row per trained model (``seed``)
x inference noise level (``sigma_inference``) x Monte-Carlo noise draw (``draw``), with the
test accuracy as a fraction in ``[0, 1]``. The output has one row per
(task, dataset, arch, method, sigma_train, noise_model, reference, sigma_inference) and its
accuracy statistics in **percent**.
"""

from __future__ import annotations

import io
import os
import zlib
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from memristor_mat.io import atomic_path, write_text_atomic

__all__ = [
    "GROUP_KEYS",
    "REQUIRED_COLUMNS",
    "STAT_COLUMNS",
    "SUMMARY_COLUMNS",
    "PUBLISHED_COLUMNS",
    "summarise",
    "write_table",
    "published_numbers",
    "compare_with_published",
]

#: One summary row per combination of these columns of the tidy table.
GROUP_KEYS: tuple[str, ...] = (
    "task",
    "dataset",
    "arch",
    "method",
    "sigma_train",
    "noise_model",
    "reference",
    "sigma_inference",
)

#: Columns :func:`summarise` needs; the other columns of the tidy table (draw, eval_seed,
#: n_test, n_correct) are allowed but not used.
REQUIRED_COLUMNS: tuple[str, ...] = GROUP_KEYS + ("seed", "accuracy")

#: Accuracy statistics, all in percent.
STAT_COLUMNS: tuple[str, ...] = (
    "mean",
    "std",
    "median",
    "q25",
    "q75",
    "p12",
    "p88",
    "ci95_low",
    "ci95_high",
)

SUMMARY_COLUMNS: tuple[str, ...] = GROUP_KEYS + (
    "noise_level_pct",
    "sigma_train_pct",
    "n_models",
    "n_samples",
) + STAT_COLUMNS

PUBLISHED_COLUMNS: tuple[str, ...] = (
    "task",
    "method",
    "sigma_train",
    "sigma_inference",
    "statistic",
    "accuracy_pct",
    "note",
)

#: Decimals used to turn noise fractions into exact merge / group keys (0.1 + 0.2 != 0.3).
_SIGMA_DECIMALS = 9
#: Upper bound on the number of int64 indices drawn at once by the bootstrap (memory cap).
_BOOTSTRAP_CHUNK_ELEMENTS = 4_000_000


def _check_columns(table: pd.DataFrame, required: tuple[str, ...], what: str) -> None:
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ValueError(f"{what} is missing column(s) {missing}; it has {list(table.columns)}")


def _pct(fraction: pd.Series) -> pd.Series:
    return (100.0 * fraction.astype(float)).round(6)


def _group_seed(seed: int, key: tuple) -> np.random.SeedSequence:
    """A random stream per group that depends only on ``seed`` and the group's key.

    So a group's bootstrap CI does not change when other groups are added or removed.
    """
    digest = zlib.crc32(repr(tuple(str(k) for k in key)).encode("utf-8"))
    return np.random.SeedSequence([int(seed), digest])


def _bootstrap_mean_ci(
    values: np.ndarray, resamples: int, rng: np.random.Generator, level: float = 0.95
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean of ``values`` (vectorised)."""
    n = values.size
    if n == 1:
        return float(values[0]), float(values[0])
    chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // n)
    means = np.empty(resamples, dtype=float)
    for start in range(0, resamples, chunk):  # chunks bound memory; each chunk is vectorised
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def summarise(
    table: pd.DataFrame, *, bootstrap_resamples: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Accuracy statistics (percent) per (task, dataset, arch, method, sigma_train, noise_model,
    reference, sigma_inference) of the tidy Monte-Carlo accuracy table.

    Output columns, in order: :data:`SUMMARY_COLUMNS`, i.e. the group keys, ``noise_level_pct``
    (``100 * sigma_inference``), ``sigma_train_pct``, ``n_models`` (distinct training seeds),
    ``n_samples`` (rows pooled) and the statistics, all in percent of test accuracy:

    * ``mean``, ``std`` (sample standard deviation, ``ddof=1``; NaN for a single row),
    * ``median``, ``q25``, ``q75`` (inter-quartile range), ``p12``, ``p88`` (12th / 88th
      percentiles, the band of the original study); quantiles use linear interpolation,
    * ``ci95_low``, ``ci95_high``: 95% percentile-bootstrap confidence interval of the mean.

    The bootstrap resamples the group's *rows* (model x draw pairs) with replacement, treating
    them as independent; it does not resample models first and draws within models, so with
    few models it tends to understate the between-model part of the uncertainty. It is
    vectorised (one ``(resamples, n)`` index matrix per group) and deterministic: each group
    draws from its own stream seeded by ``seed`` and the group's key.

    Rows are sorted by the group keys. Sigma values are rounded to 9 decimals before grouping
    so that floating-point noise (``0.1 + 0.2``) does not split a group.

    Raises ``ValueError`` for missing columns, an empty table, or accuracies that are missing
    or outside ``[0, 1]``.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    _check_columns(table, REQUIRED_COLUMNS, "accuracy table")
    if table.empty:
        raise ValueError("accuracy table is empty")
    if int(bootstrap_resamples) < 1:
        raise ValueError(f"bootstrap_resamples must be >= 1, got {bootstrap_resamples}")
    accuracy = pd.to_numeric(table["accuracy"], errors="coerce")
    bad = accuracy.isna() | (accuracy < 0.0) | (accuracy > 1.0)
    if bad.any():
        examples = table.loc[bad, "accuracy"].head(5).tolist()
        raise ValueError(
            f"accuracy must be a fraction in [0, 1]; {int(bad.sum())} row(s) are not, e.g. {examples}"
        )
    key_nulls = [k for k in GROUP_KEYS if table[k].isna().any()]
    if key_nulls:
        raise ValueError(f"group key column(s) {key_nulls} contain missing values")

    data = table.loc[:, list(REQUIRED_COLUMNS)].copy()
    data["accuracy"] = accuracy.astype(float) * 100.0
    for col in ("sigma_train", "sigma_inference"):
        data[col] = data[col].astype(float).round(_SIGMA_DECIMALS)

    rows = []
    for key, group in data.groupby(list(GROUP_KEYS), sort=True, observed=True, dropna=False):
        values = group["accuracy"].to_numpy(dtype=float)
        q25, q75, p12, p88 = np.quantile(values, [0.25, 0.75, 0.12, 0.88])
        rng = np.random.default_rng(_group_seed(seed, key))
        ci_low, ci_high = _bootstrap_mean_ci(values, int(bootstrap_resamples), rng)
        row = dict(zip(GROUP_KEYS, key))
        row.update(
            n_models=int(group["seed"].nunique()),
            n_samples=int(values.size),
            mean=float(values.mean()),
            std=float(values.std(ddof=1)) if values.size > 1 else float("nan"),
            median=float(np.median(values)),
            q25=float(q25),
            q75=float(q75),
            p12=float(p12),
            p88=float(p88),
            ci95_low=ci_low,
            ci95_high=ci_high,
        )
        rows.append(row)

    out = pd.DataFrame(rows)
    out["noise_level_pct"] = _pct(out["sigma_inference"])
    out["sigma_train_pct"] = _pct(out["sigma_train"])
    out = out.loc[:, list(SUMMARY_COLUMNS)]
    return out.sort_values(list(GROUP_KEYS), kind="mergesort").reset_index(drop=True)


def _stem_paths(stem_path: str | os.PathLike) -> tuple[Path, Path]:
    # Append, never with_suffix: stems such as "sigma_0.2" contain dots.
    stem = os.fspath(stem_path)
    return Path(stem + ".csv"), Path(stem + ".md")


def write_table(df: pd.DataFrame, stem_path: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``df`` as ``<stem>.csv`` (full precision) and ``<stem>.md`` (Markdown, 2 decimals),
    each atomically; parent directories are created. Returns ``(csv_path, md_path)``."""
    csv_path, md_path = _stem_paths(stem_path)
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False)
    if df.empty:
        markdown = "| " + " | ".join(map(str, df.columns)) + " |\n" if len(df.columns) else ""
        markdown += "\n_(no rows)_\n"
    else:
        markdown = df.to_markdown(index=False, floatfmt=".2f") + "\n"
    write_text_atomic(md_path, markdown)
    return csv_path, md_path


def published_numbers(task: str | None = None) -> pd.DataFrame:
    """The published accuracies (percent) shipped as package data ``published.csv``.

    Columns: :data:`PUBLISHED_COLUMNS`. ``statistic`` is ``mean`` or ``median`` (ECG).
    With ``task`` given, only that task's rows (an empty frame for a task the study did not
    report).
    """
    text = (resources.files("memristor_mat") / "published.csv").read_text(encoding="utf-8")
    df = pd.read_csv(
        io.StringIO(text),
        dtype={
            "task": str,
            "method": str,
            "sigma_train": float,
            "sigma_inference": float,
            "statistic": str,
            "accuracy_pct": float,
            "note": str,
        },
        keep_default_na=False,
    )
    _check_columns(df, PUBLISHED_COLUMNS, "published.csv")
    df = df.loc[:, list(PUBLISHED_COLUMNS)]
    if task is not None:
        df = df[df["task"] == task]
    return df.reset_index(drop=True)


def compare_with_published(summary: pd.DataFrame, task: str) -> pd.DataFrame:
    """Our accuracy beside the published one, for ``task``.

    One row per summary row of ``task`` whose (method, sigma_train, sigma_inference) the
    published study reports (an inner join: configurations only one side has are left out).
    Columns: task, method, sigma_train, sigma_inference, noise_level_pct, dataset, arch,
    noise_model, reference, n_models, n_samples, ``mean``, ``median`` (ours, percent),
    ``statistic`` (the published statistic: mean or median), ``ours`` (our value of that
    statistic), ``published``, ``difference`` (ours - published, percentage points), ``note``.
    """
    needed = (
        "task", "method", "sigma_train", "sigma_inference", "mean", "median",
        "n_models", "n_samples",
    )
    _check_columns(summary, needed, "summary")
    ours = summary[summary["task"] == task].copy()
    pub = published_numbers(task).rename(columns={"accuracy_pct": "published"})
    for frame in (ours, pub):
        frame["_st"] = frame["sigma_train"].astype(float).round(_SIGMA_DECIMALS)
        frame["_si"] = frame["sigma_inference"].astype(float).round(_SIGMA_DECIMALS)
    merged = ours.merge(
        pub.drop(columns=["task", "sigma_train", "sigma_inference"]),
        on=["method", "_st", "_si"],
        how="inner",
    )
    merged["ours"] = np.where(merged["statistic"] == "median", merged["median"], merged["mean"])
    merged["difference"] = merged["ours"] - merged["published"]
    merged["noise_level_pct"] = _pct(merged["sigma_inference"])
    columns = ["task", "method", "sigma_train", "sigma_inference", "noise_level_pct"]
    columns += [c for c in ("dataset", "arch", "noise_model", "reference") if c in merged.columns]
    columns += [
        "n_models", "n_samples", "mean", "median", "statistic", "ours", "published",
        "difference", "note",
    ]
    sort_keys = ["method", "sigma_train"]
    sort_keys += [c for c in ("dataset", "arch", "noise_model", "reference") if c in merged]
    sort_keys += ["sigma_inference"]
    merged = merged.sort_values(sort_keys, kind="mergesort")
    return merged.loc[:, columns].reset_index(drop=True)
