"""Timing helpers shared by the benchmark scripts (run as ``python benchmarks/<script>.py``, so
this folder is on ``sys.path``)."""

from __future__ import annotations

import statistics
import time

import torch


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


def matmul_peak_gflops(size: int = 2048, repeats: int = 10) -> float:
    """This machine's float32 matrix-multiply rate (GFLOP/s) at the current torch thread count:
    the yardstick the benchmarks state their throughput against, measured in the same run."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    seconds = best_of(lambda: a @ b, repeats)
    return 2 * size**3 / seconds / 1e9
