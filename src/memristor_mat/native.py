"""The package's operators in C++ (``csrc/*.cpp``), one library built by ``make install``
(:func:`build`, ``memristor-mat build-native``) or else on first use, with torch's own extension
builder (:func:`torch.utils.cpp_extension.load`), and cached by it (``TORCH_EXTENSIONS_DIR``, by
default ``~/.cache/torch_extensions``): one build per instruction set and per content of the
sources, flags and torch (:func:`_staged_sources` says why), so checkouts and venvs that share the
cache never rebuild each other's. Concurrent jobs wait on torch's lock while one builds, and a job
killed while building leaves no stale lock: torch holds an advisory lock that the system releases,
checked by killing a build and starting two more.

What is in it, each giving the numbers of the torch code it replaces:

- ``csrc/spiking_loop.cpp``: the spiking networks' time loops, for evaluation and training
  (:mod:`memristor_mat.models.spiking_loop` says why and where they apply);
- ``csrc/statistics.cpp``: the sums behind the clipping's standard deviation, and the clipping in
  one call (:mod:`memristor_mat.statistics`, :func:`memristor_mat.training.clip_weights`);
- ``csrc/normals.cpp``: ``torch.randn``'s float32 normals from the generator's own state
  (:mod:`memristor_mat.normals`, which checks them against torch's before it uses them);
- ``csrc/adam.cpp``: ``torch.optim.Adam``'s default update of float32 tensors, a step's in one call
  (:mod:`memristor_mat.optim`, which checks it against torch's before it uses it);
- ``csrc/gaussian_noise.cpp``: the study's Gaussian weight noise applied to a model's float32
  tensors in one call, with an identity gradient (:mod:`memristor_mat.noise.gaussian`, which checks
  it against torch's expression before it uses it).
- ``csrc/quantization.cpp``: QAT's quantisation of a float32 tensor to its levels in one pass
  (:func:`memristor_mat.quantization.quantize`; comparisons and copies, so torch's numbers however
  it is compiled).

Where the numbers rest on how torch's build compiled its kernels (which multiply-adds its compiler
fused: the normals, Adam's update, the noisy weights, the spiking evaluation loop's updates) or on
how its BLAS sums (the spiking loop's readout), :class:`Agreement` checks the library against
torch once per process before it is used, and torch's code runs where they differ.

``MEMRISTOR_MAT_NATIVE`` chooses for all of them: ``auto`` (the default: the C++ operators where
they apply and build; if the build fails, a warning names why and the torch/Python code runs, with
the same numbers), ``python`` (never build), ``cpp`` (the C++ operators or an error: for checking a
machine). Its name until 2026-12-06, ``MEMRISTOR_MAT_SPIKING_LOOP``, is still read where the new
one is not set. The build needs a C++ compiler (``c++``) and ``ninja`` (a dependency of the
package).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import torch

ENVIRONMENT_VARIABLE = "MEMRISTOR_MAT_NATIVE"
# the variable's name while the library held the spiking loops alone: a profile or script that sets
# it keeps its meaning
FORMER_ENVIRONMENT_VARIABLE = "MEMRISTOR_MAT_SPIKING_LOOP"
CHOICES = ("auto", "python", "cpp")
SOURCES = tuple(sorted((Path(__file__).parent / "csrc").glob("*.cpp")))

# compiler flags by torch's CPU capability, which is also in the library's name: a cache shared by
# the nodes of a cluster keeps one build per instruction set (a build for AVX-512 would crash a
# node without it)
_CAPABILITY_FLAGS = {
    "AVX512": ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx2", "-mfma"],
    "AVX2": ["-mavx2", "-mfma"],
}

_module = None
_failure: str | None = None


class BuildError(RuntimeError):
    """The library did not build under ``MEMRISTOR_MAT_NATIVE=cpp``."""


def _setting() -> tuple[str | None, str | None]:
    """(the variable that chooses, its value): the current name, else the former one, else Nones."""
    value = os.environ.get(ENVIRONMENT_VARIABLE)
    if value is not None:
        return ENVIRONMENT_VARIABLE, value
    value = os.environ.get(FORMER_ENVIRONMENT_VARIABLE)
    return (FORMER_ENVIRONMENT_VARIABLE, value) if value is not None else (None, None)


# Every call of the library asks for the choice (a training step of the MLP four to eight times), and
# os.environ.get is four Python-level calls (Mapping.get, __getitem__, encoding the key, decoding the
# value): under a microsecond in a loop, but 10-20 us inside a training step, whose other passes have
# pushed that code out of the caches; a training step of the MLP, vanilla or MAT, was 2.7-3.5 %
# shorter with the reading below (benchmarks/choice_read.py). Where CPython's os.environ keeps its
# encoded entries in a dictionary (``_data``; every change through os.environ goes there),
# :func:`choice` reads the two entries from it and parses them again only when either is another object
# than at the last call: the same answer as reading os.environ each time.
_ENCODED_NAMES = ((os.environ.encodekey(ENVIRONMENT_VARIABLE), os.environ.encodekey(FORMER_ENVIRONMENT_VARIABLE))
                  if hasattr(os.environ, "encodekey") else None)
_last_choice: tuple[object, object, str] | None = None  # (raw value, raw former value, the choice)


def choice() -> str:
    """The value of ``MEMRISTOR_MAT_NATIVE`` (or of its former name; ``auto`` if neither is set)."""
    global _last_choice
    entries = getattr(os.environ, "_data", None)  # looked up each time: os.environ may be replaced
    if _ENCODED_NAMES is None or type(entries) is not dict:
        return _parsed_choice()
    current, former = entries.get(_ENCODED_NAMES[0]), entries.get(_ENCODED_NAMES[1])
    last = _last_choice
    if last is not None and last[0] is current and last[1] is former:
        return last[2]
    chosen = _parsed_choice()  # raises for a bad value, every time it is asked
    _last_choice = (current, former, chosen)
    return chosen


def _parsed_choice() -> str:
    name, value = _setting()
    if value is None:
        return "auto"
    chosen = value.strip().lower() or "auto"
    if chosen not in CHOICES:
        raise ValueError(f"{name}={value!r}: expected one of {list(CHOICES)}")
    return chosen


def _openmp() -> bool:
    """Whether this torch's ``at::parallel_for`` is OpenMP's: a template in its headers, so the
    library must then be compiled with ``-fopenmp`` to run the draws in parallel (without it,
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
    # -fno-trapping-math (torch's own build has it): GCC may then compute both sides of a selection
    # and pick one, which vectorises the spiking loops' row updates on AVX2 and older builds
    # (without it only AVX-512's masked instructions did); it changes no value
    flags = ["-O3", "-ffp-contract=off", "-fno-trapping-math", *_CAPABILITY_FLAGS.get(capability, []),
             *(["-fopenmp"] if _openmp() else [])]
    name = f"memristor_mat_native_{tag}_{_digest(flags)}"
    sources = _staged_sources(Path(cpp_extension._get_build_directory(name, False)))
    path = os.environ.get("PATH", "")
    try:
        try:  # the ninja of the environment, also where the environment is not activated
            import ninja

            os.environ["PATH"] = os.pathsep.join([ninja.BIN_DIR, path])
        except ImportError:
            pass
        # a library of torch operators (no Python module), loaded into the process: its operators
        # are in torch.ops under the library's name
        library = cpp_extension.load(name=name, sources=[str(source) for source in sources], extra_cflags=flags,
                                     is_python_module=False, verbose=False)
        return getattr(torch.ops, Path(library).stem)
    finally:
        os.environ["PATH"] = path


def _digest(flags: list[str]) -> str:
    """What names a build: the sources' contents, the flags, the torch that compiles them and where
    it is installed (its headers' path is in every compile command)."""
    digest = hashlib.sha256()
    for part in (*(f"{source.name}\0".encode() + source.read_bytes() for source in SOURCES),
                 " ".join(flags).encode(), torch.__version__.encode(), torch.__file__.encode()):
        digest.update(len(part).to_bytes(8, "little") + part)
    return digest.hexdigest()[:12]


def _staged_sources(build_directory: Path) -> list[Path]:
    """The sources, copied into ``build_directory`` (one per :func:`_digest`), from which the
    library is built.

    Why not build from the package's own files: torch's builder writes their paths into its ninja
    file, and ninja recompiles when a command changes, so two checkouts (or two venvs) that shared
    an extension cache rebuilt the library each time the other had built it (14-16 s, in a job),
    and a build from a copy of the package in a test's folder would rebuild it again. From a copy
    whose path is named by what is in it, every checkout with the same sources builds once; one
    with other sources builds its own, beside it. A copy is put in place whole (a hard link of a
    finished file): a process never compiles a half-written one.
    """
    staged = build_directory / "csrc"
    staged.mkdir(parents=True, exist_ok=True)
    copies = []
    for source in SOURCES:
        copy = staged / source.name
        content = source.read_bytes()
        if not copy.is_file() or copy.read_bytes() != content:  # absent, or changed by hand: put back
            handle, temporary = tempfile.mkstemp(dir=staged, prefix=f".{source.name}.")
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(content)
                try:
                    os.link(temporary, copy)  # another process's identical copy may be there first
                except FileExistsError:
                    if copy.read_bytes() != content:
                        os.replace(temporary, copy)
                except OSError:  # a file system without hard links: a rename is as whole
                    os.replace(temporary, copy)
            finally:
                if os.path.exists(temporary):
                    os.unlink(temporary)
        copies.append(copy)
    return copies


def build() -> str:
    """Build the library now (or load it from torch's extension cache) and say what happened: what
    ``make install`` runs, so that the build (14-16 s on a 2-core VM, once per machine and
    instruction set) is not paid by the first training job of a demo or by the tests. Under
    ``auto`` a failed build is reported, not raised (the package runs without the library); under
    ``cpp`` it raises; under ``python`` nothing is built."""
    mode = choice()
    if mode == "python":
        return f"{_setting()[0]}=python: the C++ operators are not built; torch's and Python's code runs"
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the failure is reported below, once
        compiled = _loaded(mode)
    if compiled is None:
        return (f"the C++ operators did not build ({_failure}); torch's and Python's code runs instead (the same "
                f"numbers, slower)")
    cache = os.environ.get("TORCH_EXTENSIONS_DIR") or "torch's default (~/.cache/torch_extensions)"
    return (f"the C++ operators are built: torch.ops.{compiled.name} ({time.perf_counter() - start:.1f} s, "
            f"built or loaded from the extension cache in {cache})")


def module():
    """The compiled operators (``torch.ops.<build name>``), or None where ``MEMRISTOR_MAT_NATIVE``
    is ``python`` or the build failed under ``auto`` (warned once, with the reason); under ``cpp``
    a failed build raises."""
    return _loaded(choice())


def _loaded(mode: str):
    """:func:`module` under ``mode``."""
    global _module, _failure
    if mode == "python":
        return None
    if _module is None and _failure is None:
        try:
            _module = _build()
        except Exception as error:  # a missing compiler or ninja, a compile error: torch's code runs
            _failure = _reason(error)
            if mode == "auto":
                warnings.warn(
                    f"the package's C++ operators (the spiking networks' time loops, the clipping's sums, the "
                    f"noise's normals, Adam's update, the Gaussian weight noise, QAT's quantisation) did not build "
                    f"({_failure}); torch's and Python's code runs instead (the same numbers, slower). Set "
                    f"{ENVIRONMENT_VARIABLE}=python to skip the build.",
                    RuntimeWarning,
                    stacklevel=3)
    if _module is None and mode == "cpp":
        raise BuildError(f"{_setting()[0]}=cpp, but the package's C++ operators did not build: {_failure}")
    return _module


class Agreement:
    """Whether the library's version of one of torch's computations gives torch's numbers on this
    machine (:mod:`memristor_mat.normals`: ``torch.randn``; :mod:`memristor_mat.optim`: Adam's
    update; :mod:`memristor_mat.noise.gaussian`: the noisy weights;
    :mod:`memristor_mat.models.spiking_loop`: the evaluation loop's updates, tanh and readout),
    where they rest on how torch's build compiled its kernels or how its BLAS sums:
    ``disagreement(compiled)`` says why not (None: it does), run once per loaded library and
    logged where it does not. ``fallback`` says what runs instead (e.g.
    "torch.randn draws the normals")."""

    def __init__(self, disagreement: Callable[[object], str | None], fallback: str, logger: logging.Logger) -> None:
        self.disagreement = disagreement
        self.fallback = fallback
        self.logger = logger
        self.reasons: dict[int, str | None] = {}  # id of the loaded library -> its disagreement

    def reason(self, compiled) -> str | None:
        """:attr:`disagreement` of ``compiled``, checked once per loaded library."""
        key = id(compiled)
        if key not in self.reasons:
            reason = self.reasons[key] = self.disagreement(compiled)
            if reason is not None:
                self.logger.info("%s: the C++ library's would not be the same numbers here (%s)", self.fallback, reason)
        return self.reasons[key]

    def library(self):
        """The C++ library where it agrees with torch here, else None."""
        compiled = cpu_module()
        if compiled is None:
            return None
        key = id(compiled)
        reason = self.reasons[key] if key in self.reasons else self.reason(compiled)  # checked once
        return compiled if reason is None else None

    def report(self, agreeing: str) -> str:
        """Who computes it in this process, and why (for ``memristor-mat build-native``):
        ``agreeing`` where the library does."""
        compiled = cpu_module()
        if compiled is None:
            return f"{self.fallback} (the C++ library is not in use)"
        reason = self.reason(compiled)
        if reason is not None:
            return f"{self.fallback}: the C++ library's would not be the same numbers here ({reason})"
        return agreeing


def _reason(error: Exception) -> str:
    """What failed, in one line: the error's first line, or where the compiler ran and failed, the
    first of its errors (torch's message goes on with ninja's whole compile command)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    compiler = next((line for line in lines[1:] if "error:" in line), None)
    if compiler is not None:
        return f"{type(error).__name__}: {lines[0].split(':')[0]}: {compiler}"
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def cpu_module(*tensors: torch.Tensor):
    """The compiled operators for work on ``tensors``, or None where torch's code runs: off the
    CPU (the library is built for the CPU only), under ``MEMRISTOR_MAT_NATIVE=python``, or where
    the build failed under ``auto``."""
    mode = choice()
    if mode == "python" or (tensors and any(t.device.type != "cpu" for t in tensors)):
        return None
    # the loaded library without another Python call: each is dear inside a training step (choice())
    return _module if _module is not None else _loaded(mode)
