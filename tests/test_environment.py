"""The pinned environments agree with each other and with the package metadata, and the
documented entry points (`make test`, `make demo`) are the ones CI and the README use."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "envs" / "requirements.txt"
CONDA_ENV = REPO / "envs" / "environment.yaml"
PYPROJECT = REPO / "pyproject.toml"

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9.+!_-]+)$")
NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(lines, source: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in lines:
        line = str(raw).split("#", 1)[0].strip()
        if not line:
            continue
        match = PIN.match(line)
        assert match, f"{source}: {line!r} is not pinned as name==version"
        name = normalise(match.group(1))
        assert name not in pins, f"{source}: {name} is listed twice"
        pins[name] = match.group(2)
    return pins


def requirements_pins() -> dict[str, str]:
    return parse_pins(REQUIREMENTS.read_text().splitlines(), str(REQUIREMENTS))


def conda_pip_pins() -> dict[str, str]:
    environment = yaml.safe_load(CONDA_ENV.read_text())
    pip_sections = [d["pip"] for d in environment["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, f"{CONDA_ENV} should have exactly one pip section"
    return parse_pins(pip_sections[0], f"{CONDA_ENV} (pip)")


def test_parse_pins_rejects_unpinned_lines():
    # guards the helpers the other tests rely on
    assert parse_pins(["# comment", "", "Foo_Bar==1.2  # why", "x.y==2"], "t") == {"foo-bar": "1.2", "x-y": "2"}
    with pytest.raises(AssertionError):
        parse_pins(["torch>=2"], "t")


def test_requirements_and_conda_pip_section_pin_the_same_packages():
    requirements, conda = requirements_pins(), conda_pip_pins()
    assert requirements, "no pins found in envs/requirements.txt"
    only_requirements = {k: v for k, v in requirements.items() if conda.get(k) != v}
    only_conda = {k: v for k, v in conda.items() if requirements.get(k) != v}
    assert requirements == conda, f"requirements.txt only: {only_requirements}; environment.yaml only: {only_conda}"


@pytest.mark.parametrize("pins", [requirements_pins, conda_pip_pins], ids=["requirements", "environment"])
def test_torch_versions_pinned(pins):
    found = pins()
    assert found.get("torch") == "2.14.1"
    assert found.get("torchvision") == "0.29.1"


def test_conda_environment_has_python_and_pip():
    environment = yaml.safe_load(CONDA_ENV.read_text())
    plain = [d for d in environment["dependencies"] if isinstance(d, str)]
    assert "pip" in plain
    assert any(d.startswith("python=") or d.startswith("python==") for d in plain)


def test_every_project_dependency_is_pinned():
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    dependencies = project["dependencies"]
    assert dependencies
    names = {normalise(NAME.match(spec.strip()).group(1)) for spec in dependencies}
    pinned = requirements_pins()
    missing = sorted(names - pinned.keys())
    assert not missing, f"pyproject.toml dependencies not pinned in {REQUIREMENTS.name}: {missing}"


def test_pyproject_requires_python_matches_conda_python():
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    minimum = re.search(r">=\s*3\.(\d+)", project["requires-python"])
    assert minimum
    environment = yaml.safe_load(CONDA_ENV.read_text())
    python = next(d for d in environment["dependencies"] if isinstance(d, str) and d.startswith("python"))
    conda_minor = int(re.search(r"3\.(\d+)", python).group(1))
    assert conda_minor >= int(minimum.group(1))


def test_ci_runs_make_test():
    script = REPO / ".ci" / "run"
    assert script.is_file()
    commands = [line.strip() for line in script.read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")]
    assert "make test" in commands


def test_readme_shows_make_demo_and_make_test():
    text = (REPO / "README.md").read_text()
    assert "make demo" in text
    assert "make test" in text


def test_makefile_has_demo_and_test_targets():
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z][A-Za-z0-9_-]*)\s*:", makefile, flags=re.MULTILINE))
    assert {"demo", "test"} <= targets
    assert "envs/requirements.txt" in makefile


def test_make_test_runs_on_workers_that_keep_shared_fixtures_together():
    # pytest-xdist is pinned above; `make test` starts workers, and pyproject.toml's addopts keep
    # each test file, and so its finished workflow run (a module-scoped fixture), on one worker
    assert "pytest-xdist" in requirements_pins()
    recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", (REPO / "Makefile").read_text(), flags=re.MULTILINE)
    assert recipe and re.search(r"pytest .*-n ", recipe.group(1)), "make test should run pytest -n ..."
    addopts = tomllib.loads(PYPROJECT.read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    assert "--dist loadfile" in addopts


@pytest.mark.parametrize("worker_count, cores, expected", [
    (None, 8, None), ("1", 8, None), ("2", 2, 1), ("2", 4, 2), ("4", 2, 1), ("3", 8, 2),
])
def test_xdist_workers_share_the_cores(worker_count, cores, expected):
    from conftest import threads_per_worker

    assert threads_per_worker(worker_count, cores) == expected


def test_this_worker_runs_its_share_of_the_cores():
    # still in force when this test runs: no test before it left its own thread count behind
    import torch
    from conftest import this_workers_threads

    threads = this_workers_threads()
    if threads is None:
        pytest.skip("one process: torch's own default number of threads")
    assert torch.get_num_threads() == threads
