"""Where a pipeline run's time goes: reads the rules' Snakemake benchmark files and prints a table.

Every computing rule has a ``benchmark:`` file (results/benchmarks/<rule>/...tsv: one job's wall
seconds, memory and CPU seconds). This sums the wall seconds per rule and per task, so a
speed-up starts where the time is. Job time includes each job's Python and torch start-up; the
sum over jobs is more than the wall time when jobs run in parallel. The files' CPU seconds and
memory are left out: Snakemake samples them every 30 s and keeps the last sample
(snakemake/snakemake#851), so a CPU-bound job of 37 s showed 15 CPU seconds.

Snakemake writes a job's benchmark file when the job ends, so the file's modification time less
its seconds is when the job started: for the files of one full run (``--forceall``) the script
also prints how well the jobs filled ``--cores`` cores, and the stretches where fewer jobs than
cores ran (a long job started late shows up there as the run's tail).

    python benchmarks/demo_time.py [results/benchmarks] [--cores 2]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd


def read_benchmarks(root: Path) -> pd.DataFrame:
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        relative = path.relative_to(root)
        frame = pd.read_csv(path, sep="\t")
        task = relative.parts[1] if len(relative.parts) > 2 else relative.stem.split("_figures")[0]
        rows.append({"rule": relative.parts[0], "task": task, "job": str(relative.with_suffix("")),
                     "seconds": float(frame["s"].iloc[-1]), "end": path.stat().st_mtime})
    if not rows:
        raise SystemExit(f"no benchmark files under {root}: run the pipeline first")
    return pd.DataFrame(rows)


def underfilled(jobs: pd.DataFrame, cores: int) -> list[tuple[float, float, list[str]]]:
    """The stretches (start, end, jobs running) of the run, in seconds from its first job's start,
    during which fewer than ``cores`` jobs ran (one thread each)."""
    start = jobs["end"] - jobs["seconds"]
    t0 = start.min()
    events = sorted({*(start - t0), *(jobs["end"] - t0)})
    stretches = []
    for left, right in zip(events, events[1:]):
        middle = t0 + (left + right) / 2
        running = jobs.loc[(start <= middle) & (jobs["end"] > middle), "job"].tolist()
        if len(running) < cores:
            if stretches and stretches[-1][1] == left and stretches[-1][2] == running:
                stretches[-1] = (stretches[-1][0], right, running)
            else:
                stretches.append((left, right, running))
    return stretches


def print_timeline(jobs: pd.DataFrame, cores: int) -> None:
    span = jobs["end"].max() - (jobs["end"] - jobs["seconds"]).min()
    busy = jobs["seconds"].sum()
    print("\ntimeline (job start = its benchmark file's time less its seconds; the files of one full run assumed)\n")
    print(f"  first job's start to last job's end {span:.0f} s; on {cores} cores {busy / (cores * span):.0%} of the "
          f"core-seconds ran jobs, {cores * span - busy:.0f} core-seconds did not")
    stretches = [s for s in underfilled(jobs, cores) if s[1] - s[0] >= 1]
    for left, right, running in stretches:
        print(f"  {left:6.0f} - {right:6.0f} s: {len(running)} of {cores} cores busy"
              + (f" ({', '.join(running)})" if running else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?", default="results/benchmarks", type=Path)
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="the run's --cores (default: this machine's)")
    args = parser.parse_args()
    jobs = read_benchmarks(args.root)
    total = jobs["seconds"].sum()
    by_rule = jobs.groupby("rule")["seconds"].agg(jobs="size", total="sum", mean="mean", max="max")
    by_rule["share"] = by_rule["total"] / total
    print(f"{len(jobs)} jobs, {total:.0f} s of job time in all\n")
    print(by_rule.sort_values("total", ascending=False).to_string(float_format=lambda v: f"{v:.2f}"))
    by_task = jobs.pivot_table(index="task", columns="rule", values="seconds", aggfunc="sum", fill_value=0.0)
    by_task["total"] = by_task.sum(axis=1)
    print("\njob seconds by task and rule\n")
    print(by_task.sort_values("total", ascending=False).to_string(float_format=lambda v: f"{v:.1f}"))
    print("\nslowest jobs\n")
    print(jobs.nlargest(8, "seconds")[["job", "seconds"]].to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    print_timeline(jobs, args.cores)


if __name__ == "__main__":
    main()
