"""Summary statistics of the Monte-Carlo accuracy table, and the published numbers to compare with.

The input of :func:`summarise` is the *tidy accuracy table*: one row per trained model (``seed``)
x inference noise level (``sigma_inference``) x Monte-Carlo noise draw (``draw``), with the
test accuracy as a fraction in ``[0, 1]``. At the noise-free level (``sigma_inference == 0``)
there is nothing to draw, so the table holds one row per model there (older tables copied that
row once per draw; see :func:`summarise` for how copies are counted). The output has one row
per (task, dataset, arch, method, sigma_train, noise_model, reference, sigma_inference) and its
accuracy statistics in **percent**; :func:`per_model_summary` gives one row per model.

Statistics (SPEC §4, "Decision (statistics)"): the trained models (training seeds) are the
independent units; the noise draws of one model are repeated measurements of that model. The
confidence interval of the mean is therefore a two-stage (hierarchical) bootstrap: models
first, then draws within each chosen model; where every model was evaluated on the same draws
(the pipeline's common random numbers), the same draws for all of them (draws crossed with
models, see :func:`summarise`).
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Sequence
from importlib import resources

import numpy as np
import pandas as pd

from memristor_mat.methods import SETTING_COLUMNS, unapplied_settings
from memristor_mat.noise_registry import CONDITION_KEYS

__all__ = [
    "CONDITION_COLUMNS",
    "DEVICE_GROUP_KEYS",
    "GROUP_KEYS",
    "INTERVALS",
    "device_keys",
    "REQUIRED_COLUMNS",
    "STAT_COLUMNS",
    "SUMMARY_COLUMNS",
    "PER_MODEL_COLUMNS",
    "PUBLISHED_COLUMNS",
    "summarise",
    "per_model_summary",
    "published_numbers",
    "compare_with_published",
    "NOISE_AXIS",
    "CONFIGURATION_KEYS",
    "PAIRED_COLUMNS",
    "paired_differences",
    "VARIANCE_COLUMNS",
    "variance_components",
    "PLAN_COLUMNS",
    "precision_plan",
    "plan_text",
]

#: One summary row per combination of these columns of the tidy table.
GROUP_KEYS: tuple[str, ...] = (
    "task",
    "dataset",
    "arch",
    "method",
    *SETTING_COLUMNS,
    "noise_model",
    "reference",
    "sigma_inference",
)

#: The trained configuration and device of a device cross-evaluation row; its condition columns follow.
DEVICE_GROUP_KEYS: tuple[str, ...] = ("task", "dataset", "arch", "method", *SETTING_COLUMNS, "device", "noise_model")

#: Every condition column a noise model can write, in registry order (one per condition key).
CONDITION_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys(key.column for key in CONDITION_KEYS.values()))

#: Columns :func:`summarise` needs; the other columns of the tidy table (draw, eval_seed,
#: n_test, n_correct) are allowed but not used.
REQUIRED_COLUMNS: tuple[str, ...] = GROUP_KEYS + ("seed", "accuracy")

#: Accuracy statistics, all in percent.
STAT_COLUMNS: tuple[str, ...] = (
    "mean",
    "std",
    "between_model_sd",
    "within_model_sd",
    "median",
    "q25",
    "q75",
    "p12",
    "p88",
    "ci95_low",
    "ci95_high",
    "ci95_method",
)

SUMMARY_COLUMNS: tuple[str, ...] = GROUP_KEYS + (
    "noise_level_pct",
    "sigma_train_pct",
    "n_models",
    "n_draws",
) + STAT_COLUMNS

#: Columns of :func:`per_model_summary` (statistics in percent).
PER_MODEL_COLUMNS: tuple[str, ...] = GROUP_KEYS + (
    "seed",
    "noise_level_pct",
    "sigma_train_pct",
    "n_draws",
    "mean",
    "std",
    "median",
    "min",
    "max",
)

PUBLISHED_COLUMNS: tuple[str, ...] = (
    "task",
    "method",
    *SETTING_COLUMNS,
    "noise_model",
    "reference",
    "sigma_inference",
    "statistic",
    "accuracy_pct",
    "note",
)

#: The columns that tell one trained configuration from another (the rest of a group key is the
#: condition it was evaluated under): :func:`paired_differences` compares configurations.
CONFIGURATION_KEYS: tuple[str, ...] = ("method", *SETTING_COLUMNS)

#: Statistics of :func:`paired_differences`, percent and percentage points.
PAIRED_STAT_COLUMNS: tuple[str, ...] = (
    "mean",
    "baseline_mean",
    "difference",
    "median_difference",
    "difference_sd",
    "between_model_sd",
    "ci95_low",
    "ci95_high",
    "ci95_method",
    "share_better",
    "share_worse",
)

#: Columns of :func:`paired_differences` for the study's table (its group keys, then these).
PAIRED_COLUMNS: tuple[str, ...] = GROUP_KEYS + (
    "baseline",
    "noise_level_pct",
    "sigma_train_pct",
    "n_models",
    "n_draws",
) + PAIRED_STAT_COLUMNS

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


def _group_seed(seed: int, key: tuple, keys: tuple[str, ...] = GROUP_KEYS) -> np.random.SeedSequence:
    """A random stream per group that depends only on ``seed`` and the group's key.

    So a group's bootstrap CI does not change when other groups are added or removed. Method
    settings that do not apply (0) beyond ``sigma_train`` are left out of the key, so adding a
    setting to the method registry changes no existing group's stream.
    """
    named = dict(zip(keys, key))
    key = tuple(value for name, value in named.items()
                if not (name in SETTING_COLUMNS[1:] and float(value) == 0.0))
    digest = zlib.crc32(repr(tuple(str(k) for k in key)).encode("utf-8"))
    return np.random.SeedSequence([int(seed), digest])


def _prepare(table: pd.DataFrame, keys: tuple[str, ...] = GROUP_KEYS, carry: tuple[str, ...] = ()) -> pd.DataFrame:
    """Validate the tidy table; return its required columns (and those of ``carry``) with
    accuracy in percent, sigmas rounded to group keys, and the noise-free copies removed (see
    :func:`summarise`). Condition columns (:data:`CONDITION_COLUMNS`) may be missing (NaN) in
    device tables: a device has only its own conditions."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    # tables written before a setting existed did not apply it
    table = table.assign(**{name: value for name, value in unapplied_settings().items() if name not in table.columns})
    _check_columns(table, keys + ("seed", "accuracy") + carry, "accuracy table")
    if table.empty:
        raise ValueError("accuracy table is empty")
    accuracy = pd.to_numeric(table["accuracy"], errors="coerce")
    bad = accuracy.isna() | (accuracy < 0.0) | (accuracy > 1.0)
    if bad.any():
        examples = table.loc[bad, "accuracy"].head(5).tolist()
        raise ValueError(
            f"accuracy must be a fraction in [0, 1]; {int(bad.sum())} row(s) are not, e.g. {examples}"
        )
    may_be_missing = set(CONDITION_COLUMNS) if keys != GROUP_KEYS else set()
    key_nulls = [k for k in keys + ("seed",) if k not in may_be_missing and table[k].isna().any()]
    if key_nulls:
        raise ValueError(f"group key column(s) {key_nulls} contain missing values")

    data = table.loc[:, list(keys + ("seed", "accuracy") + carry)].copy()
    data["accuracy"] = accuracy.astype(float) * 100.0
    for col in ("sigma_train", "noise_sd", *(c for c in CONDITION_COLUMNS if c in keys)):
        data[col] = data[col].astype(float).round(_SIGMA_DECIMALS)
    data["levels"] = data["levels"].astype(int)
    if "sigma_inference" not in keys:
        return data
    # Noise-free level: one evaluation per model. Tables that copied it once per draw hold
    # identical accuracies; count each distinct accuracy of a model once.
    copies = (data["sigma_inference"] == 0.0) & data.duplicated(
        list(keys) + ["seed", "accuracy"], keep="first"
    )
    return data.loc[~copies]


