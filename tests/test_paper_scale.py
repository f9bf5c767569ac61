"""benchmarks/paper_scale.py's data of the real size (which stand-in each paper task gets, how
much of it is timed and what it stands for) and how its timings are scaled up (the timings
themselves are the benchmark's, not a test's)."""

import dataclasses
import importlib
import sys
from pathlib import Path

import pytest
import torch

from memristor_mat import evaluation
from memristor_mat.config import load_config
from memristor_mat.datasets import DatasetSplits
from memristor_mat.models.mlp import MLP
from memristor_mat.settings import MonteCarloSettings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def paper_scale(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # it imports its neighbours
    module = importlib.import_module("paper_scale")
    yield module
    sys.modules.pop("paper_scale", None)


@pytest.mark.parametrize("task", ["ecg", "ecg_tanh", "ecg_improved"])
def test_an_ecg_task_times_a_synthetic_record_of_record_208s_size_with_its_own_options(paper_scale, monkeypatch,
                                                                                        task):
    calls = []
    windows = DatasetSplits("ecg", torch.rand(6, 5, 4), torch.arange(6) % 2, torch.rand(6, 5, 4),
                            torch.arange(6) % 2, 2, "stand-in")

    def prepare(name, raw_dir, **options):
        calls.append((name, options))
        return windows

    monkeypatch.setattr(paper_scale, "prepare_dataset", prepare)
    dataset = load_config(REPO / "config" / "paper_ecg.yaml")["tasks"][task]["dataset"]
    timed = paper_scale.real_size_data(dataset)
    # all of it timed
    assert torch.equal(timed.splits.x_train, windows.x_train) and torch.equal(timed.splits.x_test, windows.x_test)
    assert timed.train_scale == timed.test_scale == 1
    (name, options), = calls
    assert name == "ecg_synthetic"
    assert options["beats_per_record"] == paper_scale.ECG_BEATS
    # the task's windows, split and delta modulation; not where MIT-BIH comes from
    expected = {k: v for k, v in dataset["options"].items() if k not in ("records", "download")}
    assert {k: options[k] for k in expected} == expected
    assert "records" not in options and "download" not in options


def test_a_dataset_without_a_stand_in_is_named(paper_scale):
    with pytest.raises(SystemExit, match="'imagenet'"):
        paper_scale.real_size_data({"name": "imagenet", "options": {}})


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5])
def test_a_fraction_outside_zero_to_one_is_refused(paper_scale, fraction):
    with pytest.raises(SystemExit, match="--fraction"):
        paper_scale.real_size_data({"name": "mnist", "options": {}}, fraction)


@pytest.mark.parametrize("name, classes", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_is_timed_on_the_digits_as_cifar_images_of_its_size_and_classes(paper_scale, name, classes):
    timed = paper_scale.real_size_data({"name": name, "options": {}}, fraction=0.002)
    splits = timed.splits
    # only the timed part is built: 100 / 20 images standing for CIFAR's 50,000 / 10,000
    assert splits.x_train.shape == (100, 3, 32, 32) and splits.x_test.shape == (20, 3, 32, 32)
    assert splits.num_classes == classes
    assert timed.train_scale == 500 and timed.test_scale == 500


def test_a_task_on_the_embedded_digits_keeps_its_image_format(paper_scale):
    # the demo's CIFAR stand-in: the digits as 32 x 32 RGB, which its network expects
    dataset = load_config(REPO / "config.yaml")["tasks"]["cifar_standin"]["dataset"]
    timed = paper_scale.real_size_data(dataset, fraction=0.001)
    assert timed.splits.input_shape == (3, 32, 32) and timed.splits.num_classes == 10


def test_mnist_is_timed_on_the_embedded_digits_repeated_to_its_size(paper_scale):
    timed = paper_scale.real_size_data({"name": "mnist", "options": {}}, fraction=0.1)
    assert timed.splits.x_train.shape == (6_000, 1, 28, 28) and len(timed.splits.y_test) == 1_000
    assert timed.train_scale == 10 and timed.test_scale == 10
    # the 4,000 digits of the embedded training split repeated in order: the 4,001st is the first
    assert torch.equal(timed.splits.x_train[4000], timed.splits.x_train[0])
    assert not torch.equal(timed.splits.x_train[3999], timed.splits.x_train[0])


def test_an_ecg_fraction_times_the_first_windows_of_each_split(paper_scale, monkeypatch):
    full = DatasetSplits("ecg", torch.rand(40, 5, 4), torch.arange(40) % 2, torch.rand(30, 5, 4),
                         torch.arange(30) % 2, 2, "stand-in")
    monkeypatch.setattr(paper_scale, "prepare_dataset", lambda name, raw_dir, **options: full)
    timed = paper_scale.real_size_data({"name": "mitbih", "options": {}}, fraction=0.25)
    assert torch.equal(timed.splits.x_train, full.x_train[:10]) and torch.equal(timed.splits.y_test, full.y_test[:8])
    assert timed.train_scale == 4 and timed.test_scale == 30 / 8


def test_the_timed_epoch_leaves_out_the_first_where_there_are_several(paper_scale):
    assert paper_scale.warm_median([5.0]) == 5.0
    assert paper_scale.warm_median([9.0, 1.0, 3.0]) == 2.0
    assert paper_scale.warm_median([9.0, 4.0, 1.0, 2.0]) == 2.0


def _count_passes(monkeypatch):
    """Count the passes over the test set the evaluation makes: one per single-draw call, one per
    draw of a stacked call (whose single draw goes through the single-draw function)."""
    passes, inside = [], []
    single, stacked = evaluation.correct_with_weights, evaluation.correct_with_stacked_weights

    def one(model, weights, x, y, batch_size):
        if not inside:
            passes.append(1)
        return single(model, weights, x, y, batch_size)

    def several(model, weights, x, y, batch_size):
        passes.append(next(iter(weights.values())).shape[0])
        inside.append(True)
        try:
            return stacked(model, weights, x, y, batch_size)
        finally:
            inside.pop()

    monkeypatch.setattr(evaluation, "correct_with_weights", one)
    monkeypatch.setattr(evaluation, "correct_with_stacked_weights", several)
    return passes


def test_the_evaluation_is_scaled_by_the_passes_it_makes_over_the_test_set(paper_scale, monkeypatch):
    passes = _count_passes(monkeypatch)
    torch.manual_seed(0)
    model = MLP(input_size=16, hidden_sizes=(8,), num_classes=3)
    x, y = torch.rand(10, 16), torch.arange(10) % 3
    settings = MonteCarloSettings(sigma_inference=(0.0, 0.1, 0.3), draws=5, seed=1, draws_per_chunk=2)
    evaluation.monte_carlo_accuracy(model, x, y, settings)
    assert sum(passes) == paper_scale.study_passes(settings, 5) == 1 + 2 * 5
    passes.clear()
    devices = dataclasses.replace(settings, draws=3, devices=[
        {"name": "gaussian", "model": "gaussian", "conditions": [{"sigma": 0.0}, {"sigma": 0.2}]},
        {"name": "stuck", "model": "stuck_at", "conditions": [{"p_stuck_off": 0.0, "p_stuck_on": 0.0},
                                                              {"p_stuck_off": 0.1, "p_stuck_on": 0.1}]}])
    evaluation.device_accuracy(model, x, y, devices)
    assert sum(passes) == paper_scale.device_passes(devices, 3) == (1 + 3) + (1 + 3)
