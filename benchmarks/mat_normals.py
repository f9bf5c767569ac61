"""MAT's standard normals, ``torch.randn`` against the C++ library's draw
(:mod:`memristor_mat.normals`): prints times, asserts nothing.

1. Per call, one thread: ``torch.randn`` and :func:`memristor_mat.normals.randn` for each
   parameter of the paper MNIST MLP and for a whole MAT step's draw
   (:func:`memristor_mat.noise.draw_normals`), and whether the numbers and the generator's state
   after them are identical.
2. (unless --no-epochs) One training epoch of the paper-scale MNIST config on data of MNIST's size
   (60,000 images, batch 32, 1,875 steps), as benchmarks/paper_scale.py times it, MAT from scratch
   and vanilla (which draws nothing: the control), with torch's draw and the library's alternated
   (the same seed, so the trained weights must come out identical).

    python benchmarks/mat_normals.py [--repeats 1000] [--rounds 2] [--no-epochs]
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import torch

from memristor_mat import native, normals
from memristor_mat.noise import draw_normals, noisy_parameter_names

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper_scale import IMAGE_SIZES  # noqa: E402  (MNIST's size)
from timing import compare_epochs, job_process, old_new_arguments, paper_task_model, per_call  # noqa: E402

N_TRAIN = IMAGE_SIZES["mnist"][0]


@contextlib.contextmanager
def torchs_draw():
    """normals.* as torch's own kernel (the library's draw switched off)."""
    saved = normals._library
    normals._library = lambda: None
    try:
        yield
    finally:
        normals._library = saved


def identical(draw) -> bool:
    """Whether ``draw(generator)`` gives the same bits and leaves the same generator state with
    the library's draw as with torch's."""
    results = []
    for use_torch in (True, False):
        generator = torch.Generator().manual_seed(7)
        if use_torch:
            with torchs_draw():
                tensors = draw(generator)
        else:
            tensors = draw(generator)
        results.append(([t.view(torch.int32) for t in tensors], generator.get_state()))
    (a, state_a), (b, state_b) = results
    return all(torch.equal(x, y) for x, y in zip(a, b)) and torch.equal(state_a, state_b)


def main() -> None:
    args = old_new_arguments(__doc__, repeats=1000)
    torch.set_num_threads(1)  # the workflow's training jobs get one thread each
    if normals._library() is None:
        print(f"the library's draw is not used here ({native.ENVIRONMENT_VARIABLE}={native.choice()}, or its "
              "numbers would differ: see the log): both columns are torch's kernel")

    config, data, arch, options, net = paper_task_model(args.config, args.task)
    named = dict(net.named_parameters())
    shapes = {name: named[name].shape for name in noisy_parameter_names(net)}
    generator = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {job_process()}, CPU capability {torch.backends.cpu.get_cpu_capability()}; {arch}; "
          f"per call, 1 thread (best of 5 x {args.repeats}), microseconds of wall time:")
    print(f"  {'draw':16s} {'normals':>9s} {'torch.randn':>11s} {'library':>8s} {'speed-up':>8s}  identical")

    def row(label, count, draw):
        with torchs_draw():
            old = per_call(lambda: draw(generator), args.repeats)
        new = per_call(lambda: draw(generator), args.repeats)
        print(f"  {label:16s} {count:9,d} {old:11.1f} {new:8.1f} {old / new:7.1f}x  {identical(draw)}")
        return old, new

    for name, shape in shapes.items():
        row(name, shape.numel(), lambda g, shape=shape: [normals.randn(shape, generator=g)])
    total = sum(shape.numel() for shape in shapes.values())
    old, new = row("a MAT step", total, lambda g: list(draw_normals(shapes, 1, g).values()))
    steps = -(-N_TRAIN // 32)
    print(f"  x {steps:,} steps = {old * steps / 1e6:.2f} -> {new * steps / 1e6:.2f} s per epoch")
    if args.no_epochs:
        return

    variants = {"torch's draw": torchs_draw, "the library's": contextlib.nullcontext}
    compare_epochs(config, args.task, data, arch, options, variants, ("mat_scratch", "vanilla"), args.rounds, steps)


if __name__ == "__main__":
    main()
