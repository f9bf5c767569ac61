"""The spiking networks' time loops in C++ (``memristor_mat/csrc/spiking_loop.cpp``): evaluation,
one weight draw at a time, and training (:func:`training_module`).

Why: :meth:`RecurrentSNN._evaluation_logits <memristor_mat.models.snn.RecurrentSNN>` steps every
draw together, so each of a step's five elementwise updates streams all the draws' state through
memory (16 draws x 256 windows x 100 neurons: 1.6 MB a tensor), and they cost as much as the
recurrent product. Stepping one draw at a time keeps its state in the core's cache and makes a
step's updates one pass, binary events enter as rows of W_in instead of a product, and each
worker's MKL runs on one thread (in a worker of ``at::parallel_for`` it looked for threads at
every product, 5-6 % of a step): at the paper config's passes the evaluation runs 1.9-2.1x
faster, at 51-63 % of the matrix-multiply peak against 28-30 % (``benchmarks/bench_snn.py``, a
2-core Xeon, the readout integrated in both loops). ``torch.compile`` was tried
first: inductor rounds ``addcmul`` as a product and a sum on a CPU, where eager fuses it, so its
spikes differ; this loop gives the Python loop's numbers bit for bit (module docstring of the
C++ file; the tests compare them).

The training loops (``RecurrentSNN``'s ``_OriginalTimeLoop`` and ``_NormalisedTimeLoop``, forward
and backward) are in the same file for another reason: a training batch of the ECG network is
(16, 100) per step, 250 steps, and a call from Python to a torch operation costs about as much
as its arithmetic. There the C++ code calls the same ATen operations in the same order on the same
tensors, so it gives the Python loop's numbers by construction, for either neuron (tanh too) and
any dtype, on the CPU: a training step of the ECG networks 1.2-1.5x faster
(``benchmarks/bench_snn.py``).

The tanh twin's evaluation takes the same loop, its outputs through ``at::tanh_``, the kernel of
Python's loop, on one draw's state at a time: tanh has no exactly rounded form, so this gives
Python's numbers only where torch's tanh gives an element the same value wherever it sits in a
tensor (at any offset, alignment and length, in a tensor's vectorised body or its tail). That rests
on how torch's build computes it (MKL's vector tanh on x86), so it is checked once per process
(:func:`tanh_disagreement`) and the twin keeps Python's loop where it fails.

The loop's element-wise updates are fused multiply-adds where torch's vectorised kernels fuse them
(``addcmul``, ``lerp``, on AVX2 and AVX-512); torch's portable kernels (``ATEN_CPU_CAPABILITY=
default``, an x86 CPU without AVX2) multiply and add apart, and there the two loops' logits
differed. So that too is checked once per process (:func:`updates_disagreement`), and Python's
loop evaluates every network where it fails.

The spiking networks' products of spikes (each step's spikes times ``W_out``, the readout's two
columns; the normalised network's times ``[W_rec | W_out]``, its spike recurrence) are sums of
the weights' rows of the spiking neurons in the C++ loop, added in index order: a binary left
factor makes every term of the product exact, so that sum is the product's own value wherever the
BLAS computes a dot product in index order, as MKL did on the CPUs checked (an Intel Xeon, an AMD
EPYC Zen 3) for these shapes. The readout's product took a quarter of a step at 100 windows on an
AVX2 EPYC (MKL's skinny path, 2.5 GFLOP/s). That rests on the BLAS, so it too is checked once
per process (:func:`spike_product_disagreement`, for each shape the loop meets: the order is
MKL's choice by shape), and the loop keeps the product where it fails.

They are operators of the package's C++ library (:mod:`memristor_mat.native`: built on first use,
``MEMRISTOR_MAT_NATIVE`` chooses ``auto``, ``python`` or ``cpp``). The evaluation loop applies in
float32 on the CPU, with at least as many weight draws as torch has threads (one draw per thread;
the Python loop's products use every thread on fewer draws), where each draw's products are its own
in Python's loop too (a W_rec or W_out shared by the draws is one product of all their rows
there); the training loops to every network on the CPU.
"""

