"""Benchmark of the ECG recurrent SNN (4 -> 100 recurrent -> 2, T = 250 steps): prints figures,
asserts nothing.

1. Training milliseconds per batch (batch 16, forward + backward + Adamax step) through
   :func:`memristor_mat.training.train`, vanilla vs mat_scratch (NoisyModel, noise prefetched on a
   background thread as the training loop does), spiking and tanh neurons. One epoch on random
   event sequences; the end-of-epoch clean evaluation is measured apart and subtracted.
2. Monte-Carlo evaluation throughput (weight draws per second) on 1,519 test windows, the size
   of the ECG test split, through :func:`memristor_mat.evaluation.monte_carlo_accuracy`.

    python benchmarks/bench_snn.py [--threads 2] [--draws 16] [--batch-sizes 1000,256]
"""

from __future__ import annotations

import argparse
import time

import torch

from memristor_mat.datasets import DatasetSplits
from memristor_mat.evaluation import clean_accuracy, monte_carlo_accuracy
from memristor_mat.models.snn import RecurrentSNN
from memristor_mat.settings import MonteCarloSettings, TrainingSettings
from memristor_mat.training import train

STEPS, CHANNELS, HIDDEN, BATCH = 250, 4, 100, 16


def random_events(n: int, seed: int, rate: float = 0.03) -> tuple[torch.Tensor, torch.Tensor]:
    """Event sequences with the sparsity of delta-modulated ECG (a few % of steps per channel)."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand((n, STEPS, CHANNELS), generator=g) < rate).float()
    return x, torch.randint(0, 2, (n,), generator=g)


def model(neuron: str) -> RecurrentSNN:
    torch.manual_seed(0)
    return RecurrentSNN(CHANNELS, HIDDEN, 2, neuron=neuron)


def bench_training(args) -> None:
    x_train, y_train = random_events(args.train_samples, seed=1)
    x_test, y_test = random_events(BATCH, seed=2)
    data = DatasetSplits("random_events", x_train, y_train, x_test, y_test, 2, "random events")
    batches = -(-args.train_samples // BATCH)
    print(f"training: batch {BATCH}, H {HIDDEN}, T {STEPS}, {batches} batches per epoch, Adamax")
    for neuron in ("spiking", "tanh"):
        for method in ("vanilla", "mat_scratch"):
            settings = TrainingSettings(method=method, epochs=1, batch_size=BATCH,
                                        optimizer={"name": "Adamax", "lr": 1e-3}, seed=0,
                                        sigma_train=0.1 if method == "mat_scratch" else 0.0,
                                        eval_batch_size=BATCH)
            net = model(neuron)
            train(net, data, settings, device=torch.device("cpu"), progress=False)  # warm-up
            best = float("inf")
            for _ in range(args.repeats):
                net = model(neuron)
                started = time.perf_counter()
                train(net, data, settings, device=torch.device("cpu"), progress=False)
                seconds = time.perf_counter() - started
                started = time.perf_counter()
                clean_accuracy(net, x_test, y_test, batch_size=BATCH)
                seconds -= time.perf_counter() - started
                best = min(best, seconds)
            print(f"  {neuron:8s} {method:12s} {1000 * best / batches:7.1f} ms per batch")


def bench_monte_carlo(args) -> None:
    x, y = random_events(1519, seed=3)
    print(f"Monte-Carlo evaluation: {len(y)} windows, {args.draws} draws at sigma 0.1, "
          f"{args.draws_per_chunk} draws per vmap chunk")
    for neuron in ("spiking", "tanh"):
        net = model(neuron).eval()
        for batch_size in args.batch_sizes:
            settings = MonteCarloSettings(sigma_inference=(0.1,), draws=args.draws, seed=7,
                                          draws_per_chunk=args.draws_per_chunk, batch_size=batch_size)
            warm = MonteCarloSettings(sigma_inference=(0.1,), draws=1, seed=7, batch_size=batch_size)
            monte_carlo_accuracy(net, x[:64], y[:64], warm)
            started = time.perf_counter()
            monte_carlo_accuracy(net, x, y, settings)
            seconds = time.perf_counter() - started
            print(f"  {neuron:8s} test batches of {batch_size:4d}: {args.draws / seconds:6.2f} draws/s "
                  f"({seconds:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--train-samples", type=int, default=320)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--draws", type=int, default=16)
    parser.add_argument("--draws-per-chunk", type=int, default=16)
    parser.add_argument("--batch-sizes", type=lambda text: [int(v) for v in text.split(",")], default=[1000, 256],
                        help="Monte-Carlo test batch sizes, comma-separated")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    bench_training(args)
    bench_monte_carlo(args)


if __name__ == "__main__":
    main()
