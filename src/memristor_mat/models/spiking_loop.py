"""The spiking networks' time loops in C++ (``csrc/spiking_loop.cpp``): evaluation, one weight
draw at a time, and training (:func:`training_module`). Built on first use with torch's own
extension builder (:func:`torch.utils.cpp_extension.load`) and cached by it
(``TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``; concurrent jobs wait on its
lock while one builds, and a job killed while building leaves no stale lock: torch holds an
advisory lock that the system releases, checked by killing a build and starting two more).

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

``MEMRISTOR_MAT_SPIKING_LOOP`` chooses for both: ``auto`` (the default: the C++ loops where they
apply and build; if the build fails, a warning names why and the Python loops run), ``python``
(never build), ``cpp`` (the C++ loops or an error: for checking a machine). The evaluation loop
applies to spiking neurons (not the tanh twin: tanh has no exactly rounded form) in float32 on
the CPU, with at least as many weight draws as torch has threads (one draw per thread; the
Python loop's products use every thread on fewer draws); the training loops to every network on
the CPU. The build needs a C++ compiler (``c++``) and ``ninja`` (a dependency of the package).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import torch

ENVIRONMENT_VARIABLE = "MEMRISTOR_MAT_SPIKING_LOOP"
CHOICES = ("auto", "python", "cpp")
SOURCE = Path(__file__).with_name("csrc") / "spiking_loop.cpp"

# compiler flags by torch's CPU capability, which is also in the module's name: a cache shared by
# the nodes of a cluster keeps one build per instruction set (a build for AVX-512 would crash a
# node without it)
_CAPABILITY_FLAGS = {
    "AVX512": ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx2", "-mfma"],
    "AVX2": ["-mavx2", "-mfma"],
}

_module = None
_failure: str | None = None


def choice() -> str:
    """The value of ``MEMRISTOR_MAT_SPIKING_LOOP`` (``auto`` if unset)."""
    value = os.environ.get(ENVIRONMENT_VARIABLE, "auto").strip().lower() or "auto"
    if value not in CHOICES:
        raise ValueError(f"{ENVIRONMENT_VARIABLE}={os.environ[ENVIRONMENT_VARIABLE]!r}: expected one of {list(CHOICES)}")
    return value


def _openmp() -> bool:
    """Whether this torch's ``at::parallel_for`` is OpenMP's: a template in its headers, so the
    extension must then be compiled with ``-fopenmp`` to run the draws in parallel (without it,
    the pragma is ignored and the loop runs on one thread)."""
    config = Path(torch.__file__).parent / "include" / "ATen" / "Config.h"
    return config.is_file() and "#define AT_PARALLEL_OPENMP 1" in config.read_text()


def _build():
    """The compiled operators, ``torch.ops.<build name>`` (built or loaded from torch's extension
    cache)."""
    # its import warns, on a CPU-only machine with a CUDA toolkit, that no CUDA runtime is
    # found: true and irrelevant here (a C++ build), and confusing in every job's log
    cpp_extension_log = logging.getLogger("torch.utils.cpp_extension")
    level = cpp_extension_log.level
    cpp_extension_log.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        cpp_extension_log.setLevel(level)

    capability = torch.backends.cpu.get_cpu_capability()
    tag = "".join(c for c in capability.lower() if c.isalnum()) or "default"
    path = os.environ.get("PATH", "")
    try:
        try:  # the ninja of the environment, also where the environment is not activated
            import ninja

            os.environ["PATH"] = os.pathsep.join([ninja.BIN_DIR, path])
        except ImportError:
            pass
        # a library of torch operators (no Python module), loaded into the process: its operator is
        # in torch.ops under the library's name (the build's, with torch's "_v<n>" where a changed
        # source was rebuilt in the same process)
        library = cpp_extension.load(
            name=f"memristor_mat_spiking_loop_{tag}",
            sources=[str(SOURCE)],
            extra_cflags=["-O3", "-ffp-contract=off", *_CAPABILITY_FLAGS.get(capability, []),
                          *(["-fopenmp"] if _openmp() else [])],
            is_python_module=False,
            verbose=False,
        )
        return getattr(torch.ops, Path(library).stem)
    finally:
        os.environ["PATH"] = path


def module():
    """The compiled operators (``torch.ops.<build name>``), or None where
    ``MEMRISTOR_MAT_SPIKING_LOOP`` is ``python`` or the build failed under ``auto`` (warned once,
    with the reason); under ``cpp`` a failed build raises."""
    global _module, _failure
    mode = choice()
    if mode == "python":
        return None
    if _module is None and _failure is None:
        try:
            _module = _build()
        except Exception as error:  # a missing compiler or ninja, a compile error: the Python loop runs
            lines = [line for line in str(error).splitlines() if line.strip()]
            _failure = f"{type(error).__name__}: {lines[0] if lines else ''}"
            if mode == "auto":
                warnings.warn(
                    f"the C++ time loops of the spiking networks did not build ({_failure}); the Python "
                    f"loops run instead (the same numbers, slower). Set {ENVIRONMENT_VARIABLE}=python to skip "
                    "the build.", RuntimeWarning, stacklevel=3)
    if _module is None and mode == "cpp":
        raise RuntimeError(f"{ENVIRONMENT_VARIABLE}=cpp, but the C++ time loops of the spiking networks "
                           f"did not build: {_failure}")
    return _module


def training_module(*tensors: torch.Tensor):
    """The compiled operators for a training time loop on ``tensors`` (RecurrentSNN's
    ``_OriginalTimeLoop`` and ``_NormalisedTimeLoop``: the same ATen operations in C++, the same
    numbers for either neuron and any dtype), or None where Python's loop runs: off the CPU (the
    C++ file is built for the CPU only), under ``MEMRISTOR_MAT_SPIKING_LOOP=python``, or where the
    build failed under ``auto``."""
    if choice() == "python" or any(t.device.type != "cpu" for t in tensors):
        return None
    return module()


def applies(x: torch.Tensor, weights: tuple[torch.Tensor, ...], draws: int, spiking: bool) -> bool:
    """Whether the C++ loop takes this evaluation (see the module docstring), before building it."""
    tensors = (x, *weights)
    return (spiking and draws >= torch.get_num_threads()
            and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
            and choice() != "python")
