"""benchmarks/suite_time.py's parsing of /proc/stat and of pytest's durations."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from suite_time import cpu_ticks, seconds_per_file  # noqa: E402

STAT = """cpu  100 5 40 800 20 3 2 7 11 0
cpu0 50 2 20 400 10 1 1 3 5 0
intr 12345
"""


def test_busy_and_idle_ticks_from_the_summary_line():
    # idle = idle + iowait; busy = user + nice + system + irq + softirq + steal (guest is in user)
    assert cpu_ticks(STAT) == (100 + 5 + 40 + 3 + 2 + 7, 800 + 20)


def test_a_line_that_is_not_the_summary_is_refused():
    with pytest.raises(ValueError, match="summary line"):
        cpu_ticks("cpu0 1 2 3 4 5 6 7 8\n")


def test_durations_summed_per_file_over_setup_call_and_teardown():
    output = """============ slowest durations ============
129.84s call     tests/test_slurm.py::test_workflow_on_slurm[x-1]
5.82s teardown tests/test_slurm.py::test_workflow_on_slurm[x-1]
115.76s setup    tests/test_workflow.py::test_ecg_branch_end_to_end
0.5s call     tests/test_workflow.py::test_lint_is_clean
(3 durations < 0.005s hidden.  Use -vv to show these durations.)
"""
    totals = seconds_per_file(output)
    assert totals == pytest.approx({"tests/test_slurm.py": 135.66, "tests/test_workflow.py": 116.26})
