"""Freed memory kept in the process (memristor_mat.allocator): no page faults when a job allocates
again what it freed, and glibc's own behaviour where asked."""

import json
import os
import platform
import subprocess
import sys

import pytest

from memristor_mat import allocator

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

# A 40 MiB block, above glibc's largest mmap threshold (32 MiB): by default each one is a fresh
# mapping, every page of it faulted in when written, and unmapped when freed.
PROBE = """
import json, resource
import numpy as np
from memristor_mat.allocator import retain_freed_memory

retained = retain_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
block = np.ones(5 * 2**20); del block  # the first one faults wherever it comes from
start = faults()
for _ in range(5):
    block = np.ones(5 * 2**20)  # 40 MiB of float64, every page written
    del block
print(json.dumps({"retained": retained, "faults": faults() - start}))
"""

PAGES = 5 * (40 * 2**20 // 4096)  # the five blocks' pages


def probe(value):
    env = {key: item for key, item in os.environ.items() if key != allocator.ENVIRONMENT_VARIABLE}
    env["NUMPY_MADVISE_HUGEPAGE"] = "0"  # numpy's own huge pages would fault once per 2 MiB; torch's are 4 KiB
    if value is not None:
        env[allocator.ENVIRONMENT_VARIABLE] = value
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@glibc
def test_freed_blocks_are_reused_without_page_faults():
    kept = probe(None)  # the default
    assert kept["retained"] is True
    assert kept["faults"] < PAGES // 50
    # glibc's own behaviour, the same process otherwise: every page of every block faults again
    default = probe("0")
    assert default["retained"] is False
    assert default["faults"] > PAGES * 0.9


def test_other_c_libraries_are_left_alone(monkeypatch):
    monkeypatch.setattr(allocator, "_retained", None)
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("", ""))
    monkeypatch.delenv(allocator.ENVIRONMENT_VARIABLE, raising=False)
    assert allocator.retain_freed_memory() is False
    assert allocator.retain_freed_memory() is False  # the first call decides


def test_a_bad_setting_is_named(monkeypatch):
    monkeypatch.setattr(allocator, "_retained", None)
    monkeypatch.setenv(allocator.ENVIRONMENT_VARIABLE, "yes")
    with pytest.raises(ValueError, match="MEMRISTOR_MAT_RETAIN_MEMORY='yes'"):
        allocator.retain_freed_memory()
