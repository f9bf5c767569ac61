"""Timing helpers shared by the benchmark scripts (run as ``python benchmarks/<script>.py``, so
this folder is on ``sys.path``)."""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from memristor_mat.allocator import retain_freed_memory


def best_of(function, repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``function``, after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def per_call(function, repeats: int, clock=time.perf_counter) -> float:
    """Microseconds per call of ``function``: the best of 5 rounds of ``repeats`` calls, after one
    warm-up call. ``clock=time.process_time`` counts the process's CPU time (steadier where the
    machine is shared; the wall time where nothing else runs)."""
    function()
    rounds = []
    for _ in range(5):
        started = clock()
        for _ in range(repeats):
            function()
        rounds.append((clock() - started) / repeats)
    return min(rounds) * 1e6


def warm_median(seconds: list[float]) -> float:
    """Median of epochs' seconds, without the first epoch's where there are several (it pays
    what a job pays once: the first step's kernels chosen, ``torch._dynamo`` imported by the
    first optimiser step)."""
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


def job_process() -> str:
    """Set this benchmark's process up as a job's memory is (:func:`memristor_mat.runs.prepare_process`:
    the memory it frees kept in the process, unless ``MEMRISTOR_MAT_RETAIN_MEMORY=0``); the words
    for its header."""
    return "freed memory kept in the process" if retain_freed_memory() else "glibc's malloc defaults"


def matmul_peak_gflops(size: int = 2048, repeats: int = 10) -> float:
    """This machine's float32 matrix-multiply rate (GFLOP/s) at the current torch thread count:
    the yardstick the benchmarks state their throughput against, measured in the same run."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    seconds = best_of(lambda: a @ b, repeats)
    return 2 * size**3 / seconds / 1e9


def compare_epochs(config: dict, task: str, data, arch: str, options: dict, variants: dict, methods, rounds: int,
                   steps: int) -> None:
    """Print one training epoch of ``config``'s first model of each of ``methods`` (``task``, on
    ``data``, one thread) under each of the two ``variants`` (label -> a context manager factory
    in which the epoch trains: the code before a change, and after it), the cases alternated over
    ``rounds``, best of them, and whether the weights after the epoch are identical."""
    from memristor_mat import pipeline, training
    from memristor_mat.models import build_model
    from memristor_mat.settings import TrainingSettings

    runs = pipeline.model_runs(config, task)
    first = {}  # (method, variant) -> the method's first model
    for method in methods:
        run = next((r for r in runs if r.method == method), None)
        if run is not None:
            for variant in variants:
                first[method, variant] = run

    def one_epoch(run, variant):
        full = pipeline.training_settings(config, run)
        measured = TrainingSettings.from_dict({**full.as_dict(), "epochs": 1})
        torch.manual_seed(run.seed)
        with variants[variant]():
            result = training.train(build_model(arch, **options), data, measured, device=torch.device("cpu"),
                                    progress=False)
        return result.history[0]["seconds"], result.model

    before, after = variants
    print(f"one epoch, task {task}: {len(data.y_train):,} samples, {steps:,} steps, 1 thread; best of {rounds} "
          f"rounds (the cases alternate), train()'s epoch seconds, {before} -> {after}")
    best, models = {}, {}
    for _ in range(rounds):
        for (method, variant), run in first.items():
            seconds, models[method, variant] = one_epoch(run, variant)
            best[method, variant] = min(best.get((method, variant), seconds), seconds)
    for method in methods:
        if (method, before) in best:
            same = all(torch.equal(a, b) for a, b in zip(models[method, before].state_dict().values(),
                                                         models[method, after].state_dict().values()))
            old, new = best[method, before], best[method, after]
            print(f"  {method:12s} {old:6.2f} s -> {new:6.2f} s ({new / old - 1:+.1%}), "
                  f"weights after the epoch identical: {same}")


def paper_task_model(config_path: str, task: str):
    """``config_path``'s ``task`` on data of its real size (benchmarks/paper_scale.py's), and its
    network built with seed 0: (config, data, architecture, its options, the network)."""
    from paper_scale import real_size_images

    from memristor_mat.config import load_config
    from memristor_mat.models import architecture_options, build_model

    config = load_config(config_path)
    task_config = config["tasks"][task]
    data = real_size_images(task_config["dataset"]["name"]).splits
    arch = task_config["model"]["arch"]
    options = architecture_options(arch, task_config["model"], data.input_shape, data.num_classes)
    torch.manual_seed(0)
    return config, data, arch, options, build_model(arch, **options)


def old_new_arguments(description: str, repeats: int) -> argparse.Namespace:
    """The command line of the scripts that time torch's kernel against the C++ library's, per
    call and in epochs of a paper recipe (``clip_std.py``, ``mat_normals.py``)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/paper_mnist.yaml")
    parser.add_argument("--task", default="mnist")
    parser.add_argument("--repeats", type=int, default=repeats, help="calls per timing round")
    parser.add_argument("--no-epochs", action="store_true", help="time only the per-call figures")
    parser.add_argument("--rounds", type=int, default=2, help="epochs timed per case (the best is shown)")
    return parser.parse_args()
