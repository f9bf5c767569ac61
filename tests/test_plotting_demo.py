"""The demo config gives its figures the points they are read from: the fault-free anchor of
accuracy_vs_stuck_at and the noise_sd = 0 reference of accuracy_vs_qat_noise."""

from __future__ import annotations

from pathlib import Path

import pytest

from memristor_mat import methods as registry
from memristor_mat import pipeline
from memristor_mat.config import load_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo():
    return load_config(REPO / "config.yaml")


def test_stuck_at_figure_starts_at_the_fault_free_network(demo):
    from memristor_mat.noise import make_noise_model

    [stuck] = [d for d in pipeline.monte_carlo_settings(demo, "mnist").devices if d.name == "stuck_at"]
    fractions = [c["p_stuck_off"] + c["p_stuck_on"] for c in stuck.conditions]
    # without 0 the axis started at 2 % and hid the drop from the clean network
    assert min(fractions) == 0.0 and len(fractions) >= 3
    # 0 + 0 is the clean network (the evaluation then computes it once per model, without draws)
    noise = make_noise_model(stuck.model, stuck.options)
    assert noise.is_identity({"p_stuck_off": 0.0, "p_stuck_on": 0.0})


def test_qat_noise_figure_has_its_noise_free_reference(demo):
    spec = demo["tasks"]["mnist"]["methods"]["qat_noise"]
    # one level alone drew an empty 0 tick and no lines
    assert 0 in spec["noise_sd"] and len(spec["noise_sd"]) >= 2
    runs = [r for r in pipeline.model_runs(demo, "mnist") if r.method == "qat_noise"]
    assert sorted({r.setting for r in runs}) == sorted(float(v) for v in spec["noise_sd"])
    # noise_sd 0 trains QAT at the method's levels with no noise added
    assert registry.run_settings("qat_noise", 0.0, spec) == {"sigma_train": 0.0, "levels": 4, "noise_sd": 0.0}