from __future__ import annotations

import logging

import torch

from memristor_mat import native

log = logging.getLogger(__name__)

#: the first-use check of tanh: lengths around the vector widths (4, 8, 16 floats) and beyond a
#: kernel's grain (2,048 elements), at offsets that leave every alignment of a 64-byte line; the
#: whole tensor long enough (past torch's 32,768-element grain) that torch's threads split it at
#: an unaligned element
CHECK_LENGTHS = (1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 65, 100, 1000, 1900, 2049, 4100)
CHECK_OFFSETS = tuple(range(17))
CHECK_VALUES = 3 * 32_768 + 5


def tanh_disagreement(compiled=None) -> str | None:
    """Why torch's tanh may give an element another value in a slice than in the whole tensor
    here (None: it gave every checked element the same bits). Values from 1e-5 to 20 in
    magnitude, both signs; each slice once as a view (its first element at any alignment, as
    where torch's threads split a tensor) and once copied (aligned). Torch's thread count is left
    as it is: the whole tensor is split as the process splits it, and a thread's share starts at
    an element like the views'. ``compiled`` (:class:`~memristor_mat.native.Agreement`'s
    argument) is not used: the C++ loop calls torch's kernel, so torch's is what is checked."""
    generator = torch.Generator().manual_seed(20261206)
    scales = torch.tensor([1e-5, 1e-3, 0.05, 0.5, 1.0, 2.0, 5.0, 20.0])
    values = (torch.randn(CHECK_VALUES, generator=generator)
              * scales[torch.randint(len(scales), (CHECK_VALUES,), generator=generator)])
    whole = torch.tanh(values).view(torch.int32)
    for offset in CHECK_OFFSETS:
        for length in CHECK_LENGTHS:
            piece = values[offset:offset + length]
            expected = whole[offset:offset + length]
            for part in (piece, piece.clone()):
                differ = int((torch.tanh(part).view(torch.int32) != expected).sum())
                if differ:
                    return (f"torch's tanh gave {differ} of {length} elements other bits at offset {offset} "
                            f"than in the whole tensor")
    return None


#: whether the C++ loop gives the tanh twin's numbers here (checked at its first evaluation)
_tanh_agreement = native.Agreement(tanh_disagreement, "Python's loop evaluates the tanh twin", log)


#: lengths of the fused multiply-add check: around the vector widths, and past torch's grain of
#: 32,768 elements, where its threads split a tensor
FMA_LENGTHS = (1, 3, 7, 8, 9, 15, 16, 17, 33, 100, 1000, 40_000)


def updates_disagreement(compiled=None) -> str | None:
    """Why torch's ``addcmul`` and ``lerp`` may not round as the C++ loop's updates do here (None:
    they do). The loop computes ``addcmul`` as one fused multiply-add and ``lerp`` with ATen's two
    formulas, each one fused multiply-add, as torch's vectorised kernels do on AVX2 and AVX-512;
    torch's portable kernels (``ATEN_CPU_CAPABILITY=default``, an x86 CPU without AVX2) multiply
    and add apart, and there the loops' logits differed (the tanh twins and the normalised network
    on currents, 2026-12-07). Values whose fused and unfused results differ (a product of
    ``1 + 2^-12`` by itself, ``1 + 2^-11 + 2^-24``, is exact only before rounding), at lengths
    around the vector widths and past torch's grain, at two offsets, and with a factor broadcast
    over rows as Python's loop has its neurons' constants. ``compiled`` is not used: torch's
    kernels are what is checked."""
    a = 1.0 + 2.0 ** -12  # a * a = 1 + 2^-11 + 2^-24: rounded alone, to 1 + 2^-11 (a tie, to even)
    near = 1.0 + 2.0 ** -11
    cases = (
        # (name, operation of a length, its result fused; unfused, it is 0)
        ("addcmul", lambda n: torch.addcmul(torch.full((n,), -near), torch.full((n,), a), torch.full((n,), a)),
         2.0 ** -24),
        ("addcmul with a factor over rows",
         lambda n: torch.addcmul(torch.full((3, n), -near), torch.full((n,), a), torch.full((3, n), a)), 2.0 ** -24),
        # lerp(start, end, w) = start + w (end - start) for |w| < 0.5: w (end - start) = a * a
        ("lerp", lambda n: torch.lerp(torch.full((n,), -near), torch.full((n,), 3.0 + 2.0 ** -11),
                                      torch.full((n,), 0.25 + 2.0 ** -14)), 2.0 ** -24),
        # else end - (1 - w)(end - start), fused as end + (w - 1)(end - start): -(a * a) + near
        ("lerp above one half", lambda n: torch.lerp(torch.full((n,), -3.0 - 2.0 ** -11), torch.full((n,), near),
                                                     torch.full((n,), 0.75 - 2.0 ** -14)), -(2.0 ** -24)),
    )
    for name, operation, fused in cases:
        for length in FMA_LENGTHS:
            for offset in (0, 1):
                result = operation(length + offset)[..., offset:]
                differ = int((result != fused).sum())
                if differ:
                    return (f"torch's {name} gave {differ} of {result.numel()} elements another value than one fused "
                            f"multiply-add (length {length}, offset {offset})")
    return None


