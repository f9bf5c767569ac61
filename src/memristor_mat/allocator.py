"""The C library's heap: a job keeps the memory it frees for its next allocation.

A job allocates and frees the same large buffers over and over: every Monte-Carlo draw's
activations, every batch's. glibc's ``malloc`` gives a block above its mmap threshold (128 KiB at
first, raised as such blocks are freed, to at most 32 MiB) a mapping of its own and unmaps it on
``free``, and returns the heap's top to the kernel once more than its trim threshold is free
there (mallopt(3)). The next block of that size then touches new pages: a page fault for every 4
KiB, each page zeroed by the kernel. On this project's 2-core VMs a minor fault costs 1.0-2.4
us, more than the arithmetic on the page's 1,024 floats: the CIFAR stand-in's MobileNetV2 took
16.2 ms a forward pass of 125 images with 2,970 faults, 9.1 ms with 6, on an AMD EPYC Zen 3, and
9.6-10.6 ms against 6.8-7.2 on an Intel Xeon (benchmarks/README.md, "Freed memory kept in the
process").

:func:`retain_freed_memory` sets ``M_MMAP_MAX`` to 0 (every block from the heap) and
``M_TRIM_THRESHOLD`` to -1 (the heap is never trimmed), both documented in mallopt(3): what the
process frees serves its next allocations, without faults. A job's peak memory stays about the
same (the demo's heavy jobs' maximum resident sizes within 7 %), held until the job ends; the
rules' ``mem_mb`` already count that peak. The numbers do not change: torch aligns every tensor
to 64 bytes wherever ``malloc`` places it.

Only glibc has these settings; on other C libraries (macOS, musl) nothing changes.
``MEMRISTOR_MAT_RETAIN_MEMORY=0`` keeps glibc's own behaviour (to compare: the benchmarks honour
it too).
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

log = logging.getLogger(__name__)

ENVIRONMENT_VARIABLE = "MEMRISTOR_MAT_RETAIN_MEMORY"

#: mallopt(3)'s parameters, as glibc's <malloc.h> numbers them
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4

_retained: bool | None = None  # what the first call did: the setting holds for the whole process


def enabled() -> bool:
    """Whether ``MEMRISTOR_MAT_RETAIN_MEMORY`` asks for it (unset or ``1``; ``0`` does not)."""
    value = os.environ.get(ENVIRONMENT_VARIABLE, "1").strip()
    if value not in ("0", "1"):
        raise ValueError(f"{ENVIRONMENT_VARIABLE}={value!r}: expected 1 (keep freed memory in the process, the "
                         f"default) or 0 (glibc's own behaviour)")
    return value == "1"


def retain_freed_memory() -> bool:
    """Make glibc's ``malloc`` keep freed memory in the process for the rest of its life (see the
    module's text). True where it now does; False where ``MEMRISTOR_MAT_RETAIN_MEMORY=0`` or the
    C library is not glibc. The first call decides; later calls return its answer."""
    global _retained
    if _retained is not None:
        return _retained
    if not enabled() or platform.libc_ver()[0] != "glibc":
        _retained = False
        return _retained
    mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # mallopt returns 1 on success
    _retained = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, -1) == 1
    if not _retained:
        log.warning("glibc's mallopt refused to keep freed memory in the process; its defaults stay")
    return _retained
