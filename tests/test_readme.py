"""README.md's shell blocks, run as written: a README whose commands drift from the code fails.

Every command of every ```bash block is run from the repository root with a PATH that lacks the
venv (as for a user who has not activated it). Commands that would train for hours run as dry
runs (`make -n`, `snakemake -n`); the single-run CLI block runs for real on a shrunk copy of the
demo config and a temporary folder instead of /tmp."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def readme_commands() -> list[str]:
    """Each command of README.md's bash blocks: continuation lines joined, comments dropped."""
    blocks = re.findall(r"^```bash\n(.*?)^```", (REPO / "README.md").read_text(), re.MULTILINE | re.DOTALL)
    commands = []
    for block in blocks:
        for command in block.replace("\\\n", " ").splitlines():
            command = command.split("#", 1)[0].strip()
            if command:
                commands.append(" ".join(command.split()))
    return commands


def environment() -> dict:
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p and Path(p) != VENV_BIN)
    return {**os.environ, "PATH": path}


def run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=REPO, env=environment(), capture_output=True, text=True, timeout=600)


def test_readme_has_the_commands_this_test_knows_how_to_run():
    commands = readme_commands()
    assert "make demo" in commands and "make test" in commands
    kinds = {shlex.split(c)[0] for c in commands}
    assert kinds <= {"make", ".venv/bin/snakemake", ".venv/bin/memristor-mat"}, kinds


@pytest.mark.parametrize("command", [c for c in readme_commands() if c.startswith("make ")])
def test_make_targets_exist(command):
    result = run(["make", "-n", *shlex.split(command)[1:]])
    assert result.returncode == 0, result.stderr
    assert "snakemake" in result.stdout or "pytest" in result.stdout


@pytest.mark.parametrize("command", [c for c in readme_commands() if c.startswith(".venv/bin/snakemake")])
def test_snakemake_commands_dry_run(command):
    result = run([*shlex.split(command), "-n"])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Job stats" in result.stdout + result.stderr


def test_single_run_cli_block_runs(tmp_path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    task = config["tasks"]["mnist"]
    task["training"]["epochs"] = 1
    task["methods"]["mat"]["training"]["epochs"] = 1
    config["tasks"] = {"mnist": task}
    config["comparisons"] = {}
    config["evaluation"].update(draws=2, sigma_inference=[0, 0.1])
    shrunk = tmp_path / "config.yaml"
    shrunk.write_text(yaml.safe_dump(config))
    cli = [c for c in readme_commands() if c.startswith(".venv/bin/memristor-mat")]
    assert len(cli) == 8
    printed = {}
    for command in cli:
        argv = [str(tmp_path) + a[len("/tmp"):] if a.startswith("/tmp/") else a for a in shlex.split(command)]
        argv = [str(shrunk) if a == "config.yaml" else a for a in argv]
        result = run(argv)
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
        printed[shlex.split(command)[1]] = result.stdout
    # the plan of the paired difference: one model per configuration, so no model term
    assert "se 5 x 100" in printed["precision"] and "se 5 x 400" in printed["precision"]
    assert (tmp_path / "mat.parquet").stat().st_size > 0
    # the summarised tables: MAT paired with vanilla of the same seed on the same draws
    paired = pd.read_csv(tmp_path / "tables" / "paired_differences.csv")
    assert set(paired["method"]) == {"mat"} and set(paired["noise_level_pct"]) == {0.0, 10.0}
    assert (paired["n_models"] == 1).all() and list(paired["n_draws"]) == [1, 2]
    summary = pd.read_csv(tmp_path / "tables" / "summary.csv")
    assert set(summary["method"]) == {"vanilla", "mat"}