#: whether torch's kernels round the updates as the C++ evaluation loop does (checked at its first
#: evaluation)
_updates_agreement = native.Agreement(updates_disagreement, "Python's loop evaluates the spiking networks", log)


#: the products of spikes that ``memristor-mat build-native`` reports on: the paper ECG config's
#: test batches of 256 windows and 100 hidden neurons, times W_out (2 classes) and times the
#: normalised network's [W_rec | W_out] (102 columns)
REPORTED_SPIKE_PRODUCTS = ((256, 100, 2), (256, 100, 102))


def spike_product_disagreement(compiled, rows: int, size: int, columns: int, draws: int = 1) -> str | None:
    """Why the C++ loop's product of spikes (``compiled.spike_projection``: the weights' rows of the
    spiking neurons added in index order) may not give torch's product here for ``rows`` windows,
    ``size`` hidden neurons and ``columns`` columns in passes of ``draws`` weight draws (None:
    every checked entry had the same bits).
    The loop takes it for the readout (``W_out``: a column per class) and for the normalised
    network's spike recurrence (``[W_rec | W_out]``). The order depends on the shape: on a 2-core
    AMD EPYC Zen 3, MKL summed in index order with 2, 3, 4, 8, 12 and 100-104 columns and not with
    5-7 or 9-11 beyond a few rows, hence a check per shape. The weights expose the order of
    summation: magnitudes from 2^-24 to 1 and both signs, so that a sum in another order (blocked,
    pairwise, in more lanes, in float64) rounds differently in about half the entries, over at
    least 2,048 entries; the first column all negative and windows without a spike, for a zero's
    sign. Against the products of Python's loop at the pass's shape: ``torch.bmm`` (weight draws),
    ``torch.mm`` on one draw, and ``torch.mm`` on every draw's windows at once (weights shared by
    the draws), with torch's threads as the process has them (MKL splits one matrix between
    threads, and its order may change with that). It refuses one hidden neuron (torch multiplies there:
    a silent neuron's 0 x -w is -0) and one column (a matrix-vector product, summed in blocks) on
    the CPUs checked."""
    generator = torch.Generator().manual_seed(20261207)
    for _ in range(max(1, -(-2048 // (draws * rows * columns)))):  # passes, for 2,048 entries at least
        rate = torch.tensor([0.0, 0.05, 0.3, 0.9, 1.0])[torch.randint(5, (draws * rows,), generator=generator)]
        spikes = (torch.rand((draws, rows, size), generator=generator) < rate.view(draws, rows, 1)).float()
        magnitude = torch.exp2(-24 * torch.rand((draws, size, columns), generator=generator))
        weights = torch.where(torch.rand((draws, size, columns), generator=generator) < 0.5, -magnitude, magnitude)
        weights[..., 0] = -magnitude[..., 0]
        ours = compiled.spike_projection(spikes, weights)
        shared = compiled.spike_projection(spikes, weights[:1].expand(draws, size, columns))
        products = (("torch.bmm", torch.bmm(spikes, weights), ours),
                    ("torch.mm", torch.mm(spikes[0], weights[0])[None], ours[:1]),
                    ("torch.mm of the draws' windows together",
                     torch.mm(spikes.view(draws * rows, size), weights[0]).view(draws, rows, columns), shared))
        for name, product, expected in products:
            differ = int((product.view(torch.int32) != expected.view(torch.int32)).sum())
            if differ:
                return (f"{name} of {rows} x {size} spikes and {size} x {columns} weights ({draws} draws, "
                        f"{torch.get_num_threads()} threads) gave {differ} of {product.numel()} entries other bits "
                        f"than a sum in index order")
    return None


#: by (rows, size, columns, draws, torch's threads): whether torch's product gives the C++ loop's
#: sums of spiking rows here (checked at the first evaluation of each)
_spike_product_agreements: dict[tuple[int, int, int, int, int], native.Agreement] = {}


def _spike_product_agreement(rows: int, size: int, columns: int, draws: int = 1) -> native.Agreement:
    key = (rows, size, columns, draws, torch.get_num_threads())
    if key not in _spike_product_agreements:
        _spike_product_agreements[key] = native.Agreement(
            lambda compiled: spike_product_disagreement(compiled, rows, size, columns, draws),
            f"the C++ loop takes torch's product of {rows} x {size} spikes and {size} x {columns} weights "
            f"({draws} draws)", log)
    return _spike_product_agreements[key]


def sums_spike_product(compiled, rows: int, size: int, columns: int, draws: int = 1) -> bool:
    """Whether the C++ loop ``compiled`` may sum the spiking rows for a product of ``rows`` x
    ``size`` spikes and ``size`` x ``columns`` weights in passes of ``draws`` weight draws here,
    with torch's threads as they are now."""
    return _spike_product_agreement(rows, size, columns, draws).reason(compiled) is None


def evaluator() -> str:
    """Which loop evaluates the spiking networks and the tanh twin in this process, and how the C++
    loop makes its products of spikes, and why (``memristor-mat build-native``)."""
    if _updates_agreement.library() is None:
        return _updates_agreement.report("")
    return "\n".join((
        _tanh_agreement.report("the C++ loop evaluates the tanh twin: Python's loop's numbers here, bit for bit"),
        *(_spike_product_agreement(*shape).report(
            "the C++ loop sums the spiking rows for the product of {} x {} spikes and {} x {} weights: torch's "
            "product's numbers here, bit for bit".format(shape[0], shape[1], shape[1], shape[2]))
          for shape in REPORTED_SPIKE_PRODUCTS)))


def training_module(*tensors: torch.Tensor):
    """The compiled operators for a training time loop on ``tensors`` (RecurrentSNN's
    ``_OriginalTimeLoop`` and ``_NormalisedTimeLoop``: the same ATen operations in C++, the same
    numbers for either neuron and any dtype), or None where Python's loop runs: off the CPU (the
    C++ file is built for the CPU only), under ``MEMRISTOR_MAT_NATIVE=python``, or where the
    build failed under ``auto``."""
    return native.cpu_module(*tensors)


def applies(x: torch.Tensor, weights: tuple[torch.Tensor, ...], draws: int) -> bool:
    """Whether the C++ loop may take this evaluation (see the module docstring), before building
    it; the tanh twin's also needs :func:`evaluation_module`'s check."""
    tensors = (x, *weights)
    return (draws >= torch.get_num_threads()
            and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
            and native.choice() != "python")


def evaluation_module(spiking: bool):
    """The compiled operators for the evaluation loop of spiking neurons, or of the tanh twin
    where its check passes here, where torch's updates round as the loop's; None where Python's
    loop runs."""
    if _updates_agreement.library() is None:
        return None
    return native.module() if spiking else _tanh_agreement.library()
