"""Benchmark of the device models of SPEC §8: prints figures, asserts nothing.

1. "PCM model vs the published formulas": for g = G / g_max in (0.1, 0.5, 1) and t in (1 s, 1 h,
   1 day, 1 year), the closed-form quantities of Nandakumar et al. 2019 (programming sd in uS,
   the drift exponent's mu_nu and sigma_nu, the expected drift factor E[((t + t0) / t0)^-nu] by
   numerical integration over nu's folded normal, the relative read-noise sd Q_s S(t)), and next
   to them what the implementation samples over --devices devices: the programming sd, the mean
   drift factor G_d / G_p, and the mean and sd of G_t / g_max against their expectations (also by
   numerical integration: E[G_t] = E[G_p] E[f], Var from E[G_p^2 (1 + Q_s(G_p)^2 S^2)] E[f^2];
   only the final clamp at 0 is left out, which these g never reach in practice). Printed as the
   markdown table of the README.
2. The cost of one Monte-Carlo draw on the MNIST MLP's weights (784x128 + 128x10, no bias) per
   noise model: drawing the standard normals + applying the model, median of --repeats, one
   thread, as a ratio to the Gaussian draw measured in the same run; once one draw per call and
   once per draw of a chunk of --chunk draws stacked in one call (the evaluation's way, where
   what depends only on the clean weights is computed once per chunk).

    python benchmarks/device_models.py [--devices 100000] [--repeats 50]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch

from memristor_mat.models.mlp import MLP
from memristor_mat.noise import make_noise_model
from memristor_mat.noise.pcm import PCMNoise

TIMES = {"1 s": 1.0, "1 h": 3600.0, "1 day": 86400.0, "1 year": 365 * 86400.0}
G_MAX = 25.0
# the published constants (SPEC §8; Nandakumar et al. 2019), written here again rather than
# imported from the implementation, so that the formula column is independent of it
SIGMA_P_COEFFICIENTS = (0.26348, 1.9650, -1.1731)  # uS
T0, T_READ = 20.0, 250e-9  # s


def read_noise_time_factor(t: float) -> float:
    """sqrt(ln((t + t0 + t_r) / (2 t_r))), the 1/f read noise's growth with time."""
    return math.sqrt(math.log((t + T0 + T_READ) / (2 * T_READ)))


