"""benchmarks/paper_scale.py's data of the real size: which stand-in each paper task gets (the
timings themselves are the benchmark's, not a test's)."""

import importlib
import sys
from pathlib import Path

import pytest

from memristor_mat.config import load_config

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
    monkeypatch.setattr(paper_scale, "prepare_dataset", lambda name, raw_dir, **options: calls.append((name, options)))
    dataset = load_config(REPO / "config" / "paper_ecg.yaml")["tasks"][task]["dataset"]
    paper_scale.real_size_data(dataset)
    (name, options), = calls
    assert name == "ecg_synthetic"
    assert options["beats_per_record"] == paper_scale.ECG_BEATS
    # the task's windows, split and delta modulation; not where MIT-BIH comes from
    expected = {k: v for k, v in dataset["options"].items() if k not in ("records", "download")}
    assert {k: options[k] for k in expected} == expected
    assert "records" not in options and "download" not in options


def test_a_dataset_without_a_stand_in_is_named(paper_scale):
    with pytest.raises(SystemExit, match="cifar10"):
        paper_scale.real_size_data({"name": "cifar10", "options": {}})
