"""QAT's per-step quantisation levels, before and after issue #12: prints times, asserts nothing.

1. Per call, one thread: the levels of the MNIST MLP's two tensors (784 x 128 and 128 x 10, no
   biases) by ``torch.quantile`` (the implementation before issue #12, kept here as the
   reference), by selection in the whole tensor (issue #12's first step, until 2026-12-06) and by
   :func:`memristor_mat.quantization.quantization_levels` (selection among the candidates at the
   two ends), and the whole ``quantize`` call, old and new; whether all give identical bits.
2. (unless --no-epochs) One training epoch of the paper-scale MNIST config on data of MNIST's
   size (60,000 images, batch 32, 1,875 steps: :func:`paper_scale.real_size_images`), the way
   benchmarks/paper_scale.py times it: vanilla, QAT with the new quantize and QAT with the old
   one (the same seed, so the trained weights must come out identical).

    python benchmarks/qat_levels.py [--levels 4] [--repeats 200] [--rounds 2] [--no-epochs]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch

from memristor_mat import pipeline, quantization
from memristor_mat.config import load_config
from memristor_mat.methods import qat
from memristor_mat.models import architecture_options, build_model
from memristor_mat.settings import TrainingSettings
from memristor_mat.training import train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper_scale import IMAGE_SIZES, real_size_images  # noqa: E402  (the same data and epoch timing)
from timing import job_process, per_call  # noqa: E402

#: training images of MNIST, whose epochs the paper grid runs
N_TRAIN = IMAGE_SIZES["mnist"][0]


def old_quantization_levels(weight: torch.Tensor, n_levels: int) -> torch.Tensor:
    """quantization_levels before issue #12: torch.quantile."""
    if n_levels < 2:
        raise ValueError(f"quantisation needs at least 2 levels, got {n_levels}")
    flat = weight.detach().reshape(-1)
    if flat.dtype not in (torch.float32, torch.float64):
        flat = flat.float()
    bounds = torch.quantile(flat, torch.tensor([0.01, 0.99], device=flat.device, dtype=flat.dtype))
    return torch.linspace(float(bounds[0]), float(bounds[1]), n_levels, device=flat.device, dtype=flat.dtype)


@torch.no_grad()
def old_quantize(weight: torch.Tensor, n_levels: int) -> torch.Tensor:
    """quantize before issue #12: the old levels, and levels[index] by advanced indexing."""
    levels = old_quantization_levels(weight, n_levels).to(weight.dtype)
    boundaries = (levels[:-1] + levels[1:]) / 2
    return levels[torch.bucketize(weight.contiguous(), boundaries)]


def whole_tensor_levels(weight: torch.Tensor, n_levels: int) -> torch.Tensor:
    """quantization_levels with its selection in the whole tensor (no candidates at the ends)."""
    saved = quantization._CANDIDATES_FROM
    quantization._CANDIDATES_FROM = 2 ** 62
    try:
        return quantization.quantization_levels(weight, n_levels)
    finally:
        quantization._CANDIDATES_FROM = saved


