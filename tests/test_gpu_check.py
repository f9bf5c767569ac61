"""benchmarks/gpu_check.py, the one-run check of every CUDA path, runs its CPU fallback here so
that it works the day a GPU machine runs it; without CUDA and without the flag it does nothing."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"

pytestmark = pytest.mark.slow


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=900)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine runs the real checks")
def test_without_cuda_it_says_so_and_exits_cleanly():
    result = run()
    assert result.returncode == 0 and "no CUDA device here" in result.stdout


def test_cpu_fallback_passes_every_check():
    result = run("--cpu-fallback")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert len(lines) == 7 and all(line.startswith("PASS") for line in lines), result.stdout
    assert "7 of 7 checks passed" in result.stdout
