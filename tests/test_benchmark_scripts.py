"""Every script under benchmarks/ imports (its names from the library and from its neighbours
still exist) and has its entry point: the benchmarks run by hand, rarely, so a rename in the
library would otherwise break one unseen (qat_levels.py once imported a name paper_scale.py no
longer had). What they print is theirs; the scripts with tests of their own
(test_demo_time.py, test_gpu_check.py, test_paper_scale.py) are checked further there."""

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(path.stem for path in BENCHMARKS.glob("*.py"))
HELPERS = {"timing"}  # imported by the others, not run


def test_the_benchmarks_folder_is_found():
    assert {"bench_mlp", "bench_snn", "qat_levels", "paper_scale", "timing"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_script_imports_and_has_its_entry_point(name, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # they import their neighbours
    loaded_before = set(sys.modules)
    try:
        module = importlib.import_module(name)
        if name not in HELPERS:
            assert callable(getattr(module, "main", None)), f"benchmarks/{name}.py has no main()"
            assert 'if __name__ == "__main__":' in (BENCHMARKS / f"{name}.py").read_text()
    finally:
        for neighbour in set(SCRIPTS) & (set(sys.modules) - loaded_before):
            sys.modules.pop(neighbour, None)


def test_interval_coverage_runs_and_reports_both_rules(monkeypatch, capsys):
    # a short run: one line per design with both rules' coverage, then the lowest of each; the
    # pooled reference is the summaries' rule before 2026-12-06, written out in the script
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module("interval_coverage")
    try:
        monkeypatch.setattr(sys, "argv", ["interval_coverage.py", "--studies", "40"])
        module.main()
    finally:
        sys.modules.pop("interval_coverage", None)
    lines = capsys.readouterr().out.splitlines()
    rows = lines[2:-1]  # after the two header lines
    assert len(rows) == len(module.DESIGNS) * len(module.SDS)
    assert all(line.count("%") == 2 for line in rows)
    assert lines[-1].startswith("lowest coverage: pooled ")


def test_job_overhead_counts_snakemakes_benchmark_samples(monkeypatch):
    # Snakemake samples a job at its start, every 0.5 s until 30 samples, then every 30 s
    # (snakemake.benchmark): the count that prices its sampling per job
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module("job_overhead")
    try:
        counts = {seconds: module.samples_in(seconds) for seconds in (0, 0.4, 0.5, 14.75, 15, 44.9, 45, 100)}
    finally:
        sys.modules.pop("job_overhead", None)
        sys.modules.pop("demo_time", None)
    assert counts == {0: 1, 0.4: 1, 0.5: 2, 14.75: 30, 15: 31, 44.9: 31, 45: 32, 100: 32 + 1}
