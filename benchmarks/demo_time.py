"""Where a pipeline run's time goes: reads the rules' Snakemake benchmark files and prints a table.

Every computing rule has a ``benchmark:`` file (results/benchmarks/<rule>/...tsv: wall seconds,
memory, CPU seconds of one job). This sums them per rule and per task, so a speed-up starts where
the time is. Job time includes each job's Python and torch start-up; the sum over jobs is more
than the wall time when jobs run in parallel.

    python benchmarks/demo_time.py [results/benchmarks]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def read_benchmarks(root: Path) -> pd.DataFrame:
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        relative = path.relative_to(root)
        frame = pd.read_csv(path, sep="\t")
        task = relative.parts[1] if len(relative.parts) > 2 else relative.stem.split("_figures")[0]
        rows.append({"rule": relative.parts[0], "task": task, "job": str(relative.with_suffix("")),
                     "seconds": float(frame["s"].iloc[-1]),
                     "cpu_seconds": float(frame["cpu_time"].iloc[-1]) if "cpu_time" in frame else float("nan"),
                     "max_rss_mb": float(frame["max_rss"].iloc[-1]) if "max_rss" in frame else float("nan")})
    if not rows:
        raise SystemExit(f"no benchmark files under {root}: run the pipeline first")
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?", default="results/benchmarks", type=Path)
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
    print(jobs.nlargest(8, "seconds")[["job", "seconds", "cpu_seconds"]].to_string(index=False,
                                                                                   float_format=lambda v: f"{v:.1f}"))


if __name__ == "__main__":
    main()
