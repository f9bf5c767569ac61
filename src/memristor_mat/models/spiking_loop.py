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

They are operators of the package's C++ library (:mod:`memristor_mat.native`: built on first use,
``MEMRISTOR_MAT_NATIVE`` chooses ``auto``, ``python`` or ``cpp``). The evaluation loop applies to
spiking neurons (not the tanh twin: tanh has no exactly rounded form) in float32 on the CPU, with at
least as many weight draws as torch has threads (one draw per thread; the Python loop's products use
every thread on fewer draws); the training loops to every network on the CPU.
"""

from __future__ import annotations

import torch

from memristor_mat import native


def training_module(*tensors: torch.Tensor):
    """The compiled operators for a training time loop on ``tensors`` (RecurrentSNN's
    ``_OriginalTimeLoop`` and ``_NormalisedTimeLoop``: the same ATen operations in C++, the same
    numbers for either neuron and any dtype), or None where Python's loop runs: off the CPU (the
    C++ file is built for the CPU only), under ``MEMRISTOR_MAT_NATIVE=python``, or where the
    build failed under ``auto``."""
    return native.cpu_module(*tensors)


def applies(x: torch.Tensor, weights: tuple[torch.Tensor, ...], draws: int, spiking: bool) -> bool:
    """Whether the C++ loop takes this evaluation (see the module docstring), before building it."""
    tensors = (x, *weights)
    return (spiking and draws >= torch.get_num_threads()
            and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
            and native.choice() != "python")