class old_quantizer:
    """Within the block, QAT quantises with the implementation before issue #12."""

    def __enter__(self):
        self.saved = qat.quantize
        qat.quantize = old_quantize

    def __exit__(self, *exc):
        qat.quantize = self.saved


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/paper_mnist.yaml")
    parser.add_argument("--task", default="mnist")
    parser.add_argument("--levels", type=int, default=4, help="QAT level count (the paper grid: 2 to 32)")
    parser.add_argument("--repeats", type=int, default=200, help="calls per timing round")
    parser.add_argument("--no-epochs", action="store_true", help="time only the per-step calls")
    parser.add_argument("--rounds", type=int, default=2, help="epochs timed per case (the best is shown)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the workflow's training jobs get one thread each
    print(f"torch {torch.__version__}, 1 thread, {job_process()}; {args.levels} levels")

    torch.manual_seed(0)
    net = build_model("mlp", input_size=784, hidden_sizes=[128], num_classes=10, bias=False)
    tensors = {name: p.detach().clone() for name, p in net.named_parameters()}
    totals = {"old levels": 0.0, "whole-tensor": 0.0, "new levels": 0.0, "old quantize": 0.0, "new quantize": 0.0}
    print(f"per call (best of 5 x {args.repeats}), microseconds of CPU time:")
    print(f"  {'tensor':16s} {'elements':>9s} {'old levels':>11s} {'whole-tensor':>12s} {'new levels':>11s} "
          f"{'speed-up':>8s} {'old quantize':>13s} {'new quantize':>13s}  identical")
    functions = {"old levels": old_quantization_levels, "whole-tensor": whole_tensor_levels,
                 "new levels": quantization.quantization_levels,
                 "old quantize": old_quantize, "new quantize": quantization.quantize}
    for name, w in tensors.items():
        times = {key: per_call(lambda: function(w, args.levels), args.repeats, clock=time.process_time)
                 for key, function in functions.items()}
        results = {key: bits(function(w, args.levels)) for key, function in functions.items()}
        same = (torch.equal(results["old levels"], results["new levels"])
                and torch.equal(results["whole-tensor"], results["new levels"])
                and torch.equal(results["old quantize"], results["new quantize"]))
        for key in totals:
            totals[key] += times[key]
        print(f"  {name:16s} {w.numel():9,d} {times['old levels']:11.1f} {times['whole-tensor']:12.1f} "
              f"{times['new levels']:11.1f} "
              f"{times['old levels'] / times['new levels']:7.1f}x {times['old quantize']:13.1f} "
              f"{times['new quantize']:13.1f}  {same}")
    steps = -(-N_TRAIN // 32)
    print(f"  {'per step (both)':16s} {'':9s} {totals['old levels']:11.1f} {totals['whole-tensor']:12.1f} "
          f"{totals['new levels']:11.1f} "
          f"{totals['old levels'] / totals['new levels']:7.1f}x {totals['old quantize']:13.1f} "
          f"{totals['new quantize']:13.1f}")
    print(f"  x {steps:,} steps per epoch: levels {totals['old levels'] * steps / 1e6:.2f} s -> "
          f"{totals['whole-tensor'] * steps / 1e6:.2f} s -> "
          f"{totals['new levels'] * steps / 1e6:.2f} s, quantize {totals['old quantize'] * steps / 1e6:.2f} s -> "
          f"{totals['new quantize'] * steps / 1e6:.2f} s")
    if args.no_epochs:
        return

    config = load_config(args.config)
    task_config = config["tasks"][args.task]
    data = real_size_images(task_config["dataset"]["name"]).splits
    arch = task_config["model"]["arch"]
    options = architecture_options(arch, task_config["model"], data.input_shape, data.num_classes)
    runs = pipeline.model_runs(config, args.task)
    vanilla = next(run for run in runs if run.method == "vanilla")
    qat_run = next((run for run in runs if run.method == "qat" and run.setting == args.levels),
               next(run for run in runs if run.method == "qat"))

    def one_epoch(run):
        full = pipeline.training_settings(config, run)
        measured = TrainingSettings.from_dict({**full.as_dict(), "epochs": 1})
        torch.manual_seed(run.seed)
        cpu = time.process_time()
        result = train(build_model(arch, **options), data, measured, device=torch.device("cpu"), progress=False)
        return result.history[0]["seconds"], time.process_time() - cpu, result.model

    label = f"qat ({qat_run.setting:g} levels)"
    cases = {"vanilla": (vanilla, contextlib.nullcontext), f"{label}, new quantize": (qat_run, contextlib.nullcontext),
             f"{label}, old quantize": (qat_run, old_quantizer)}
    print(f"one epoch, {args.config} task {args.task}: {N_TRAIN:,} images, batch 32, {steps:,} steps; "
          f"best of {args.rounds} rounds (the cases alternate), wall (train()'s epoch seconds) and process CPU seconds")
    best, models = {}, {}
    for _ in range(args.rounds):
        for case, (run, context) in cases.items():
            with context():
                wall, cpu, models[case] = one_epoch(run)
            previous = best.get(case, (wall, cpu))
            best[case] = (min(previous[0], wall), min(previous[1], cpu))
    for case, (wall, cpu) in best.items():
        extra = "" if case == "vanilla" else (f"  (+{wall - best['vanilla'][0]:.2f} s wall, "
                                              f"+{cpu - best['vanilla'][1]:.2f} s CPU over vanilla)")
        print(f"  {case:30s} {wall:7.2f} s wall {cpu:7.2f} s CPU{extra}")
    new_model, old_model = models[f"{label}, new quantize"], models[f"{label}, old quantize"]
    same = all(torch.equal(bits(a), bits(b)) for a, b in zip(new_model.state_dict().values(),
                                                             old_model.state_dict().values()))
    print(f"  QAT weights after the epoch, new vs old quantize, identical (bits): {same}")


if __name__ == "__main__":
    main()
