"""Benchmark of the ECG recurrent SNN (4 -> 100 recurrent -> 2, T = 250 steps): prints figures,
asserts nothing.

1. Training milliseconds per batch (batch 16, forward + backward + Adamax step) through
   :func:`memristor_mat.training.train`, for each of ``--loops`` (the time loop in Python, or the
   same operations in C++: their ratio, and whether the trained weights are the same), vanilla vs
   mat_scratch (NoisyModel, its noise drawn as the training loop draws it: in the step, 0.4 % of
   it), for the original dynamics (the paper configs'
   ``ecg`` and ``ecg_tanh`` tasks) and the normalised ones (``ecg_improved``). One epoch on random
   event sequences; the end-of-epoch clean evaluation is measured apart and subtracted. Beside
   them, in the same run, :class:`OriginalLoop`: the original study's training step written the
   way its code (built on the SpyTorch tutorials) runs it: a Python ``autograd.Function`` spike,
   a second time loop for the readout, every state recorded and stacked (SPEC §3.1).
2. Monte-Carlo evaluation on 1,519 test windows (the size of the ECG test split) through
   :func:`memristor_mat.evaluation.monte_carlo_accuracy`: draws per second, and the GFLOP/s of
   the input, recurrent and readout products (``2 T (4 H + H^2 + 2 H)`` per window, 8.05 GFLOP
   per draw at H = 100, the issue's count) against this machine's float32 matrix-multiply peak
   measured in the same run (nominal where the C++ loop adds the spiking neurons' rows instead of
   multiplying: for the normalised network's spike recurrence it passes 100 %), for each of
   ``--loops``: the Python loop and the C++ one (memristor_mat.models.spiking_loop,
   the tanh twin's where its check passes), timed in turn, with their ratio and whether their correct counts are the
   same; beside them the original loop, one draw at a time (its protocol: a perturbed copy per draw).
3. With ``--compiled-draws N``: the same draws of the original spiking network through a time
   step compiled by ``torch.compile`` (inductor: the step's elementwise updates fused into one
   kernel, the draws stacked as batched products), its compile time, draws/s, % of peak, and
   whether its correct counts equal ours draw by draw (fused kernels round differently, and a
   membrane at the threshold then spikes on one side only). ``--compiled-steps K`` compiles
   blocks of K steps unrolled into one program instead (fewer calls; inductor's C++ wrapper,
   ``TORCHINDUCTOR_CPP_WRAPPER=1``, also takes the calls between its kernels out of Python).

    python benchmarks/bench_snn.py [--threads 2] [--draws 32] [--batch-sizes 200,1000] [--compiled-draws 16 [--compiled-steps 25]]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

from memristor_mat.datasets import DatasetSplits
from memristor_mat.evaluation import clean_accuracy, monte_carlo_accuracy, standard_normal_draws
from memristor_mat import native
from memristor_mat.models import spiking_loop
from memristor_mat.models.snn import RecurrentSNN
from memristor_mat.noise import GaussianWeightNoise, noisy_parameter_names
from memristor_mat.settings import MonteCarloSettings, TrainingSettings
from memristor_mat.training import train
from timing import job_process, matmul_peak_gflops

STEPS, CHANNELS, HIDDEN, CLASSES, BATCH, TEST_WINDOWS = 250, 4, 100, 2, 16, 1519
VARIANTS = (("original", "spiking"), ("original", "tanh"), ("normalised", "spiking"))


def random_events(n: int, seed: int, rate: float = 0.03) -> tuple[torch.Tensor, torch.Tensor]:
    """Event sequences with the sparsity and structure of delta-modulated ECG: a few % of steps
    per channel, the channels UP/DN pairs of two leads (a lead's step has one event or none)."""
    g = torch.Generator().manual_seed(seed)
    fired = torch.rand((n, STEPS, CHANNELS // 2), generator=g) < 2 * rate
    up = torch.rand((n, STEPS, CHANNELS // 2), generator=g) < 0.5
    x = torch.stack([fired & up, fired & ~up], dim=-1).flatten(-2).float()
    return x, torch.randint(0, 2, (n,), generator=g)


def model(dynamics: str, neuron: str) -> RecurrentSNN:
    torch.manual_seed(0)
    options = {"variability_seed": None} if dynamics == "original" else {}
    return RecurrentSNN(CHANNELS, HIDDEN, CLASSES, dynamics=dynamics, neuron=neuron, **options)


class SurrogateSpike(torch.autograd.Function):
    """The SpyTorch tutorials' spike: Heaviside forward, fast-sigmoid surrogate of scale 10."""

    @staticmethod
    def forward(ctx, membrane):
        ctx.save_for_backward(membrane)
        out = torch.zeros_like(membrane)
        out[membrane > 0] = 1.0
        return out

    @staticmethod
    def backward(ctx, grad):
        (membrane,) = ctx.saved_tensors
        return grad / (10.0 * membrane.abs() + 1.0) ** 2


class OriginalLoop:
    """The original's network and step, as its code runs them (SPEC §3.1): the weights and
    per-neuron constants are taken from a ``RecurrentSNN(dynamics="original")`` so both compute
    the same logits; only the way of computing differs."""

    def __init__(self, net: RecurrentSNN) -> None:
        self.neuron = net.neuron
        self.weights = [net.w_in.detach().clone().requires_grad_(),
                        net.w_rec.detach().clone().requires_grad_(),
                        net.w_out.detach().clone().requires_grad_()]
        self.mask = net.recurrent_mask
        self.alpha, self.beta = net.alpha, net.beta
        self.alpha_out, self.beta_out = net.readout_alpha_per_neuron, net.readout_beta_per_neuron
        self.optimizer = torch.optim.Adamax(self.weights, lr=1e-3)

    def logits(self, x: torch.Tensor, weights=None) -> tuple[torch.Tensor, torch.Tensor]:
        w_in, w_rec, w_out = self.weights if weights is None else weights
        batch = x.shape[0]
        drive = torch.einsum("btc,ch->bth", x, w_in)
        v = w_rec * self.mask
        h = torch.zeros(batch, HIDDEN)
        syn = torch.zeros(batch, HIDDEN)
        mem = torch.zeros(batch, HIDDEN)
        spikes = []
        for t in range(STEPS):
            h = drive[:, t] + torch.einsum("bh,hk->bk", h, v)
            shifted = mem - 1.0
            out = SurrogateSpike.apply(shifted) if self.neuron == "spiking" else torch.tanh(shifted)
            reset = (shifted > 0).float()
            new_mem = self.beta * mem + syn - reset
            syn = self.alpha * syn + h
            mem = new_mem
            spikes.append(out)
        spikes = torch.stack(spikes, dim=1)
        y = torch.einsum("bth,hc->btc", spikes, w_out)
        flt = torch.zeros(batch, CLASSES)
        o = torch.zeros(batch, CLASSES)
        readout = []
        for t in range(STEPS):
            new_o = self.beta_out * o + flt
            flt = self.alpha_out * flt + y[:, t]
            o = new_o
            readout.append(o)
        return torch.stack(readout, dim=1).max(dim=1).values, spikes

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        logits, spikes = self.logits(x)
        # the original sums its neurons' outputs, tanh's with their signs (SPEC §3)
        loss = (F.nll_loss(F.log_softmax(logits, dim=-1), y) + 1e-7 * spikes.sum()
                + 1e-7 * spikes.sum(dim=(0, 1)).square().mean())
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()


def bench_training(args) -> None:
    x_train, y_train = random_events(args.train_samples, seed=1)
    x_test, y_test = random_events(BATCH, seed=2)
    data = DatasetSplits("random_events", x_train, y_train, x_test, y_test, 2, "random events")
    batches = -(-args.train_samples // BATCH)
    print(f"Training: batch {BATCH}, H {HIDDEN}, T {STEPS}, {batches} batches per epoch, Adamax, "
          f"{torch.get_num_threads()} threads (ms per batch, best of {args.repeats})")
    for dynamics, neuron in VARIANTS:
        times, weights = {}, {}
        for loop_choice in args.loops:  # the time loop in Python or the same operations in C++
            os.environ[native.ENVIRONMENT_VARIABLE] = loop_choice
            for method in ("vanilla", "mat_scratch"):
                settings = TrainingSettings(method=method, epochs=1, batch_size=BATCH,
                                            optimizer={"name": "Adamax", "lr": 1e-3}, seed=0,
                                            sigma_train=0.1 if method == "mat_scratch" else 0.0,
                                            eval_batch_size=BATCH)
                train(model(dynamics, neuron), data, settings, device=torch.device("cpu"), progress=False)  # warm-up
                best = float("inf")
                for _ in range(args.repeats):
                    net = model(dynamics, neuron)
                    started = time.perf_counter()
                    train(net, data, settings, device=torch.device("cpu"), progress=False)
                    seconds = time.perf_counter() - started
                    started = time.perf_counter()
                    clean_accuracy(net, x_test, y_test, batch_size=BATCH)
                    seconds -= time.perf_counter() - started
                    best = min(best, seconds)
                times[loop_choice, method] = 1000 * best / batches
                weights[loop_choice, method] = [p.detach().clone() for p in net.parameters()]
        os.environ.pop(native.ENVIRONMENT_VARIABLE, None)
        ours = args.loops[-1]  # the default choice where the C++ loops build: the last one listed
        line = f"  {dynamics:10s} {neuron:8s}"
        for loop_choice in args.loops:
            line += (f" {loop_choice} loop: vanilla {times[loop_choice, 'vanilla']:6.1f}  "
                     f"mat_scratch {times[loop_choice, 'mat_scratch']:6.1f} |")
        if len(args.loops) > 1:
            first = args.loops[0]
            same = all(torch.equal(a, b) for method in ("vanilla", "mat_scratch")
                       for a, b in zip(weights[first, method], weights[ours, method]))
            line += (f" {first}/{ours} {times[first, 'vanilla'] / times[ours, 'vanilla']:.2f}x, "
                     f"{times[first, 'mat_scratch'] / times[ours, 'mat_scratch']:.2f}x, "
                     f"{'the same' if same else 'DIFFERENT'} trained weights |")
        times = {method: times[ours, method] for method in ("vanilla", "mat_scratch")}
        if dynamics == "original":
            net = model(dynamics, neuron)
            loop = OriginalLoop(net)
            with torch.no_grad():  # the same network: the same logits up to rounding
                difference = (net(x_train[:BATCH]) - loop.logits(x_train[:BATCH])[0]).abs().max().item()
            order = torch.arange(args.train_samples).split(BATCH)
            loop.step(x_train[order[0]], y_train[order[0]])  # warm-up
            best = float("inf")
            for _ in range(args.repeats):
                started = time.perf_counter()
                for index in order:
                    loop.step(x_train[index], y_train[index])
                best = min(best, time.perf_counter() - started)
            original = 1000 * best / batches
            line += (f" the original's loop, vanilla {original:6.1f}: ours {original / times['vanilla']:.1f}x faster"
                     f" (logits differ by {difference:.0e})")
        print(line)


def _compiled_steps(h, syn, mem, inputs, w_in, w_rec, w_out, alpha, beta, threshold):
    """``len(inputs)`` steps of :meth:`RecurrentSNN._original_projected_activity` on stacked
    draws (draws, batch, H), with the library's operations, for the compiler to fuse (one step
    per call, or a block of steps unrolled into one program). ``inputs``: (steps, draws, batch,
    channels)."""
    projected = []
    for x_t in inputs.unbind(0):
        h = torch.bmm(h, w_rec) + torch.bmm(x_t, w_in)
        reset = torch.gt(mem, threshold).to(mem.dtype)
        projected.append(torch.bmm(reset, w_out))
        mem = torch.addcmul(syn, beta, mem) - threshold * reset
        syn = torch.addcmul(h, alpha, syn)
    return h, syn, mem, torch.stack(projected)


def compiled_correct(net: RecurrentSNN, weights: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                     batch_size: int, steps, block: int) -> torch.Tensor:
    """Correct counts per draw of the original spiking network with stacked ``weights`` (draws
    first), the time loop calling ``steps`` on blocks of ``block`` steps; the readout as the
    library computes it."""
    w_in, w_out = weights["w_in"], weights["w_out"]
    w_rec = weights["w_rec"] * net.recurrent_mask
    draws = w_in.shape[0]
    # a number, which the compiler builds into its kernels (given as a 0-dim tensor, an input of
    # the program, the compiled loop ran 1.35x slower)
    threshold = float(net.threshold)
    correct = torch.zeros(draws, dtype=torch.long)
    for start in range(0, len(y), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        h = xb.new_zeros((draws, len(yb), HIDDEN))
        syn, mem = torch.zeros_like(h), torch.zeros_like(h)
        # (T, draws, batch, channels): each step's products read one contiguous block
        inputs = xb.transpose(0, 1).unsqueeze(1).expand(-1, draws, -1, -1).contiguous()
        projected = []
        for t in range(0, STEPS, block):
            h, syn, mem, out = steps(h, syn, mem, inputs[t:t + block], w_in, w_rec, w_out, net.alpha, net.beta,
                                     threshold)
            projected.append(out)
        logits = net._readout(torch.cat(projected).movedim(0, -2)).amax(dim=-2)
        correct += (logits.argmax(dim=-1) == yb).sum(dim=-1)
    return correct


def bench_compiled(args, x, y, gflop_per_draw: float, peak: float) -> None:
    net = model("original", "spiking").eval()
    batch_size = args.batch_sizes[0]
    settings = MonteCarloSettings(sigma_inference=(0.1,), draws=args.compiled_draws, seed=7,
                                  draws_per_chunk=args.compiled_draws, batch_size=batch_size)
    started = time.perf_counter()
    ours = monte_carlo_accuracy(net, x, y, settings)
    eager_rate = args.compiled_draws / (time.perf_counter() - started)
    names = noisy_parameter_names(net)
    params = dict(net.named_parameters())
    shapes = {name: params[name].shape for name in names}
    normals = standard_normal_draws(shapes, 1, settings.seed, range(args.compiled_draws))
    noise = GaussianWeightNoise()
    with torch.no_grad():
        weights = {name: noise.apply(params[name].detach(), normals[name], {"sigma": 0.1}) for name in names}
        steps = torch.compile(_compiled_steps, dynamic=False)
        block = args.compiled_steps
        started = time.perf_counter()
        # compiled for every shape it meets: a full and the last batch, a full and the last block
        remainder = len(y) % batch_size or batch_size
        for n in {batch_size, remainder}:
            compiled_correct(net, weights, x[:n], y[:n], batch_size, steps, block)
        compile_seconds = time.perf_counter() - started
        started = time.perf_counter()
        correct = compiled_correct(net, weights, x, y, batch_size, steps, block)
        rate = args.compiled_draws / (time.perf_counter() - started)
    same = int((torch.tensor(ours["n_correct"].to_numpy()) == correct).sum())
    what = "step" if block == 1 else f"loop in blocks of {block} steps"
    print(f"  original   spiking  compiled {what} (torch.compile, {args.compiled_draws} draws stacked, batches of "
          f"{batch_size}): {rate:6.2f} draws/s = {rate * gflop_per_draw:5.1f} GFLOP/s = "
          f"{rate * gflop_per_draw / peak:4.0%} of peak, {rate / eager_rate:.2f}x ours in the same run "
          f"({eager_rate:.2f} draws/s); compiling took {compile_seconds:.1f} s; the same correct count as ours "
          f"in {same} of {args.compiled_draws} draws (largest difference "
          f"{int((torch.tensor(ours['n_correct'].to_numpy()) - correct).abs().max())} windows)")


def bench_monte_carlo(args) -> None:
    x, y = random_events(TEST_WINDOWS, seed=3)
    gflop_per_draw = 2 * STEPS * (CHANNELS * HIDDEN + HIDDEN * HIDDEN + HIDDEN * CLASSES) * TEST_WINDOWS / 1e9
    peak = matmul_peak_gflops()
    print(f"Monte-Carlo evaluation: {TEST_WINDOWS} windows, {gflop_per_draw:.2f} GFLOP per draw, {args.draws} draws at "
          f"sigma 0.1, {args.draws_per_chunk} draws per chunk, {torch.get_num_threads()} threads; "
          f"float32 matmul peak (2048^3, same run) {peak:.1f} GFLOP/s")
    for dynamics, neuron in VARIANTS:
        net = model(dynamics, neuron).eval()
        # the tanh twin's C++ loop runs where its check passes (models/spiking_loop.py)
        loops = [loop for loop in args.loops
                 if loop == "python" or neuron == "spiking" or spiking_loop.tanh_disagreement() is None]
        for batch_size in args.batch_sizes:
            settings = MonteCarloSettings(sigma_inference=(0.1,), draws=args.draws, seed=7,
                                          draws_per_chunk=args.draws_per_chunk, batch_size=batch_size)
            warm = MonteCarloSettings(sigma_inference=(0.1,), draws=1, seed=7, batch_size=batch_size)
            seconds, counts = {loop: float("inf") for loop in loops}, {}
            for _ in range(args.repeats):  # the loops in turn, the best of each: the machine's speed drifts
                for loop in loops:
                    os.environ[native.ENVIRONMENT_VARIABLE] = loop
                    monte_carlo_accuracy(net, x[:64], y[:64], warm)
                    started = time.perf_counter()
                    counts[loop] = monte_carlo_accuracy(net, x, y, settings)["n_correct"].tolist()
                    seconds[loop] = min(seconds[loop], time.perf_counter() - started)
            for loop in loops:
                rate = args.draws / seconds[loop]
                line = (f"  {dynamics:10s} {neuron:8s} ours ({loop:6s} loop), test batches of {batch_size:4d}: "
                        f"{rate:6.2f} draws/s = {rate * gflop_per_draw:5.1f} GFLOP/s = "
                        f"{rate * gflop_per_draw / peak:4.0%} of peak")
                if loop != "python" and "python" in seconds:
                    same = counts[loop] == counts["python"]
                    line += (f", {seconds['python'] / seconds[loop]:.2f}x the python loop, "
                             f"{'the same' if same else 'DIFFERENT'} correct counts")
                print(line)
        if dynamics == "original" and args.original_draws:
            loop = OriginalLoop(net)
            names = noisy_parameter_names(net)
            shapes = {name: p.shape for name, p in net.named_parameters() if name in names}
            normals = standard_normal_draws(shapes, 1, 7, range(args.original_draws))
            started = time.perf_counter()
            with torch.no_grad():
                for draw in range(args.original_draws):
                    weights = [w + normals[name][draw, 0] * 0.1 * 2 * w.abs().max()
                               for name, w in zip(("w_in", "w_rec", "w_out"), loop.weights)]
                    for start in range(0, TEST_WINDOWS, args.original_batch_size):
                        loop.logits(x[start:start + args.original_batch_size], weights)
            rate = args.original_draws / (time.perf_counter() - started)
            print(f"  {dynamics:10s} {neuron:8s} the original's loop, batches of {args.original_batch_size:4d}: "
                  f"{rate:6.2f} draws/s = {rate * gflop_per_draw:5.1f} GFLOP/s = {rate * gflop_per_draw / peak:4.0%} "
                  f"of peak")
    os.environ.pop(native.ENVIRONMENT_VARIABLE, None)  # "ours" below: the default choice
    if args.compiled_draws:
        bench_compiled(args, x, y, gflop_per_draw, peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--train-samples", type=int, default=320)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--draws", type=int, default=30)
    parser.add_argument("--draws-per-chunk", type=int, default=5,
                        help="draws stacked in one pass (the demo's ECG tasks: 5; the state of 5 draws x 100 "
                             "windows stays in cache)")
    parser.add_argument("--batch-sizes", type=lambda text: [int(v) for v in text.split(",")], default=[100, 1000],
                        help="Monte-Carlo test batch sizes, comma-separated (the demo's ECG tasks use 100)")
    parser.add_argument("--original-draws", type=int, default=2, help="draws through the original's loop (0: skip)")
    parser.add_argument("--original-batch-size", type=int, default=256)
    parser.add_argument("--compiled-draws", type=int, default=0,
                        help="draws through a torch.compile'd time step (0: skip; compiling takes about 30 s)")
    parser.add_argument("--compiled-steps", type=int, default=1,
                        help="time steps per compiled call (1: a step; 25: the loop unrolled in 10 blocks)")
    parser.add_argument("--loops", type=lambda text: text.split(","), default=["python", "cpp"],
                        help="training and evaluation loops to time, comma-separated (python, cpp: "
                             "memristor_mat.models.spiking_loop); training's 'ours' is the last one")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {job_process()}")
    if not args.skip_training:
        bench_training(args)
    bench_monte_carlo(args)


if __name__ == "__main__":
    main()
