"""benchmarks/demo_time.py on benchmark files written here: the per-rule table and the timeline
it reads from the files' times (a job's benchmark file is written when the job ends)."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "demo_time.py"


def write_job(root: Path, job: str, seconds: float, ends_at: float) -> None:
    path = root / f"{job}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"s\th:m:s\tmax_rss\tcpu_time\n{seconds}\t0:00:{int(seconds):02d}\t100.0\t{seconds}\n")
    os.utime(path, (ends_at, ends_at))


def test_the_timeline_finds_where_a_core_stood_idle(tmp_path):
    start = 1_700_000_000.0
    # on 2 cores: a 10 s training from 0 s; a 4 s evaluation from 0 s; a 4 s figure from 6 s:
    # between 4 and 6 s only the training ran
    write_job(tmp_path, "train/mnist/all_methods/all_models", 10, start + 10)
    write_job(tmp_path, "evaluate/ecg/all_methods/all_models", 4, start + 4)
    write_job(tmp_path, "figures/ecg", 4, start + 10)
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--cores", "2"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "3 jobs, 18 s of job time in all" in out
    assert "first job's start to last job's end 10 s; on 2 cores 90% of the core-seconds ran jobs, " \
           "2 core-seconds did not" in out
    [stretch] = [line for line in out.splitlines() if "cores busy" in line]
    assert stretch.split() == ["4", "-", "6", "s:", "1", "of", "2", "cores", "busy",
                               "(train/mnist/all_methods/all_models)"]