#: Columns that identify a Monte-Carlo draw across models: carried through :func:`_prepare`
#: where a table has them, so :func:`_shares_draws` can tell crossed draws from nested ones.
DRAW_COLUMNS: tuple[str, ...] = ("draw", "eval_seed")


def _shares_draws(group: pd.DataFrame) -> bool:
    """Whether every model of ``group`` was evaluated on the same draws: common random numbers
    (SPEC §4), as the pipeline evaluates (one ``eval_seed``, and every model has every draw
    index exactly once: draw ``d`` is then the same chip for every model). A table without
    ``draw`` and ``eval_seed``, or with several seeds or draws missing for some model, gives no
    such evidence: False."""
    if any(column not in group.columns for column in DRAW_COLUMNS):
        return False
    if group["draw"].isna().any() or group["eval_seed"].isna().any() or group["eval_seed"].nunique() != 1:
        return False
    n_models, n_draws = group["seed"].nunique(), group["draw"].nunique()
    return len(group) == n_models * n_draws and not group.duplicated(["seed", "draw"]).any()


def _model_matrix(group: pd.DataFrame, column: str = "accuracy", *,
                  by_draw: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The group's ``column`` (accuracies) as a ``(models, max_draws)`` matrix padded with NaN,
    and the number of draws of each model; models in seed order, draws in table order, or with
    ``by_draw`` (a group where :func:`_shares_draws`) column ``j`` the same draw of every model,
    in draw order."""
    seeds, codes = np.unique(group["seed"].to_numpy(), return_inverse=True)
    values = group[column].to_numpy(dtype=float)
    counts = np.bincount(codes, minlength=seeds.size)
    if by_draw:
        draws, draw_codes = np.unique(group["draw"].to_numpy(), return_inverse=True)
        matrix = np.full((seeds.size, draws.size), np.nan)
        matrix[codes, draw_codes] = values
        return matrix, counts
    order = np.argsort(codes, kind="stable")
    position = np.arange(values.size) - np.repeat(np.cumsum(counts) - counts, counts)
    matrix = np.full((seeds.size, int(counts.max())), np.nan)
    matrix[codes[order], position] = values[order]
    return matrix, counts


#: How :func:`summarise` and :func:`paired_differences` compute the 95 % confidence interval of a
#: mean: ``t`` (a t interval whose standard error and degrees of freedom come from the models and
#: draws: :func:`_t_interval`) or ``bootstrap`` (SPEC §4's hierarchical percentile bootstrap:
#: :func:`_hierarchical_bootstrap_mean_ci`).
INTERVALS: tuple[str, ...] = ("t", "bootstrap")


def _check_interval_arguments(interval: str, bootstrap_resamples: int, min_models_for_ci: int) -> None:
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {list(INTERVALS)}, got {interval!r}")
    if int(bootstrap_resamples) < 1:
        raise ValueError(f"bootstrap_resamples must be >= 1, got {bootstrap_resamples}")
    if int(min_models_for_ci) < 1:
        raise ValueError(f"min_models_for_ci must be >= 1, got {min_models_for_ci}")


def _mean_squares(matrix: np.ndarray) -> tuple[float, float, float]:
    """Mean squares of models, draws and residual of a full ``(models, draws)`` matrix whose
    column ``j`` is the same draw of every model: the two-way layout without replication
    (Searle, Casella & McCulloch 1992, *Variance Components*, §4.2). Needs 2+ models and draws."""
    n_models, n_draws = matrix.shape
    grand, model_means, draw_means = matrix.mean(), matrix.mean(axis=1), matrix.mean(axis=0)
    ms_model = n_draws * float(((model_means - grand) ** 2).sum()) / (n_models - 1)
    ms_draw = n_models * float(((draw_means - grand) ** 2).sum()) / (n_draws - 1)
    residual = matrix - model_means[:, None] - draw_means[None, :] + grand
    ms_residual = float((residual ** 2).sum()) / ((n_models - 1) * (n_draws - 1))
    return ms_model, ms_draw, ms_residual


def _half_width(terms: Sequence[tuple[float, float]], level: float = 0.95) -> float:
    """The half-width ``sqrt(sum t(dof_i)^2 term_i)`` of the t interval of a mean whose variance
    is a sum of independent mean squares' terms ``(coefficient x mean square, degrees of
    freedom)``, each scaled by the t quantile of its own degrees of freedom (Banerjee 1960,
    *Sankhya* 22:357: for a linear combination of means with unequal variances, an interval that
    covers at least the nominal level). One term: the t interval."""
    from scipy.special import stdtrit  # Student's t quantile; scipy.stats is slower to import

    quantile = 0.5 + level / 2.0
    return float(np.sqrt(max(0.0, sum(float(stdtrit(dof, quantile)) ** 2 * term for term, dof in terms))))


def _crossed_half_width(ms_model: float, ms_draw: float, ms_residual: float, n_models: int, n_draws: int,
                        level: float = 0.95) -> float:
    """The half-width of the t interval of the mean of a crossed ``n_models x n_draws`` design
    from its mean squares (observed, or expected for a planned design).

    The variance of the mean, ``model_var / K + draw_var / n + residual_var / (K n)``, is
    ``(MS_model + MS_draw - MS_residual) / (K n)``; each mean square is scaled by the t quantile
    of its own degrees of freedom (:func:`_half_width`): ``MS_model`` by ``t(K - 1)``,
    ``MS_draw`` by ``t(n - 1)``, ``MS_residual`` by ``t((K - 1)(n - 1))`` (never more than the
    draws', so the chips' part stays positive). A draw component estimated below 0 (``MS_draw
    <= MS_residual``) is dropped with the residual term, leaving the t interval of the model
    means. The interval is never narrower than the draws alone give, ``t(n - 1) sqrt(MS_draw /
    (K n))``: the mean's variance without the models' own term, ``draw_var / n + residual_var /
    (K n)``, which models that happen to look alike (``MS_model`` far below ``MS_residual``)
    would otherwise cut below (with 2 models in up to 14 % of simulated studies).

    Satterthwaite's one pooled t for the whole variance (the rule until 2026-12-06)
    undercovered with 2-3 models where models and chips both vary (88-93 %): its degrees of
    freedom, estimated from the same few models, came out high exactly when the models happened
    to look alike. This rule covered 94.5-99.3 % of simulated studies with 2-5 models
    (``benchmarks/interval_coverage.py``), wider than the pooled rule where the chips weigh in
    (with 2 models, whose term carries t(1) = 12.7, a median 2.6 times). Scaling ``MS_draw -
    MS_residual`` as one term by Satterthwaite's degrees of freedom of the difference sent them
    towards 0, and the interval to infinity, wherever ``MS_draw`` barely passed ``MS_residual``.
    """
    cells = n_models * n_draws
    terms = [(ms_model / cells, float(n_models - 1))]
    if ms_draw > ms_residual:
        terms += [(ms_draw / cells, float(n_draws - 1)), (-ms_residual / cells, float((n_models - 1) * (n_draws - 1)))]
    return max(_half_width(terms, level), _half_width([(ms_draw / cells, float(n_draws - 1))], level))


def _mean_half_width(matrix: np.ndarray, counts: np.ndarray, level: float = 0.95, *,
                     shared_draws: bool = False) -> tuple[float, float]:
    """The mean of the model means and the half-width of its t interval (NaN for a single value).

    Draws nested in models (or one evaluation per model): the variance of the ``K`` model means
    over ``K`` with ``K - 1`` degrees of freedom, the textbook estimate for a two-stage sample
    that treats the models as the units (the t interval is exact for balanced normal data; with
    one model, its draws' variance over ``n`` with ``n - 1``: that one network's). Draws shared
    by the models (``shared_draws``, a full matrix): the crossed design's mean squares
    (:func:`_mean_squares`, :func:`_crossed_half_width`).
    """
    n_models, width = matrix.shape
    model_means = np.nanmean(matrix, axis=1)
    mean = float(model_means.mean())
    if shared_draws and n_models > 1 and width > 1:
        return mean, _crossed_half_width(*_mean_squares(matrix), n_models, width, level)
    if n_models > 1:
        return mean, _half_width([(float(model_means.var(ddof=1)) / n_models, n_models - 1.0)], level)
    if counts[0] > 1:
        draws = matrix[0, : int(counts[0])]
        return mean, _half_width([(float(draws.var(ddof=1)) / draws.size, draws.size - 1.0)], level)
    return mean, float("nan")


def _t_interval(matrix: np.ndarray, counts: np.ndarray, level: float = 0.95, *,
                shared_draws: bool = False) -> tuple[float, float]:
    """The t interval of the mean of the model means, ``mean -/+`` the half-width of
    :func:`_mean_half_width`; a single value, or no spread at all, gives ``[mean, mean]``."""
    mean, half = _mean_half_width(matrix, counts, level, shared_draws=shared_draws)
    if not half > 0.0:
        return mean, mean
    return mean - half, mean + half


def _mean_interval(matrix: np.ndarray, counts: np.ndarray, *, interval: str, shared_draws: bool,
                   resamples: int, seed: np.random.SeedSequence, bounds: tuple[float, float]) -> tuple[float, float]:
    """The 95 % interval of a group's mean of model means by ``interval`` (:data:`INTERVALS`);
    ``seed`` seeds the bootstrap's stream. The t interval is cut to ``bounds``, the values the
    mean can take (accuracy 0-100 %; a difference of two, -100 to 100 points): with 2-3 models
    its half-width can pass them, and no mean lies beyond them."""
    if interval == "t":
        low, high = _t_interval(matrix, counts, shared_draws=shared_draws)
        return max(low, bounds[0]), min(high, bounds[1])
    return _hierarchical_bootstrap_mean_ci(matrix, counts, resamples, np.random.default_rng(seed),
                                           shared_draws=shared_draws)


def _hierarchical_bootstrap_mean_ci(
    matrix: np.ndarray,
    counts: np.ndarray,
    resamples: int,
    rng: np.random.Generator,
    level: float = 0.95,
    *,
    shared_draws: bool = False,
) -> tuple[float, float]:
    """Two-stage percentile-bootstrap CI of the mean of the model means (vectorised).

    ``matrix`` is ``(K models, max draws)``, row ``k`` holding ``counts[k]`` values then NaN.
    Each resample draws ``K`` models with replacement, then, for every drawn model, as many
    draws as it has, with replacement, from that model's own draws; its statistic is the mean
    over the drawn models of their resampled draw means (equal weight per model). With
    ``shared_draws`` (a full matrix whose column ``j`` is the same draw of every model: the
    draws are crossed with the models) the second stage draws one set of draw indices per
    resample for all its models: the pigeonhole bootstrap (Owen 2007). Resamples are made in
    chunks of at most :data:`_BOOTSTRAP_CHUNK_ELEMENTS` indices per stage.
    """
    n_models, width = matrix.shape
    equal = bool((counts == width).all())
    if shared_draws and not equal:
        raise ValueError("shared draws need every model to have every draw")
    chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // (n_models * width))
    means = np.empty(resamples, dtype=float)
    slots = np.arange(width)
    for start in range(0, resamples, chunk):  # chunks bound memory; each chunk is vectorised
        size = min(resamples, start + chunk) - start
        models = rng.integers(0, n_models, size=(size, n_models))  # stage 1: models
        if equal:  # stage 2: draws within each drawn model (the same ones for all where shared)
            draws = rng.integers(0, width, size=(size, 1 if shared_draws else n_models, width))
            means[start : start + size] = matrix[models[..., None], draws].mean(axis=(1, 2))
        else:
            drawn_counts = counts[models]
            draws = rng.integers(0, drawn_counts[..., None], size=(size, n_models, width))
            picked = np.where(slots < drawn_counts[..., None], matrix[models[..., None], draws], 0.0)
            model_means = picked.sum(axis=2) / drawn_counts
            means[start : start + size] = model_means.mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def summarise(
    table: pd.DataFrame,
    *,
    interval: str = "t",
    bootstrap_resamples: int = 1000,
    seed: int = 0,
    min_models_for_ci: int = 2,
    keys: tuple[str, ...] = GROUP_KEYS,
) -> pd.DataFrame:
    """Accuracy statistics (percent) per (task, dataset, arch, method, sigma_train, noise_model,
    reference, sigma_inference) of the tidy Monte-Carlo accuracy table (or per ``keys``: the
    device cross-evaluation groups by :func:`device_keys`).

    Output columns, in order: :data:`SUMMARY_COLUMNS`, i.e. the group keys, ``noise_level_pct``
    (``100 * sigma_inference``), ``sigma_train_pct``, then

    * ``n_models``: distinct training seeds (the independent units),
    * ``n_draws``: Monte-Carlo draws per model, after the noise-free copies are removed (see
      below), so 1 at ``sigma_inference == 0``; if the models of a group have different
      numbers of draws (an incomplete run), the *minimum*,

    and the statistics, all in percent of test accuracy:

    * ``mean``: the mean of the per-model means, every model weighted equally (with equal
      draws per model, as the pipeline produces, this is the plain mean of all rows),
    * ``std``: standard deviation of all pooled model x draw values (``ddof=1``; NaN for a
      single value),
    * ``between_model_sd``: standard deviation of the per-model means (``ddof=1``; NaN for a
      single model),
    * ``within_model_sd``: pooled standard deviation of the draws about their own model's
      mean, ``sqrt(sum_k sum_i (x_ki - mean_k)^2 / sum_k (n_k - 1))`` (NaN when no model has
      two draws, e.g. at the noise-free level),
    * ``median``, ``q25``, ``q75`` (inter-quartile range), ``p12``, ``p88`` (12th / 88th
      percentiles, the band of the original study) of the pooled model x draw values; quantiles
      use linear interpolation,
    * ``ci95_low``, ``ci95_high``: 95% confidence interval of ``mean``, by ``interval``: a t
      interval from the models and draws (``"t"``, the default) or SPEC §4's two-stage
      (hierarchical) percentile bootstrap (``"bootstrap"``), see below; ``ci95_method`` names
      it, so a table says how its intervals were made.

    **Noise-free level counted once per model.** At ``sigma_inference == 0`` a model has one
    accuracy; tables written before the evaluation stored it once per draw. Rows of one model
    at ``sigma_inference == 0`` with *identical* accuracy are therefore counted once (distinct
    accuracies of a model there are all kept). Without this, ``n`` copies of ``M`` models
    would look like ``n * M`` independent samples and give a far too narrow interval.

    **Confidence interval.** Models are the independent units and the draws of one model are
    repeated measurements of it (SPEC §4); both intervals treat them so.

    ``interval="t"`` (:func:`_t_interval`): ``mean -/+ t(df) se``. With draws nested in models
    (or one evaluation per model, the noise-free level) ``se`` is the sd of the ``K`` model means
    over ``sqrt(K)`` and ``df = K - 1``: the t interval of a two-stage sample with the models as
    its units. With draws shared by the models (below) ``se^2`` is the crossed design's
    ``model_var / K + draw_var / n + residual_var / (K n)`` from the analysis of variance (as
    :func:`variance_components`), ``(MS_model + MS_draw - MS_residual) / (K n)``, and each mean
    square is scaled by the t quantile of its own degrees of freedom: the half-width is
    ``sqrt(t(K-1)^2 MS_model + t(n-1)^2 MS_draw - t((K-1)(n-1))^2 MS_residual) / sqrt(K n)``
    (Banerjee 1960), never below the draws' alone, ``t(n-1) sqrt(MS_draw / (K n))``
    (:func:`_crossed_half_width`). One t for the whole sum with Satterthwaite's (1946)
    pooled degrees of freedom (the rule until 2026-12-06) undercovered with 2-3 models: 88-93 %
    where models and chips both vary, against 94.5-99.3 % for every design of
    ``benchmarks/interval_coverage.py`` (2-5 models, 10-100 draws, 13 regimes).

    ``interval="bootstrap"`` (SPEC §4's decision): each of ``bootstrap_resamples`` resamples
    draws the group's ``K`` models with replacement, then for each drawn model resamples its
    own draws with replacement; the statistic is the mean over the drawn models of their
    resampled draw means, and the interval the 2.5th / 97.5th percentile of these statistics.
    This is the two-stage bootstrap for hierarchical data of Davison & Hinkley (1997),
    *Bootstrap Methods and their Application*, §3.8, with both stages resampled with
    replacement (see also Ren et al. 2010, "Nonparametric bootstrapping for hierarchical data",
    J. Appl. Stat. 37:1487). Unequal draw counts: each model keeps weight ``1/K`` whatever its
    number of draws (the target is the mean over models, and a model with more draws is not
    more independent).

    **Why t by default: few models.** A study trains 3-5 models per configuration (the demo 2-3,
    the paper configs 3-10). The percentile bootstrap then undercovers: its variance is
    ``(K-1)/K`` of the between-model part, and it has the normal's quantile, not the t's with
    ``K - 1`` degrees of freedom (Hesterberg 2015, "What teachers should know about the
    bootstrap", Am. Stat. 69:371, on the percentile interval's narrowness in small samples). In
    1,000 simulated studies per design (tests/test_summary.py asserts the pattern), nominal 95 %
    intervals covered the true mean, t / bootstrap: models and draws of equal sd, no draw effect,
    20 draws: 94.8 / 79.2 % with 3 models, 94.0 / 82.3 % with 5, 94.8 / 90.2 % with 8, 93.7 /
    93.0 % with 30 (95.0 / 81.3 % with 3 models on shared draws); models dominating (sds 1, 0.3,
    3 points), 100 shared draws: 95.4 / 75.3 % with 2 models, 95.7 / 84.8 % with 3, 94.4 /
    87.9 % with 5 (the pooled t of that time); with each mean square's own t (4,000 studies,
    ``benchmarks/interval_coverage.py``), models dominating 95.8, 95.4 and 95.2 % with 2, 3 and
    5 models, the chips dominating (the demo's vanilla at 20 %: sds 0.4, 3.2, 3.4) 98.8, 97.7 and
    96.2 %, both (sds 1, 2, 2) 96.8, 96.4 and 95.7 %, all with 100 shared draws: conservative
    where the chips weigh in, the price of the models' few degrees of freedom. The honest
    interval with 3 models is about twice as wide as the bootstrap's wherever the models' own
    spread dominates, with 2 models (1 degree of freedom) 4.5 times the normal width. Accuracies
    are bounded, so the t interval (symmetric) is a normal approximation at the extremes; the
    bootstrap's percentiles follow skew but not the t.

    **Draws shared by the models (crossed).** The pipeline evaluates with common random
    numbers: draw ``d`` is the same chip for every model (one ``eval_seed``, every model has
    every draw index). A chip that is bad for one model is then bad for all of them (plausibly:
    the same noise pattern on the output layer shifts a class's logit in every network): a
    two-way analysis of variance of the demo's MNIST tables (models x draws) gives the draw
    effect common to the models an sd of 3.2 points for vanilla at 20 % noise, against 0.4
    between models and 3.4 left per model and draw. The draws are crossed with the models, not nested in them, and
    the mean's variance is ``model_var / K + draw_var / n + residual_var / (K n)``: its draw
    part shrinks with more draws only, never with more models. Where a group shows such draws
    (:func:`_shares_draws`), the second stage draws one set of draw indices per resample for
    all the drawn models: the pigeonhole bootstrap for crossed random effects (Owen 2007, "The
    pigeonhole bootstrap", Ann. Appl. Stat. 1:386), whose variance is, in expectation,
    ``model_var / K + draw_var / n + 3 residual_var / (K n)`` (conservative in the residual
    term only); the t interval uses the two-way analysis of variance of that matrix, and for
    nested draws that of the model means. Resampling each model's draws on its own keeps only
    ``1/K`` of the draw term:
    in simulated studies of 30 models x 20 draws (sds 1, 3, 3 points) that interval covered the
    true mean in 55 % of studies, the pigeonhole one in 93.5 %; with 3-5 models and 100 draws,
    as in the demo, 85 % against 95 %; without a draw effect both about 93 %. On the demo's
    MNIST tables the shared-draw intervals are 5 % narrower to 42 % wider (median 18 %) than the
    nested ones. A table without ``draw`` and ``eval_seed``, or whose models do not all have
    the same draws, is resampled nested (nothing says its draws are the same chips).

    Known behaviour of the bootstrap, both measured in tests/test_summary.py:

    * resampling the second stage too counts the draw-to-draw variance about twice, so the
      interval is conservative when draw noise dominates: with no between-model spread at
      all it is ``sqrt((K-1)/K + (n-1)/n)`` (up to ~1.4) times the i.i.d. width (shared draws:
      ``sqrt((K-1)/K + (n-1)/n + (K-1)(n-1)/(K n))``, up to ~1.7); when the models differ
      clearly the extra term ``within_var / (K * n)`` is small (Ren et al. recommend
      resampling only the top level for this reason);
    * with few models it is too narrow (above): read its intervals from fewer than ~8 models
      as indicative only.

    With a single model both intervals reduce to its draws (the bootstrap resamples them, the t
    interval has ``n - 1`` degrees of freedom), so the interval would describe only the noise
    draws of that one trained network, not the spread over training seeds that the mean over
    models is about. Groups with fewer than ``min_models_for_ci``
    models (default 2) therefore get ``NaN`` for ``ci95_low`` / ``ci95_high``; pass
    ``min_models_for_ci=1`` to get that draws-only interval anyway (a single value then gives
    the degenerate interval ``[value, value]``).

    ``bootstrap_resamples`` and ``seed`` are the bootstrap's; the t interval draws nothing.
    The bootstrap is vectorised (index arrays of shape ``(resamples, K, draws)``, in chunks of
    bounded size) and deterministic: each group draws from its own stream seeded by ``seed``
    and the group's key, so a group's interval does not depend on the other groups.

    Rows are sorted by the group keys. Sigma values are rounded to 9 decimals before grouping
    so that floating-point noise (``0.1 + 0.2``) does not split a group.

    Raises ``ValueError`` for missing columns, an empty table, missing group keys or seeds, or
    accuracies that are missing or outside ``[0, 1]``.
    """
    _check_interval_arguments(interval, bootstrap_resamples, min_models_for_ci)
    keys = tuple(keys)
    data = _prepare(table, keys, tuple(c for c in DRAW_COLUMNS if c in table.columns))

    rows = []
    for key, group in data.groupby(list(keys), sort=True, observed=True, dropna=False):
        values = group["accuracy"].to_numpy(dtype=float)
        shared = _shares_draws(group)
        matrix, counts = _model_matrix(group, by_draw=shared)
        n_models = int(counts.size)
        model_means = np.nanmean(matrix, axis=1)
        within_dof = int((counts - 1).sum())
        within_ss = float(np.nansum((matrix - model_means[:, None]) ** 2))
        q25, q75, p12, p88 = np.quantile(values, [0.25, 0.75, 0.12, 0.88])
        if n_models >= int(min_models_for_ci):
            ci_low, ci_high = _mean_interval(matrix, counts, interval=interval, shared_draws=shared,
                                             resamples=int(bootstrap_resamples), seed=_group_seed(seed, key, keys),
                                             bounds=(0.0, 100.0))
        else:
            ci_low = ci_high = float("nan")
        row = dict(zip(keys, key))
        row.update(
            n_models=n_models,
            n_draws=int(counts.min()),
            mean=float(model_means.mean()),
            std=float(values.std(ddof=1)) if values.size > 1 else float("nan"),
            between_model_sd=float(model_means.std(ddof=1)) if n_models > 1 else float("nan"),
            within_model_sd=float(np.sqrt(within_ss / within_dof)) if within_dof > 0 else float("nan"),
            median=float(np.median(values)),
            q25=float(q25),
            q75=float(q75),
            p12=float(p12),
            p88=float(p88),
            ci95_low=ci_low,
            ci95_high=ci_high,
            ci95_method=interval,
        )
        rows.append(row)

    out = pd.DataFrame(rows)
    derived = ()
    if "sigma_inference" in keys:
        out["noise_level_pct"] = _pct(out["sigma_inference"])
        derived = ("noise_level_pct",)
    out["sigma_train_pct"] = _pct(out["sigma_train"])
    out = out.loc[:, list(keys + derived + SUMMARY_COLUMNS[len(GROUP_KEYS) + 1:])]
    return out.sort_values(list(keys), kind="mergesort", na_position="first").reset_index(drop=True)


def device_keys(table: pd.DataFrame) -> tuple[str, ...]:
    """Group keys of a device cross-evaluation table: the trained configuration, the device and
    the condition columns the table has (NaN where a device lacks a key)."""
    return DEVICE_GROUP_KEYS + tuple(c for c in CONDITION_COLUMNS if c in table.columns)


def per_model_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per model: per (group keys of :data:`GROUP_KEYS`) x ``seed`` of the tidy table,
    the accuracy statistics of that model's noise draws, in percent.

    Columns, in order: :data:`PER_MODEL_COLUMNS`, i.e. the group keys, ``seed``,
    ``noise_level_pct``, ``sigma_train_pct``, ``n_draws`` (draws of this model; identical
    copies at ``sigma_inference == 0`` count once, as in :func:`summarise`), ``mean``, ``std``
    (``ddof=1``; NaN for one draw), ``median``, ``min``, ``max``. Rows are sorted by the group
    keys, then ``seed``. Validation as in :func:`summarise`.
    """
    data = _prepare(table)
    keys = list(GROUP_KEYS) + ["seed"]
    grouped = data.groupby(keys, sort=True, observed=True, dropna=False)["accuracy"]
    out = grouped.agg(
        n_draws="size", mean="mean", std="std", median="median", min="min", max="max"
    ).reset_index()
    out["n_draws"] = out["n_draws"].astype(int)
    out["noise_level_pct"] = _pct(out["sigma_inference"])
    out["sigma_train_pct"] = _pct(out["sigma_train"])
    out = out.loc[:, list(PER_MODEL_COLUMNS)]
    return out.sort_values(keys, kind="mergesort").reset_index(drop=True)


def _pairs(table: pd.DataFrame, baseline: str, keys: tuple[str, ...]) -> pd.DataFrame:
    """The rows of ``table`` (prepared) that have a ``baseline`` row on the same condition, seed
    and draw (and ``eval_seed`` where present), with ``baseline_accuracy`` and ``difference``
    (points) beside their own accuracy; the baseline's own rows are left out (see
    :func:`paired_differences`)."""
    carry = ("draw",) + (("eval_seed",) if "eval_seed" in table.columns else ())
    data = _prepare(table, keys, carry)
    configuration = [k for k in keys if k in CONFIGURATION_KEYS]
    condition = [k for k in keys if k not in CONFIGURATION_KEYS]
    is_baseline = data["method"] == baseline
    base = data.loc[is_baseline]
    configurations = base.loc[:, configuration].drop_duplicates()
    if len(configurations) > 1:
        raise ValueError(
            f"baseline method {baseline!r} has {len(configurations)} trained configurations "
            f"({configurations.to_dict('records')}); a baseline must be one configuration")
    pair_keys = condition + ["seed", *carry]
    pairs = data.loc[~is_baseline].merge(
        base.loc[:, pair_keys + ["accuracy"]].rename(columns={"accuracy": "baseline_accuracy"}),
        on=pair_keys, how="inner")
    pairs["difference"] = pairs["accuracy"] - pairs["baseline_accuracy"]
    return pairs


def _empty(columns: tuple[str, ...], keys: tuple[str, ...]) -> pd.DataFrame:
    """No rows, with the columns' types as they are when there are rows."""
    text = set(keys) - set(SETTING_COLUMNS) - set(CONDITION_COLUMNS) | {"baseline", "ci95_method"}
    whole = {"levels", "n_models", "n_draws", "models", "draws"}
    return pd.DataFrame({c: pd.Series(dtype=object if c in text else bool if c == "crossed" else
                                      int if c in whole else float) for c in columns})


def paired_differences(
    table: pd.DataFrame,
    *,
    baseline: str = "vanilla",
    interval: str = "t",
    bootstrap_resamples: int = 1000,
    seed: int = 0,
    min_models_for_ci: int = 2,
    keys: tuple[str, ...] = GROUP_KEYS,
) -> pd.DataFrame:
    """Every trained configuration against ``baseline``'s, paired by model seed and device draw.

    The evaluation uses common random numbers (SPEC §4): draw ``d`` is the same device, the
    same standard normals, for every model, method and level, and the methods of a task train
    the same seeds (``mat`` fine-tunes the baseline model of its own seed). So a configuration's
    accuracy on draw ``d`` of seed ``k`` and the baseline's on the same draw of the same seed
    are a pair, and the difference of a pair is free of most of the draw-to-draw spread both
    share: the classic use of common random numbers to compare two systems (Law, *Simulation
    Modeling and Analysis*, 5th ed., 2015, §11.2). On the demo's MNIST models the paired
    differences' sd is 1.3-7x smaller than the two accuracies' unpaired sd, most at high noise.

    Pairs are the rows of the tidy table (``seed``, ``draw``, and ``eval_seed`` where present)
    that both have under one condition (the group keys other than :data:`CONFIGURATION_KEYS`:
    task, data, noise model, reference, level; a device and its conditions with
    ``keys=device_keys(table)``). Seeds or draws only one side has are left out; a
    configuration with no pair gets no row, and so does the baseline itself. The noise-free
    level pairs each model's one evaluation.

    One row per configuration x condition (columns :data:`PAIRED_COLUMNS` for the study's
    keys), in percent and percentage points: ``n_models`` (paired seeds), ``n_draws`` (pairs per
    seed, the minimum), ``mean`` and ``baseline_mean`` (the two sides' means over the paired
    models, each model weighted equally), ``difference`` (their difference: the mean over
    models of each model's mean paired difference), ``median_difference`` (of the pooled
    pairs), ``difference_sd`` (sd of the pooled pairs), ``between_model_sd`` (of the models'
    mean differences), ``ci95_low`` / ``ci95_high`` (:func:`summarise`'s interval, by
    ``interval``, of the mean of the differences: the models as the units, the draws shared
    where they are, see below; NaN below ``min_models_for_ci`` paired models; the same
    caveats), ``share_better`` / ``share_worse`` (fractions of the pooled pairs where the
    configuration is more / less accurate; ties are the rest). A chip can favour one
    configuration over the other for every seed (on the demo's MNIST, MAT's gain at 20 % noise
    varies from chip to chip with an sd of 2.2 points common to the seeds): where the paired
    draws are shared by the models, the interval counts that draw term (the t interval) or
    resamples the draws together (the bootstrap), as :func:`summarise` does.

    Raises ``ValueError`` for the checks of :func:`summarise`, a table without ``draw``, or a
    baseline trained in several configurations (pick one method that sweeps no setting).
    """
    _check_interval_arguments(interval, bootstrap_resamples, min_models_for_ci)
    keys = tuple(keys)
    pairs = _pairs(table, baseline, keys)
    derived = ("noise_level_pct",) if "sigma_inference" in keys else ()
    columns = keys + ("baseline",) + derived + ("sigma_train_pct", "n_models", "n_draws") + PAIRED_STAT_COLUMNS
    if pairs.empty:
        return _empty(columns, keys)

    rows = []
    for key, group in pairs.groupby(list(keys), sort=True, observed=True, dropna=False):
        shared = _shares_draws(group)
        differences, counts = _model_matrix(group, "difference", by_draw=shared)
        method_means = np.nanmean(_model_matrix(group)[0], axis=1)
        baseline_means = np.nanmean(_model_matrix(group, "baseline_accuracy")[0], axis=1)
        model_differences = np.nanmean(differences, axis=1)
        values = group["difference"].to_numpy(dtype=float)
        n_models = int(counts.size)
        if n_models >= int(min_models_for_ci):
            # a stream of its own: the key and the baseline, so it is not the summary's stream
            stream = _group_seed(seed, key + (f"paired with {baseline}",), keys + ("baseline",))
            ci_low, ci_high = _mean_interval(differences, counts, interval=interval, shared_draws=shared,
                                             resamples=int(bootstrap_resamples), seed=stream, bounds=(-100.0, 100.0))
        else:
            ci_low = ci_high = float("nan")
        row = dict(zip(keys, key))
        row.update(
            baseline=baseline,
            n_models=n_models,
            n_draws=int(counts.min()),
            mean=float(method_means.mean()),
            baseline_mean=float(baseline_means.mean()),
            difference=float(model_differences.mean()),
            median_difference=float(np.median(values)),
            difference_sd=float(values.std(ddof=1)) if values.size > 1 else float("nan"),
            between_model_sd=float(model_differences.std(ddof=1)) if n_models > 1 else float("nan"),
            ci95_low=ci_low,
            ci95_high=ci_high,
            ci95_method=interval,
            share_better=float((values > 0).mean()),
            share_worse=float((values < 0).mean()),
        )
        rows.append(row)
    out = pd.DataFrame(rows)
    if derived:
        out["noise_level_pct"] = _pct(out["sigma_inference"])
    out["sigma_train_pct"] = _pct(out["sigma_train"])
    out = out.loc[:, list(columns)]
    return out.sort_values(list(keys), kind="mergesort", na_position="first").reset_index(drop=True)


#: Columns of :func:`variance_components` after the group keys (sds in percentage points).
VARIANCE_COLUMNS: tuple[str, ...] = ("n_models", "n_draws", "crossed", "model_sd", "draw_sd", "residual_sd")

#: Columns :func:`precision_plan` adds: a planned design and its predicted precision (points).
PLAN_COLUMNS: tuple[str, ...] = ("models", "draws", "se", "t_factor", "ci95_halfwidth")


def _variance_row(group: pd.DataFrame, column: str) -> dict[str, object]:
    """The variance components of one group's ``column`` (see :func:`variance_components`)."""
    shared = _shares_draws(group)
    matrix, counts = _model_matrix(group, column, by_draw=shared)
    n_models, n_draws = int(counts.size), int(counts.min())
    row: dict[str, object] = dict(n_models=n_models, n_draws=n_draws, crossed=False,
                                  model_sd=float("nan"), draw_sd=float("nan"), residual_sd=float("nan"))
    if shared and n_models > 1 and n_draws > 1:
        # two-way random effects without replication: components from the expected mean
        # squares; a negative estimate is set to 0
        ms_model, ms_draw, ms_residual = _mean_squares(matrix)
        row.update(crossed=True, residual_sd=float(np.sqrt(ms_residual)),
                   model_sd=float(np.sqrt(max(0.0, (ms_model - ms_residual) / n_draws))),
                   draw_sd=float(np.sqrt(max(0.0, (ms_draw - ms_residual) / n_models))))
        return row
    # draws nested in models (or a single model / single evaluations): one-way random effects
    model_means = np.nanmean(matrix, axis=1)
    within_dof = int((counts - 1).sum())
    within_var = float(np.nansum((matrix - model_means[:, None]) ** 2)) / within_dof if within_dof > 0 else float("nan")
    row["residual_sd"] = float(np.sqrt(within_var))
    if n_models > 1:
        model_var = float(model_means.var(ddof=1))
        if within_dof > 0:  # the part of the models' spread their own draws do not explain
            model_var = max(0.0, model_var - within_var * float(np.mean(1.0 / counts)))
        row["model_sd"] = float(np.sqrt(model_var))
    return row


def variance_components(table: pd.DataFrame, *, keys: tuple[str, ...] = GROUP_KEYS,
                        baseline: str | None = None) -> pd.DataFrame:
    """How the spread of a group's accuracies (or, with ``baseline``, of its paired differences
    from the baseline, as :func:`paired_differences` pairs them) divides between models and
    draws, in percentage points: one row per group of ``keys`` (and ``baseline``), columns
    :data:`VARIANCE_COLUMNS` after the keys (and ``noise_level_pct``, ``sigma_train_pct``).

    Where the group's models share their draws (:func:`_shares_draws`: the pipeline's common
    random numbers), ``crossed`` is True and the model x draw matrix is split by a two-way
    random-effects analysis of variance: ``model_sd`` (the models' own effect), ``draw_sd``
    (the effect of a draw, the same chip, common to every model) and ``residual_sd`` (what is
    left per model and draw). Otherwise the draws are each model's own: ``draw_sd`` is NaN
    (not separable), ``residual_sd`` the pooled within-model sd and ``model_sd`` the models'
    spread less their draws' share (one-way analysis); with one model ``model_sd`` is NaN, with
    one evaluation per model (the noise-free level) ``residual_sd`` is NaN and ``model_sd`` the
    models' sd. Negative estimates are set to 0. With 2-3 models the model term is an estimate
    from 1-2 degrees of freedom: read it as an order of magnitude.
    """
    keys = tuple(keys)
    if baseline is None:
        data, column, extra = _prepare(table, keys, tuple(c for c in DRAW_COLUMNS if c in table.columns)), "accuracy", ()
    else:
        data, column, extra = _pairs(table, baseline, keys), "difference", ("baseline",)
    derived = ("noise_level_pct",) if "sigma_inference" in keys else ()
    columns = keys + extra + derived + ("sigma_train_pct",) + VARIANCE_COLUMNS
    if data.empty:
        return _empty(columns, keys)
    rows = [{**dict(zip(keys, key)), **_variance_row(group, column)}
            for key, group in data.groupby(list(keys), sort=True, observed=True, dropna=False)]
    out = pd.DataFrame(rows)
    if baseline is not None:
        out["baseline"] = baseline
    if derived:
        out["noise_level_pct"] = _pct(out["sigma_inference"])
    out["sigma_train_pct"] = _pct(out["sigma_train"])
    return out.loc[:, list(columns)].sort_values(list(keys), kind="mergesort", na_position="first").reset_index(drop=True)


def precision_plan(table: pd.DataFrame, *, models: Sequence[int], draws: Sequence[int],
                   keys: tuple[str, ...] = GROUP_KEYS, baseline: str | None = None,
                   level: float = 0.95) -> pd.DataFrame:
    """The standard error of each group's mean (or mean paired difference, with ``baseline``)
    that a study of ``models`` trained models x ``draws`` draws per model would have, predicted
    from the variance components of ``table`` (:func:`variance_components`), and the half-width
    of the t interval :func:`summarise` would then report: one row per group and planned design,
    columns :data:`PLAN_COLUMNS` after the components.

    ``se = sqrt(model_sd^2 / models + draw_sd^2 / draws + residual_sd^2 / (models draws))``:
    the variance of the mean of a balanced crossed design (every model on the same draws, as
    the pipeline evaluates), where the draw term shrinks with more draws only. For groups
    whose draws were nested the draw term is 0 (each model its own draws); a component that is
    NaN (not estimable: one model, or single evaluations) is left out. ``ci95_halfwidth`` (at
    ``level``) is the half-width of the t interval (:func:`_t_interval`) at the design's expected
    mean squares, and ``t_factor`` that half-width in standard errors: nested, ``t(models - 1)``;
    crossed, between the models' ``t(models - 1)`` and the draws' ``t(draws - 1)`` as their
    terms weigh (:func:`_crossed_half_width`). With 3 models and a model term that dominates,
    4.3 / 1.96 = 2.2 times the normal half-width, which no number of draws buys back. One
    planned model has no interval of a mean over models: NaN.
    """
    grid = [(int(m), int(n)) for m in models for n in draws]
    if not grid or any(m < 1 or n < 1 for m, n in grid):
        raise ValueError(f"models and draws must be non-empty lists of positive counts, got {list(models)} and {list(draws)}")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    components = variance_components(table, keys=keys, baseline=baseline)
    design = pd.DataFrame(grid, columns=["models", "draws"])
    plan = components.merge(design, how="cross")
    model_var, draw_var, residual_var = (np.nan_to_num(plan[sd].to_numpy(dtype=float) ** 2, nan=0.0)
                                         for sd in ("model_sd", "draw_sd", "residual_sd"))
    n_models, n_draws = plan["models"].to_numpy(dtype=float), plan["draws"].to_numpy(dtype=float)
    plan["se"] = np.sqrt(model_var / n_models + draw_var / n_draws + residual_var / (n_models * n_draws))
    halves = []
    for crossed, m, n, model, draw, residual in zip(plan["crossed"], n_models, n_draws, model_var, draw_var,
                                                   residual_var):
        if m < 2:
            halves.append(float("nan"))
            continue
        if crossed and n > 1:  # the interval's mean squares at their expectations
            halves.append(_crossed_half_width(residual + n * model, residual + m * draw, residual, int(m), int(n),
                                              float(level)))
        else:
            halves.append(_half_width([(model / m + draw / n + residual / (m * n), m - 1.0)], float(level)))
    plan["ci95_halfwidth"] = halves
    plan["t_factor"] = plan["ci95_halfwidth"] / plan["se"]
    plan = plan.loc[:, [c for c in plan.columns if c not in PLAN_COLUMNS] + list(PLAN_COLUMNS)]
    return plan


def plan_text(plan: pd.DataFrame) -> str:
    """:func:`precision_plan`'s table for reading: one line per group with its variance
    components and, per planned design, the predicted standard error (points) as a column
    ``se <models> x <draws>``; columns with one value in every row are left out."""
    if plan.empty:
        return "(no groups)"
    designs = list(dict.fromkeys(zip(plan["models"], plan["draws"])))
    ident = [c for c in plan.columns if c not in PLAN_COLUMNS]
    wide = plan.set_index(ident + ["models", "draws"])["se"].unstack(["models", "draws"]).loc[:, designs]
    wide.columns = [f"se {m} x {n}" for m, n in designs]
    wide = wide.reset_index()
    redundant = {"sigma_inference": "noise_level_pct", "sigma_train": "sigma_train_pct"}
    shown = [c for c in ident if (c in VARIANCE_COLUMNS or wide[c].nunique(dropna=False) > 1)
             and redundant.get(c) not in ident]
    return wide.loc[:, shown + list(wide.columns[len(ident):])].round(2).to_string(index=False)


#: what places a row on a noise axis: the published numbers are the Gaussian's, at R(W) = 2 max|W|
#: (MNIST, ECG) or max|W| (CIFAR: the original's axis, SPEC §1), and no reference for another noise
NOISE_AXIS = ("noise_model", "reference")


def published_numbers(task: str | None = None, summary: pd.DataFrame | None = None) -> pd.DataFrame:
    """The published accuracies (percent) shipped as package data ``published.csv``.

    Columns: :data:`PUBLISHED_COLUMNS`. ``statistic`` is ``mean`` or ``median`` (ECG);
    ``noise_model`` and ``reference`` the noise axis they were measured on (:data:`NOISE_AXIS`).
    With ``task`` given, only that task's rows (an empty frame for a task the study did not
    report). With ``summary`` given, only the rows on a noise axis of its rows (of ``task``):
    a task evaluated under another noise model or reference (R(W)) gets none.
    """
    text = (resources.files("memristor_mat.reporting") / "published.csv").read_text(encoding="utf-8")
    df = pd.read_csv(
        io.StringIO(text),
        dtype={
            "task": str,
            "method": str,
            "sigma_train": float,
            "levels": int,
            "noise_sd": float,
            "noise_model": str,
            "reference": str,
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
    if summary is not None:
        _check_columns(summary, NOISE_AXIS, "summary")
        rows = summary if task is None or "task" not in summary.columns else summary[summary["task"] == task]
        axes = rows.loc[:, list(NOISE_AXIS)].astype(str).drop_duplicates()
        df = df.merge(axes, on=list(NOISE_AXIS), how="inner")
    return df.reset_index(drop=True)


def compare_with_published(summary: pd.DataFrame, task: str) -> pd.DataFrame:
    """Our accuracy beside the published one, for ``task``.

    One row per summary row of ``task`` whose (method, settings, noise model, reference,
    sigma_inference) the published study reports (an inner join: configurations only one side
    has are left out; so is every row of another noise axis than the published one's).
    Columns: task, method, sigma_train, levels, noise_sd, sigma_inference, noise_level_pct, dataset, arch,
    noise_model, reference, n_models, n_draws, ``mean``, ``median`` (ours, percent),
    ``statistic`` (the published statistic: mean or median), ``ours`` (our value of that
    statistic), ``published``, ``difference`` (ours - published, percentage points), ``note``.
    """
    needed = (
        "task", "method", "sigma_train", *NOISE_AXIS, "sigma_inference", "mean", "median",
        "n_models", "n_draws",
    )
    _check_columns(summary, needed, "summary")
    ours = summary[summary["task"] == task].copy()
    ours = ours.assign(**{name: value for name, value in unapplied_settings().items() if name not in ours.columns})
    pub = published_numbers(task).rename(columns={"accuracy_pct": "published"})
    keys = [*SETTING_COLUMNS, "sigma_inference"]
    for frame in (ours, pub):
        for column in keys:
            frame[f"_{column}"] = frame[column].astype(float).round(_SIGMA_DECIMALS)
    merged = ours.merge(
        pub.drop(columns=["task", *keys]),
        on=["method", *NOISE_AXIS, *(f"_{column}" for column in keys)],
        how="inner",
    )
    merged["ours"] = np.where(merged["statistic"] == "median", merged["median"], merged["mean"])
    merged["difference"] = merged["ours"] - merged["published"]
    merged["noise_level_pct"] = _pct(merged["sigma_inference"])
    columns = ["task", "method", *SETTING_COLUMNS, "sigma_inference", "noise_level_pct"]
    columns += [c for c in ("dataset", "arch", "noise_model", "reference") if c in merged.columns]
    columns += [
        "n_models", "n_draws", "mean", "median", "statistic", "ours", "published",
        "difference", "note",
    ]
    sort_keys = ["method", *SETTING_COLUMNS]
    sort_keys += [c for c in ("dataset", "arch", "noise_model", "reference") if c in merged]
    sort_keys += ["sigma_inference"]
    merged = merged.sort_values(sort_keys, kind="mergesort")
    return merged.loc[:, columns].reset_index(drop=True)
