"""Coverage of the summaries' 95 % t interval on simulated studies: prints figures, asserts nothing.

Each design is a crossed random-effects study, ``accuracy = truth + model effect + chip effect
(shared by every model: the pipeline's common random numbers) + residual``, with K models and n
draws and the three standard deviations in points. For every design it prints the share of
``--studies`` simulated studies whose interval covers the truth, for

* ``pooled``: one t quantile for the whole variance ``(MS_model + MS_draw - MS_residual) / (K n)``
  with Satterthwaite's degrees of freedom (the summaries' rule until 2026-12-06, written out here
  as the reference), and
* ``per-term``: the library's interval (:func:`memristor_mat.reporting.summary._t_interval`):
  each mean square's term scaled by the t quantile of its own degrees of freedom,
  ``sqrt(t(K-1)^2 MS_model + t(n-1)^2 MS_draw - t((K-1)(n-1))^2 MS_residual) / sqrt(K n)``
  (Banerjee 1960), the last two dropped where ``MS_draw <= MS_residual``, and never below the
  draws' alone, ``t(n-1) sqrt(MS_draw / (K n))``.

and the per-term interval's width: ``/pooled``, the median of its ratio to the pooled interval's,
and ``/normal``, the median and the 99th percentile of its ratio to the width the true standard
error would give, ``2 x 1.96 x sqrt(model_sd^2 / K + draw_sd^2 / n + residual_sd^2 / (K n))``
(the pooled interval can be near 0 wide where models look alike, so no ratio to it bounds a
width).

    python benchmarks/interval_coverage.py [--studies 4000] [--seed 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.special import stdtrit

from memristor_mat.reporting.summary import _mean_squares, _t_interval

#: (models, draws, (model sd, draw sd, residual sd) in points): 2, 3 and 5 models, the designs the
#: demo's and the paper configs' tables have, over the regimes their variance components span
#: (vanilla MNIST at 20 %: 0.4, 3.2, 3.4; models dominating; both; no chip effect; no model effect;
#: a chip effect near 0, where MS_draw barely passes MS_residual in many studies)
SDS: tuple[tuple[float, float, float], ...] = (
    (1.0, 0.3, 3.0), (0.4, 3.2, 3.4), (1.0, 2.0, 2.0), (0.5, 2.0, 2.0), (0.3, 1.0, 1.5),
    (1.0, 0.0, 2.0), (0.0, 2.0, 2.0), (1.0, 1.0, 0.2), (0.2, 1.0, 0.2), (1.0, 0.3, 0.3),
    (0.3, 0.3, 3.0), (0.5, 0.1, 0.5), (0.3, 0.05, 0.5),
)
DESIGNS: tuple[tuple[int, int], ...] = ((2, 10), (2, 20), (2, 100), (3, 10), (3, 20), (3, 100), (5, 10), (5, 20),
                                        (5, 100))


def pooled_half_width(matrix: np.ndarray) -> float:
    """The pooled rule's half-width: Satterthwaite's degrees of freedom for the whole variance,
    the draw term dropped where ``MS_draw <= MS_residual`` (Satterthwaite 1946)."""
    n_models, n_draws = matrix.shape
    ms_model, ms_draw, ms_residual = _mean_squares(matrix)
    cells = n_models * n_draws
    terms = [(ms_model / cells, n_models - 1)]
    if ms_draw > ms_residual:
        terms += [(ms_draw / cells, n_draws - 1), (-ms_residual / cells, (n_models - 1) * (n_draws - 1))]
    variance = sum(term for term, _ in terms)
    dof = variance ** 2 / sum(term ** 2 / d for term, d in terms)
    return float(stdtrit(dof, 0.975) * np.sqrt(variance))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    print(f"{args.studies} simulated studies per design; coverage of the truth (%), then the per-term width's "
          "median ratio to the pooled and (median, 99th percentile) to the true standard error's normal interval")
    print(f"{'K':>2} {'n':>4}  {'sds (model, draw, residual)':<28} {'pooled':>7} {'per-term':>9} {'/pooled':>8} "
          f"{'/normal':>12}")
    worst = {"pooled": 100.0, "per-term": 100.0}
    widest = 0.0
    for n_models, n_draws in DESIGNS:
        counts = np.full(n_models, n_draws)
        for model_sd, draw_sd, residual_sd in SDS:
            covered = {"pooled": 0, "per-term": 0}
            ratios, widths = [], []
            normal = 2 * 1.96 * np.sqrt(model_sd ** 2 / n_models + draw_sd ** 2 / n_draws
                                        + residual_sd ** 2 / (n_models * n_draws))
            for _ in range(args.studies):
                matrix = (model_sd * rng.standard_normal((n_models, 1)) + draw_sd * rng.standard_normal((1, n_draws))
                          + residual_sd * rng.standard_normal((n_models, n_draws)))
                mean = float(matrix.mean())
                pooled = pooled_half_width(matrix)
                low, high = _t_interval(matrix, counts, shared_draws=True)
                covered["pooled"] += abs(mean) <= pooled
                covered["per-term"] += low <= 0.0 <= high
                ratios.append((high - low) / (2 * pooled))
                widths.append((high - low) / normal)
            shares = {rule: 100.0 * hits / args.studies for rule, hits in covered.items()}
            for rule, share in shares.items():
                worst[rule] = min(worst[rule], share)
            median, p99 = np.quantile(widths, [0.5, 0.99])
            widest = max(widest, float(p99))
            sds = f"({model_sd:g}, {draw_sd:g}, {residual_sd:g})"
            print(f"{n_models:>2} {n_draws:>4}  {sds:<28} {shares['pooled']:>6.1f}% {shares['per-term']:>8.1f}% "
                  f"{float(np.median(ratios)):>8.2f} {median:>5.2f}, {p99:>5.2f}", flush=True)
    print(f"lowest coverage: pooled {worst['pooled']:.1f} %, per-term {worst['per-term']:.1f} %; "
          f"largest 99th percentile of the per-term width: {widest:.1f} x the normal interval's "
          f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
