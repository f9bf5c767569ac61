"""benchmarks/gpu_check.py, the one-run check of every CUDA path, runs its CPU fallback here so
that it works the day a GPU machine runs it; without CUDA and without the flag it does nothing.
It runs as a GPU machine runs it: through benchmarks/gpu_machine.sh's ``check``, which installs
the carried wheels into a folder on PYTHONPATH and runs the check from the checkout's src/."""

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
MACHINE = REPO / "benchmarks" / "gpu_machine.sh"

pytestmark = pytest.mark.slow


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=900)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine runs the real checks")
def test_without_cuda_it_says_so_and_exits_cleanly():
    result = run()
    assert result.returncode == 0 and "no CUDA device here" in result.stdout


def probe_wheel(folder: Path) -> Path:
    """A wheel of one tiny module, in the real format (pip installs it): what the carried folder
    holds in place of the image's missing packages, which this environment already has."""
    files = {"gpu_machine_probe.py": b"CARRIED = True\n",
             "gpu_machine_probe-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: gpu-machine-probe\nVersion: 1.0\n",
             "gpu_machine_probe-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
                                                      b"Tag: py3-none-any\n"}
    record = [f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
              f"{len(data)}" for name, data in files.items()]
    files["gpu_machine_probe-1.0.dist-info/RECORD"] = ("\n".join(record + ["gpu_machine_probe-1.0.dist-info/RECORD,,"])
                                                       + "\n").encode()
    folder.mkdir()
    wheel = folder / "gpu_machine_probe-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel


def machine(*args, **env):
    return subprocess.run(["bash", str(MACHINE), *args], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHON": sys.executable, **env})


def test_cpu_fallback_passes_every_check_as_a_gpu_machine_runs_it(tmp_path):
    probe_wheel(tmp_path / "wheels")
    site, out = tmp_path / "site", tmp_path / "out"
    result = machine("check", "--cpu-fallback", GPU_MACHINE_WHEELS=str(tmp_path / "wheels"),
                     GPU_MACHINE_SITE=str(site), OUT=str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (site / "gpu_machine_probe.py").is_file()  # the carried wheels installed into their folder
    log = (out / "gpu_check.log").read_text()
    assert log in result.stdout  # everything printed is in the log that comes back
    lines = [line for line in log.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert len(lines) == 7 and all(line.startswith("PASS") for line in lines), log
    assert "7 of 7 checks passed" in log
    assert f"torch {torch.__version__}, CUDA" in log and "the C++ operators" in log


def test_a_gpu_machine_without_the_carried_wheels_is_told_how_to_get_them(tmp_path):
    result = machine("check", GPU_MACHINE_WHEELS=str(tmp_path / "missing"), OUT=str(tmp_path / "out"))
    assert result.returncode == 2
    assert "gpu_machine.sh wheels" in result.stderr and "carry" in result.stderr
    usage = machine()
    assert usage.returncode == 2 and usage.stderr.startswith("usage:")
