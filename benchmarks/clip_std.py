"""The clipping's standard deviation, torch's kernel against the C++ library's sums
(:mod:`memristor_mat.statistics`): prints times, asserts nothing.

1. Per call, on 1 and 2 threads: ``w.std()`` and :func:`memristor_mat.statistics.float32_std` on
   the paper MNIST MLP's parameters, and the whole ``clip_weights`` call as it was before
   (``(k_std * w.std()).item()``, kept here as the reference) and as it is; whether the values and
   the clipped tensors are identical, and how often the sums decided (the rest go to torch's
   kernel) over many tensors of the first layer's size.
2. (unless --no-epochs) One training epoch of the paper-scale MNIST config on data of MNIST's
   size (60,000 images, batch 32, 1,875 steps), as benchmarks/paper_scale.py times it, vanilla and
   MAT from scratch, with the old and the new clipping alternated (the same seed, so the trained
   weights must come out identical).

    python benchmarks/clip_std.py [--repeats 2000] [--rounds 2] [--no-epochs]
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import torch

from memristor_mat import native, statistics, training

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper_scale import IMAGE_SIZES  # noqa: E402  (MNIST's size)
from timing import compare_epochs, job_process, old_new_arguments, paper_task_model, per_call  # noqa: E402

N_TRAIN = IMAGE_SIZES["mnist"][0]
K_STD = 2.5  # SPEC §2.1's clipping bound in standard deviations


@torch.no_grad()
def old_clip_weights(parameters: list[torch.Tensor], k_std: float) -> None:
    """clip_weights before the library's sums: torch's std, as a number on the CPU."""
    for w in parameters:
        if w.numel() > 1:
            bound = (k_std * w.std()).item()
            w.clamp_(-bound, bound)


def decided_fraction(shape: tuple[int, ...], count: int) -> float:
    """How often the sums decide the standard deviation of normal weights of ``shape``."""
    compiled = native.module()
    g = torch.Generator().manual_seed(0)
    decided = 0
    for _ in range(count):
        w = torch.randn(shape, generator=g) * 0.03
        decided += statistics.float32_std_from_sums(w.numel(), *compiled.shifted_sums(w)) is not None
    return decided / count


def main() -> None:
    args = old_new_arguments(__doc__, repeats=2000)
    if native.module() is None:
        print(f"the C++ library is not available ({native.ENVIRONMENT_VARIABLE}={native.choice()}): "
              "float32_std is torch's std here")

    config, data, arch, options, net = paper_task_model(args.config, args.task)
    parameters = [p for p in net.parameters()]
    print(f"torch {torch.__version__}, {job_process()}; {arch} {tuple(p.numel() for p in parameters)} parameters, k_std {K_STD}")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        print(f"per call, {threads} thread(s) (best of 5 x {args.repeats}), microseconds of wall time:")
        print(f"  {'tensor':12s} {'elements':>9s} {'w.std()':>8s} {'float32_std':>11s} {'speed-up':>8s}  identical")
        for name, p in net.named_parameters():
            w = p.detach()
            old, new = per_call(lambda: w.std(), args.repeats), per_call(lambda: statistics.float32_std(w), args.repeats)
            same = statistics.float32_std(w) == w.std().item()
            print(f"  {name:12s} {w.numel():9,d} {old:8.1f} {new:11.1f} {old / new:7.1f}x  {same}")
        with torch.no_grad():
            saved = [p.detach().clone() for p in parameters]
            old = per_call(lambda: old_clip_weights(parameters, K_STD), args.repeats)
            new = per_call(lambda: training.clip_weights(parameters, K_STD), args.repeats)
            clipped = []
            for clip in (old_clip_weights, training.clip_weights):
                for p, s in zip(parameters, saved):
                    p.copy_(s)
                clip(parameters, K_STD)
                clipped.append([p.detach().clone() for p in parameters])
            same = all(torch.equal(a, b) for a, b in zip(*clipped))
            for p, s in zip(parameters, saved):
                p.copy_(s)
        steps = -(-N_TRAIN // 32)
        print(f"  clip_weights, all {len(parameters)}: {old:.1f} -> {new:.1f} us ({old / new:.1f}x), "
              f"x {steps:,} steps = {old * steps / 1e6:.2f} -> {new * steps / 1e6:.2f} s per epoch; "
              f"clipped tensors identical: {same}")
    torch.set_num_threads(1)  # the workflow's training jobs get one thread each
    first = parameters[0].shape
    print(f"decided by the sums: {decided_fraction(first, 2000):.2%} of 2,000 normal tensors of shape {tuple(first)}")
    if args.no_epochs:
        return

    @contextmanager
    def clipping(function):
        saved = training.clip_weights
        training.clip_weights = function
        try:
            yield
        finally:
            training.clip_weights = saved

    new_clip_weights = training.clip_weights
    variants = {"old clipping": lambda: clipping(old_clip_weights),
                "new clipping": lambda: clipping(new_clip_weights)}
    compare_epochs(config, args.task, data, arch, options, variants, ("vanilla", "mat_scratch"), args.rounds, steps)


if __name__ == "__main__":
    main()