def gauss_grid(mean: float, sd: float, points: int = 20001, width: float = 12.0):
    """Points and trapezoid weights integrating against N(mean, sd^2)."""
    x = np.linspace(mean - width * sd, mean + width * sd, points)
    density = np.exp(-0.5 * ((x - mean) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
    weights = np.full(points, x[1] - x[0]) * density
    weights[[0, -1]] /= 2
    return x, weights


def closed_form(g: float, t: float) -> dict[str, float]:
    c0, c1, c2 = SIGMA_P_COEFFICIENTS
    sigma_p = c0 + c1 * g + c2 * g * g  # uS
    log_g = math.log(max(g, 1e-7))
    mu = min(max(-0.0155 * log_g + 0.0244, 0.049), 0.1)
    sigma_nu = min(max(-0.0125 * log_g - 0.0059, 0.008), 0.045)
    L = math.log((t + T0) / T0)
    x, w = gauss_grid(mu, sigma_nu)  # nu = |x|
    drift = float(np.sum(w * np.exp(-L * np.abs(x))))
    drift_sq = float(np.sum(w * np.exp(-2 * L * np.abs(x))))
    s = read_noise_time_factor(t)
    q = min(0.0088 / max(g, 1e-3) ** 0.65, 0.2)
    gp, wp = gauss_grid(g, sigma_p / G_MAX)
    gp = np.maximum(gp, 0)  # the programming clamp
    q_p = np.minimum(0.0088 / np.maximum(gp, 1e-3) ** 0.65, 0.2)
    mean_gp = float(np.sum(wp * gp))
    second = float(np.sum(wp * gp**2 * (1 + (q_p * s) ** 2)))
    mean = mean_gp * drift
    return {"sigma_p": sigma_p, "mu": mu, "sigma_nu": sigma_nu, "drift": drift, "read": q * s,
            "mean": mean, "sd": math.sqrt(second * drift_sq - mean**2)}


def sampled(g: float, t: float, devices: int, seed: int = 0) -> dict[str, float]:
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(3, devices, generator=generator, dtype=torch.float64)
    target = torch.full((devices,), g, dtype=torch.float64)
    effect, condition = PCMNoise(), {"t_inference": t}
    g_p = effect.apply(target, list(z), condition, programmed_only=True)
    g_d = effect.apply(target, [z[0], z[1], torch.zeros_like(z[2])], condition)
    g_t = effect.apply(target, list(z), condition)
    return {"sigma_p": float(g_p.std()) * G_MAX, "drift": float((g_d / g_p).mean()),
            "mean": float(g_t.mean()), "sd": float(g_t.std())}


def pcm_table(args) -> None:
    print(f"PCM model vs the published formulas (g_max = 25 uS; sampled: {args.devices:,} devices, float64)\n")
    print("| g | t | sigma_p uS: formula / sampled | mu_nu | sigma_nu | E[drift factor]: integral / sampled "
          "| read sd (rel.) | mean G_t/g_max: expected / sampled | sd G_t/g_max: expected / sampled |")
    print("|---|---|---|---|---|---|---|---|---|")
    for g in (0.1, 0.5, 1.0):
        for label, t in TIMES.items():
            f, s = closed_form(g, t), sampled(g, t, args.devices)
            print(f"| {g:g} | {label} | {f['sigma_p']:.4f} / {s['sigma_p']:.4f} | {f['mu']:.4f} | {f['sigma_nu']:.4f} "
                  f"| {f['drift']:.4f} / {s['drift']:.4f} | {f['read']:.4f} | {f['mean']:.4f} / {s['mean']:.4f} "
                  f"| {f['sd']:.4f} / {s['sd']:.4f} |")
    print()


MODELS = [
    ("gaussian (sigma 0.1)", "gaussian", {}, {"sigma": 0.1}),
    ("pcm, compensated, 1 day", "pcm", {}, {"t_inference": 86400.0}),
    ("pcm, uncompensated, 1 day", "pcm", {"drift_compensation": False}, {"t_inference": 86400.0}),
    ("rram, 1 day", "rram", {}, {"t_inference": 86400.0}),
    ("levels (16) + pcm, 1 day", ["levels", "pcm"], {}, {"n_levels": 16, "t_inference": 86400.0}),
    ("stuck_at (5 % + 5 %)", "stuck_at", {}, {"p_stuck_off": 0.05, "p_stuck_on": 0.05}),
]


def time_draws(model, weights, condition, draws: int, repeats: int, generator) -> tuple[float, float]:
    """Median seconds per draw (normals, apply) for ``draws`` draws stacked in one call."""
    k, lead = model.normals_per_weight, (draws,) if draws > 1 else ()
    normal_times, apply_times = [], []
    for repeat in range(repeats + 1):
        start = time.perf_counter()
        normals = {n: torch.randn((*lead, k, *w.shape), generator=generator) for n, w in weights.items()}
        middle = time.perf_counter()
        with torch.no_grad():
            for n, w in weights.items():
                model.apply(w, normals[n], condition)
        end = time.perf_counter()
        if repeat:  # the first is a warm-up
            normal_times.append((middle - start) / draws)
            apply_times.append((end - middle) / draws)
    return statistics.median(normal_times), statistics.median(apply_times)


def draw_cost(args) -> None:
    torch.set_num_threads(1)
    weights = {n: p.detach() for n, p in MLP().named_parameters()}
    count = sum(w.numel() for w in weights.values())
    shapes = " + ".join("x".join(map(str, w.shape)) for w in weights.values())
    print(f"Cost of one Monte-Carlo draw, MLP weights {shapes} ({count:,} weights), 1 thread, median of "
          f"{args.repeats} (one draw per call) and of {max(args.repeats // 4, 5)} (chunks of {args.chunk} "
          f"draws stacked, as the evaluation does), ms per draw")
    print(f"  {'model':28s} {'normals/weight':>14s} | {'one draw: normals':>17s} {'apply':>7s} {'total':>7s} "
          f"{'x gauss.':>8s} | {f'chunk of {args.chunk}: total':>17s} {'x gauss.':>8s}")
    generator = torch.Generator().manual_seed(0)
    baseline = None
    for label, name, options, condition in MODELS:
        model = make_noise_model(name, options)
        condition = model.check_condition(condition)
        normal_s, apply_s = time_draws(model, weights, condition, 1, args.repeats, generator)
        chunk_normal_s, chunk_apply_s = time_draws(model, weights, condition, args.chunk,
                                                   max(args.repeats // 4, 5), generator)
        one, chunk = (normal_s + apply_s) * 1e3, (chunk_normal_s + chunk_apply_s) * 1e3
        baseline = baseline or (one, chunk)
        print(f"  {label:28s} {model.normals_per_weight:14d} | {normal_s * 1e3:17.3f} {apply_s * 1e3:7.3f} "
              f"{one:7.3f} {one / baseline[0]:7.2f}x | {chunk:17.3f} {chunk / baseline[1]:7.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100_000, help="devices per sampled PCM statistic")
    parser.add_argument("--repeats", type=int, default=50, help="timed draws per noise model")
    parser.add_argument("--chunk", type=int, default=16, help="draws stacked per call in the second timing")
    args = parser.parse_args()
    pcm_table(args)
    draw_cost(args)


if __name__ == "__main__":
    main()
