"""Where `make test`'s time goes: runs the test suite once and prints a table, asserts nothing.

The suite is bound by the CPU on 2 cores (its end-to-end tests run Snakemake with `--cores 2`
beside the other xdist worker), so its wall time follows the CPU seconds it needs, not the test
order: this prints the wall time, the machine's busy and idle core-seconds over the run (Linux'
``/proc/stat``; anything else running on the machine counts too, so run it on a quiet one) and the
test time per file, summed from pytest's ``--durations`` (set-up, call and teardown; seconds
under the run's contention, so a file's share, not what it takes alone).

    python benchmarks/suite_time.py [--workers auto] [--top 15] [-- extra pytest arguments]

The pytest command is the one `make test` runs (`-n auto --maxprocesses 4`), with every duration
reported and pytest's cache left alone.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROC_STAT = Path("/proc/stat")
#: /proc/stat's first line: user nice system idle iowait irq softirq steal (guest time is in user)
_IDLE_FIELDS = (3, 4)
_SUMMED_FIELDS = 8
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s (setup|call|teardown)\s+(\S+?)::", re.MULTILINE)


def cpu_ticks(stat_text: str) -> tuple[int, int]:
    """(busy, idle) clock ticks since boot, all cores, from the text of /proc/stat."""
    fields = stat_text.splitlines()[0].split()
    if fields[0] != "cpu":
        raise ValueError(f"not /proc/stat's summary line: {fields[0]!r}")
    values = [int(v) for v in fields[1:1 + _SUMMED_FIELDS]]
    idle = sum(values[i] for i in _IDLE_FIELDS)
    return sum(values) - idle, idle


def seconds_per_file(pytest_output: str) -> dict[str, float]:
    """Test seconds per test file, summed over pytest's ``--durations`` lines."""
    totals: dict[str, float] = defaultdict(float)
    for seconds, _, path in _DURATION.findall(pytest_output):
        totals[path] += float(seconds)
    return dict(totals)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="auto", help="pytest-xdist workers (-n), as `make test`")
    parser.add_argument("--top", type=int, default=15, help="test files to list")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args(argv)
    if not PROC_STAT.is_file():
        sys.exit("suite_time.py reads the machine's CPU time from /proc/stat: Linux only")
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    command = [sys.executable, "-m", "pytest", "-n", args.workers, "--maxprocesses", "4", "--durations=0",
               "-q", "-p", "no:cacheprovider", *args.pytest_args]
    busy_before, idle_before = cpu_ticks(PROC_STAT.read_text())
    start = time.monotonic()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall = time.monotonic() - start
    busy_after, idle_after = cpu_ticks(PROC_STAT.read_text())
    busy = (busy_after - busy_before) / ticks_per_second
    idle = (idle_after - idle_before) / ticks_per_second
    output = result.stdout + result.stderr
    summary = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    print(f"pytest: {summary[-1].strip('= ') if summary else 'no summary (exit code ' + str(result.returncode) + ')'}")
    print(f"wall {wall:.0f} s; the machine's cores busy {busy:.0f} core-s, idle {idle:.0f} core-s "
          f"({100 * idle / max(busy + idle, 1e-9):.1f} % idle)")
    files = sorted(seconds_per_file(output).items(), key=lambda item: -item[1])
    total = sum(seconds for _, seconds in files)
    print(f"\ntest seconds per file (under the run's contention; {total:.0f} s in all):")
    for path, seconds in files[:args.top]:
        print(f"{seconds:8.1f} s  {100 * seconds / total:5.1f} %  {path}")
    if result.returncode != 0:
        print("\npytest failed; its last lines:\n" + "\n".join(output.splitlines()[-15:]))
        sys.exit(result.returncode)


if __name__ == "__main__":
    main()
