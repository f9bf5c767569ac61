"""Tests of memristor_mat.config: schema validation with defaults, semantic checks, format_sigma,
and the same schema enforced by Snakemake when the workflow is parsed."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from memristor_mat import pipeline
from memristor_mat.config import ConfigError, format_sigma, load_config, validate_config

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "config.yaml"


@pytest.fixture(scope="module")
def demo_raw() -> dict:
    """The demo config as written (not validated, no defaults filled in)."""
    with open(DEMO_CONFIG) as handle:
        return yaml.safe_load(handle)


@pytest.fixture
def demo(demo_raw) -> dict:
    return copy.deepcopy(demo_raw)


def write_yaml(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# --------------------------------------------------------------------------- valid configs


def test_demo_config_is_valid_and_complete():
    config = load_config(DEMO_CONFIG)
    assert config["noise"]["include_normalization"] is False
    assert config["noise"]["options"] == {"reference": "2absmax"}
    assert config["evaluation"]["draws_per_chunk"] == 16
    assert config["tasks"]["mnist"]["resources"]["gpu"] == 0
    assert config["device"] == "auto"
    # mnist: 3 seeds x (vanilla, noisy_updates, 4 mat, 2 mat_scratch); cifar_standin: 2 seeds x
    # (vanilla, 2 mat); ecg (original): 2 seeds x 5; ecg_tanh: 1 x 2; ecg_improved: 1 x 3
    assert len(pipeline.model_runs(config)) == 3 * (1 + 1 + 4 + 2) + 2 * 3 + 2 * 5 + 1 * 2 + 1 * 3


def test_defaults_are_filled_in(tmp_path, demo):
    del demo["noise"]
    del demo["device"]
    del demo["comparisons"]
    for key in ("draws_per_chunk", "seed", "batch_size"):
        del demo["evaluation"][key]
    task = demo["tasks"]["mnist"]
    del task["resources"]
    del task["figures"]
    task["dataset"].pop("options")
    config = load_config(write_yaml(tmp_path / "minimal.yaml", demo))

    assert config["device"] == "auto"
    assert config["noise"] == {"model": "gaussian", "options": {"reference": "2absmax"},
                               "include_normalization": False}
    assert config["evaluation"]["draws_per_chunk"] == 16
    assert config["evaluation"]["seed"] == 2024
    assert config["evaluation"]["batch_size"] == 1000
    task = config["tasks"]["mnist"]
    assert task["resources"] == {"gpu": 0, "train_threads": 1, "train_mem_mb": 4000, "train_runtime": "1h",
                                 "evaluate_threads": 2, "evaluate_gpu": 0, "evaluate_mem_mb": 4000,
                                 "evaluate_runtime": "1h"}
    assert task["figures"] == {"headline_method": "mat", "headline_sigma_train": 0.2,
                               "center": "mean", "band": ["p12", "p88"], "traces": False,
                               "show_published": False}
    assert config["comparisons"] == {}
    assert task["dataset"]["options"] == {}


def test_filled_defaults_are_not_shared_between_configs(demo):
    first, second = copy.deepcopy(demo), copy.deepcopy(demo)
    del first["noise"], second["noise"]
    validate_config(first)
    first["noise"]["options"]["reference"] = "range"
    first["tasks"]["mnist"]["dataset"]["options"]["mutated"] = True
    validate_config(second)
    assert second["noise"]["options"] == {"reference": "2absmax"}
    # and a third config still gets the pristine schema default
    third = copy.deepcopy(demo)
    del third["noise"]
    assert validate_config(third)["noise"]["options"] == {"reference": "2absmax"}


def test_validate_config_fills_in_place_and_returns_same_object(demo):
    del demo["evaluation"]["draws_per_chunk"]
    returned = validate_config(demo)
    assert returned is demo
    assert demo["evaluation"]["draws_per_chunk"] == 16


# --------------------------------------------------------------------------- bad values


def _task(config):
    return config["tasks"]["mnist"]


def _set_epochs(c):
    _task(c)["training"]["epochs"] = -1


def _zero_batch(c):
    _task(c)["training"]["batch_size"] = 0


def _string_draws(c):
    c["evaluation"]["draws"] = "many"


def _unknown_top_level(c):
    c["epochz"] = 3


def _training_typo(c):
    training = _task(c)["training"]
    training["epoch"] = training.pop("epochs")


def _negative_inference_sigma(c):
    c["evaluation"]["sigma_inference"] = [0, -0.1, 0.2]


def _duplicate_seeds(c):
    _task(c)["seeds"] = [14, 15, 14]


def _unknown_method(c):
    _task(c)["methods"]["mat2"] = {"sigma_train": [0.2]}


def _unknown_reference(c):
    c["noise"]["options"]["reference"] = "max"


def _unknown_dataset(c):
    _task(c)["dataset"]["name"] = "imagenet"


def _unknown_arch(c):
    _task(c)["model"]["arch"] = "resnet99"


def _unknown_optimizer(c):
    _task(c)["training"]["optimizer"]["name"] = "Adamm"


def _unknown_method_optimizer(c):
    _task(c)["methods"]["mat"]["training"]["optimizer"] = {"name": "Adamm", "lr": 0.01}


def _unknown_scheduler(c):
    _task(c)["training"]["lr_scheduler"] = {"name": "StepLRR", "step_size": 5}


def _mat_without_vanilla(c):
    del _task(c)["methods"]["vanilla"]


def _mat_without_sigma(c):
    del _task(c)["methods"]["mat"]["sigma_train"]


def _vanilla_with_sigma(c):
    _task(c)["methods"]["vanilla"]["sigma_train"] = [0.1]


def _headline_sigma_missing(c):
    _task(c)["figures"]["headline_sigma_train"] = 0.25


def _runtime_without_units(c):
    _task(c)["resources"]["train_runtime"] = "30"


def _device_gpu(c):
    c["device"] = "gpu"


def _unknown_noise_model(c):
    c["noise"]["model"] = "poisson"


def _inference_sigma_too_fine(c):
    c["evaluation"]["sigma_inference"] = [0, 1e-9]


def _bad_task_name(c):
    c["tasks"]["MNIST"] = c["tasks"].pop("mnist")


def _cnn(c):
    return c["tasks"]["cifar_standin"]


def _augmentation_typo(c):
    _cnn(c)["training"]["augmentation"] = {"flip": True}


def _negative_rotation(c):
    _cnn(c)["training"]["augmentation"]["rotation_degrees"] = -10


def _mixed_precision_float8(c):
    _cnn(c)["training"]["mixed_precision"] = "float8"


def _task_noise_reference(c):
    _cnn(c)["noise"]["options"]["reference"] = "max"


def _task_noise_model(c):
    _cnn(c)["noise"]["model"] = "poisson"


def _zero_train_threads(c):
    _cnn(c)["resources"]["train_threads"] = 0


BAD_CONFIGS = [
    pytest.param(_set_epochs, "tasks.mnist.training.epochs", id="negative-epochs"),
    pytest.param(_zero_batch, "tasks.mnist.training.batch_size", id="zero-batch-size"),
    pytest.param(_string_draws, "evaluation.draws", id="string-for-number"),
    pytest.param(_unknown_top_level, "epochz", id="unknown-top-level-key"),
    pytest.param(_training_typo, "tasks.mnist.training", id="training-typo-epoch"),
    pytest.param(_negative_inference_sigma, "evaluation.sigma_inference", id="negative-inference-sigma"),
    pytest.param(_duplicate_seeds, "tasks.mnist.seeds", id="duplicate-seeds"),
    pytest.param(_unknown_method, "tasks.mnist.methods", id="unknown-method-mat2"),
    pytest.param(_unknown_reference, "noise.options.reference", id="unknown-noise-reference"),
    pytest.param(_unknown_dataset, "tasks.mnist.dataset.name", id="unknown-dataset"),
    pytest.param(_unknown_arch, "tasks.mnist.model.arch", id="unknown-arch"),
    pytest.param(_unknown_optimizer, "tasks.mnist.training.optimizer.name", id="unknown-optimizer"),
    pytest.param(_unknown_method_optimizer, "tasks.mnist.methods.mat.training.optimizer.name",
                 id="unknown-optimizer-in-method-override"),
    pytest.param(_unknown_scheduler, "tasks.mnist.training.lr_scheduler.name", id="unknown-lr-scheduler"),
    pytest.param(_mat_without_vanilla, "tasks.mnist.methods", id="mat-without-vanilla"),
    pytest.param(_mat_without_sigma, "tasks.mnist.methods.mat.sigma_train", id="mat-without-sigma-train"),
    pytest.param(_vanilla_with_sigma, "tasks.mnist.methods.vanilla.sigma_train", id="vanilla-with-sigma-train"),
    pytest.param(_headline_sigma_missing, "tasks.mnist.figures.headline_sigma_train",
                 id="headline-sigma-not-trained"),
    pytest.param(_runtime_without_units, "tasks.mnist.resources.train_runtime", id="runtime-without-units"),
    pytest.param(_device_gpu, "device", id="device-gpu"),
    pytest.param(_unknown_noise_model, "noise.model", id="unknown-noise-model"),
    pytest.param(_inference_sigma_too_fine, "evaluation.sigma_inference", id="inference-sigma-over-8-decimals"),
    pytest.param(_bad_task_name, "MNIST", id="task-name-pattern"),
    pytest.param(_augmentation_typo, "tasks.cifar_standin.training.augmentation", id="augmentation-typo"),
    pytest.param(_negative_rotation, "tasks.cifar_standin.training.augmentation", id="negative-rotation"),
    pytest.param(_mixed_precision_float8, "tasks.cifar_standin.training.mixed_precision", id="mixed-precision-float8"),
    pytest.param(_task_noise_reference, "tasks.cifar_standin.noise.options.reference", id="task-noise-reference"),
    pytest.param(_task_noise_model, "tasks.cifar_standin.noise.model", id="task-noise-model"),
    pytest.param(_zero_train_threads, "tasks.cifar_standin.resources.train_threads", id="zero-train-threads"),
]


@pytest.mark.parametrize("mutate, key", BAD_CONFIGS)
def test_bad_value_is_rejected_naming_the_key(demo, mutate, key):
    mutate(demo)
    with pytest.raises(ConfigError) as info:
        validate_config(demo)
    assert key in str(info.value)


@pytest.mark.parametrize("mutate, key", [BAD_CONFIGS[0], BAD_CONFIGS[3], BAD_CONFIGS[10]])
def test_load_config_rejects_bad_file(tmp_path, demo, mutate, key):
    mutate(demo)
    with pytest.raises(ConfigError, match=key):
        load_config(write_yaml(tmp_path / "bad.yaml", demo))


def test_error_message_shows_the_bad_value(demo):
    _task(demo)["training"]["epochs"] = -7
    with pytest.raises(ConfigError, match=r"tasks\.mnist\.training\.epochs: -7"):
        validate_config(demo)


def test_config_error_is_a_value_error():
    # the command line reports ValueErrors as user errors (exit code 2)
    assert issubclass(ConfigError, ValueError)


def test_sigma_train_finer_than_paths_is_rejected(demo):
    _task(demo)["methods"]["mat_scratch"]["sigma_train"] = [1e-9]
    with pytest.raises(ConfigError, match="tasks.mnist.methods.mat_scratch.sigma_train"):
        validate_config(demo)


def test_sigma_train_levels_sharing_a_path_are_rejected(demo):
    _task(demo)["methods"]["mat"]["sigma_train"] = [0.1, 0.1000000001, 0.2]
    try:
        validate_config(demo)
    except ConfigError as error:
        assert "sigma_train" in str(error)
        return
    checkpoints = [run.checkpoint for run in pipeline.model_runs(demo)]
    assert len(checkpoints) == len(set(checkpoints)), "two models share a checkpoint path"


def test_integral_float_epochs_rejected_or_normalised(demo):
    _task(demo)["training"]["epochs"] = 2.0
    try:
        validate_config(demo)
    except ConfigError as error:
        assert "tasks.mnist.training.epochs" in str(error)
        return
    assert isinstance(_task(demo)["training"]["epochs"], int)


# --------------------------------------------------------------------------- unreadable files


def test_missing_config_file_names_the_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "does not exist" in str(info.value)


def test_invalid_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("tasks: {mnist: [unclosed\nevaluation: :\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "YAML" in str(info.value)


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n"])
def test_non_mapping_config_file_is_rejected(tmp_path, text):
    path = tmp_path / "odd.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


# --------------------------------------------------------------------------- format_sigma


@pytest.mark.parametrize(
    "value, text",
    [(0.05, "0.05"), (0.1, "0.1"), (0, "0"), (0.0, "0"), (0.3, "0.3"), (1e-05, "0.00001"),
     (0.2, "0.2"), (1, "1"), (2.5, "2.5"), (0.1 + 0.2, "0.3")],
)
def test_format_sigma(value, text):
    assert format_sigma(value) == text
    assert "e" not in format_sigma(value).lower()


def test_format_sigma_round_trips_demo_levels(demo_raw):
    levels = set(demo_raw["evaluation"]["sigma_inference"])
    for spec in demo_raw["tasks"]["mnist"]["methods"].values():
        levels.update(spec.get("sigma_train", []))
    assert len(levels) >= 5
    for level in levels:
        assert float(format_sigma(level)) == level
    # distinct levels give distinct paths
    assert len({format_sigma(level) for level in levels}) == len(levels)


# --------------------------------------------------------------------------- snakemake


def test_snakemake_rejects_bad_config_with_the_same_schema(tmp_path, demo):
    snakemake = Path(sys.executable).with_name("snakemake")
    if not snakemake.exists():
        pytest.skip(f"snakemake is not installed beside {sys.executable}")
    _task(demo)["training"]["epochs"] = -3
    bad = write_yaml(tmp_path / "bad.yaml", demo)
    # -d: a scratch working directory, so the dry run leaves nothing in the checkout
    result = subprocess.run(
        [str(snakemake), "-n", "--cores", "1", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
         "--configfile", str(bad)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "epochs" in output
    assert "-3" in output


@pytest.mark.parametrize("comparison, message", [
    ({"tasks": ["mnist", "nope"], "curves": [{"method": "vanilla"}]}, "'nope' is not a task"),
    ({"tasks": ["mnist", "mnist2"], "curves": [{"method": "vanilla"}], "panel_titles": ["one"]},
     "one title per task"),
    ({"tasks": ["mnist", "mnist2"], "curves": [{"method": "qat"}]}, "method 'qat' is in none"),
])
def test_bad_comparisons_are_rejected(demo, comparison, message):
    demo["tasks"]["mnist2"] = copy.deepcopy(demo["tasks"]["mnist"])
    demo["comparisons"] = {"side_by_side": comparison}
    with pytest.raises(ConfigError, match=message) as info:
        validate_config(demo)
    assert "comparisons.side_by_side" in str(info.value)


def test_traces_only_for_recurrent_networks(demo):
    demo["tasks"]["mnist"]["figures"] = {"traces": True}
    with pytest.raises(ConfigError, match="tasks.mnist.figures.traces"):
        validate_config(demo)


def test_task_noise_overrides_the_top_level_noise_for_that_task_only(demo):
    from memristor_mat import pipeline

    cnn = pipeline.ModelRun("cifar_standin", "mat", 0.2, 14)
    mlp = pipeline.ModelRun("mnist", "mat", 0.2, 14)
    assert pipeline.training_settings(demo, cnn).noise_options == {"reference": "absmax"}
    assert pipeline.training_settings(demo, mlp).noise_options == {"reference": "2absmax"}
    assert pipeline.monte_carlo_settings(demo, "cifar_standin").noise_options == {"reference": "absmax"}
    assert pipeline.monte_carlo_settings(demo, "mnist").noise_options == {"reference": "2absmax"}


def test_cnn_training_settings_reach_the_training_job(demo):
    from memristor_mat import pipeline

    settings = pipeline.train_job(demo, pipeline.ModelRun("cifar_standin", "mat", 0.1, 15))["settings"]
    assert settings["augmentation"] == {"horizontal_flip": False, "rotation_degrees": 10}
    assert settings["optimizer"]["name"] == "SGD" and settings["epochs"] == 3  # the method's override
    assert settings["mixed_precision"] is None
    assert pipeline.train_job(demo, pipeline.ModelRun("mnist", "vanilla", 0.0, 14))["settings"]["augmentation"] is None
