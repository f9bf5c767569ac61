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

They are operators of the package's C++ library (:mod:`memristor_mat.native`: built on first use,
``MEMRISTOR_MAT_NATIVE`` chooses ``auto``, ``python`` or ``cpp``). The evaluation loop applies in
float32 on the CPU, with at least as many weight draws as torch has threads (one draw per thread;
the Python loop's products use every thread on fewer draws); the training loops to every network on
the CPU.
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


def evaluator() -> str:
    """Which loop evaluates the tanh twin in this process, and why (``memristor-mat build-native``)."""
    return _tanh_agreement.report("the C++ loop evaluates the tanh twin: Python's loop's numbers here, bit for bit")


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
    where its check passes here; None where Python's loop runs."""
    return native.module() if spiking else _tanh_agreement.library()
