"""Training methods (SPEC §2): determinism, resume after a kill, the method-specific mechanics."""

import dataclasses

import pytest
import torch

from conftest import killed_in_epoch

from memristor_mat import training
from memristor_mat.checkpoint import CheckpointError
from memristor_mat.data import DatasetSplits
from memristor_mat.models import MLP
from memristor_mat.training import NoisyUpdates, TrainingSettings, train

CPU = torch.device("cpu")


def toy_data(n_train=256, n_test=128, seed=0):
    """Two classes told apart by the mean brightness of the left half of a 4x4 image."""
    g = torch.Generator().manual_seed(seed)

    def split(n):
        x = torch.rand((n, 1, 4, 4), generator=g)
        y = (x[:, :, :, :2].mean(dim=(1, 2, 3)) > x[:, :, :, 2:].mean(dim=(1, 2, 3))).long()
        return x, y

    x_train, y_train = split(n_train)
    x_test, y_test = split(n_test)
    return DatasetSplits("toy", x_train, y_train, x_test, y_test, 2, "toy data for tests")


def model(seed=0):
    torch.manual_seed(seed)
    return MLP(input_size=16, hidden_sizes=[12], num_classes=2, bias=True)


def settings(method="vanilla", **overrides):
    values = dict(method=method, epochs=4, batch_size=16, optimizer={"name": "Adam", "lr": 0.01}, seed=3,
                  sigma_train=0.1 if method in ("mat", "mat_scratch") else 0.0,
                  noisy_updates=NoisyUpdates(last_epochs=2, every_n_batches=4, relative_sd=0.05),
                  eval_batch_size=64)
    values.update(overrides)
    return TrainingSettings(**values)


def weights(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


IDENTITY = {"arch": "mlp", "arch_options": {"input_size": 16, "hidden_sizes": [12], "num_classes": 2, "bias": True}}


def test_vanilla_learns_the_toy_problem():
    result = train(model(), toy_data(), settings(epochs=8), device=CPU)
    assert result.history[-1]["test_accuracy_clean"] > 0.75
    assert [row["epoch"] for row in result.history] == list(range(1, 9))


@pytest.mark.parametrize("method", ["vanilla", "mat_scratch", "noisy_updates"])
def test_same_seed_same_weights(method):
    a = train(model(), toy_data(), settings(method), device=CPU).model
    b = train(model(), toy_data(), settings(method), device=CPU).model
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_methods_differ_from_vanilla():
    final = {m: weights(train(model(), toy_data(), settings(m), device=CPU).model)
             for m in ("vanilla", "mat_scratch", "noisy_updates")}
    w = "layers.1.weight"
    assert not torch.equal(final["vanilla"][w], final["mat_scratch"][w])
    assert not torch.equal(final["vanilla"][w], final["noisy_updates"][w])


def test_noisy_updates_only_in_the_last_epochs(monkeypatch):
    calls = []
    original = training.add_permanent_noise
    monkeypatch.setattr(training, "add_permanent_noise", lambda *a: (calls.append(1), original(*a)))
    train(model(), toy_data(), settings("noisy_updates", epochs=3), device=CPU)
    # 256/16 = 16 batches per epoch, every 4th batch, last 2 epochs
    assert len(calls) == 2 * 4


def test_weight_clipping_bounds_every_weight():
    clipped = train(model(), toy_data(), settings(weight_clip_std=1.0, epochs=2), device=CPU).model
    for name, w in clipped.named_parameters():
        if w.numel() > 1:
            # after the last step, |w| <= 1 * std of the tensor before clipping; check loosely
            assert w.abs().max() <= 1.5 * w.std() + 1e-6, name


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path, monkeypatch):
    config = settings("mat_scratch", epochs=4)
    uninterrupted = train(model(), toy_data(), config, device=CPU, resume_path=tmp_path / "a.resume",
                          resume_extra=IDENTITY)

    resume = tmp_path / "b.resume"
    with killed_in_epoch(monkeypatch, 3), pytest.raises(KeyboardInterrupt):
        train(model(), toy_data(), config, device=CPU, resume_path=resume, resume_extra=IDENTITY)
    assert resume.exists()
    resumed = train(model(seed=99), toy_data(), config, device=CPU, resume_path=resume, resume_extra=IDENTITY)
    assert resumed.resumed_from_epoch == 2
    for key, value in uninterrupted.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in uninterrupted.history]


def test_resume_with_other_settings_is_refused(tmp_path):
    resume = tmp_path / "run.resume"
    train(model(), toy_data(), settings(epochs=1), device=CPU, resume_path=resume, resume_extra=IDENTITY)
    with pytest.raises(CheckpointError, match="other training settings"):
        train(model(), toy_data(), settings(epochs=2, batch_size=8), device=CPU, resume_path=resume,
              resume_extra=IDENTITY)


def test_lr_schedule_steps_per_epoch():
    result = train(model(), toy_data(), settings(epochs=3, lr_scheduler={"name": "StepLR", "step_size": 1,
                                                                         "gamma": 0.5}), device=CPU)
    assert [row["lr"] for row in result.history] == pytest.approx([0.01, 0.005, 0.0025])


@pytest.mark.parametrize("overrides, message", [
    ({"method": "sgd_magic"}, "unknown training method"),
    ({"method": "mat", "sigma_train": 0.0}, "needs sigma_train > 0"),
    ({"sigma_train": 0.1}, "must be 0"),
    ({"epochs": 0}, "epochs"),
])
def test_bad_settings_are_rejected(overrides, message):
    values = dataclasses.asdict(settings())
    values.update(overrides)
    with pytest.raises(ValueError, match=message):
        TrainingSettings.from_dict(values)


@pytest.mark.parametrize("spec, message", [
    ({"name": "Adamm", "lr": 0.1}, "not a torch.optim optimizer"),
    ({"name": "Adam", "lr": 0.1, "momentum_typo": 1}, "bad options"),
])
def test_bad_optimizer_is_rejected(spec, message):
    with pytest.raises(ValueError, match=message):
        training.make_optimizer(spec, model().parameters())


def test_settings_round_trip_through_a_dict():
    original = settings("mat", lr_scheduler={"name": "StepLR", "step_size": 2})
    assert TrainingSettings.from_dict(original.as_dict()) == original


def test_prefetched_noise_gives_the_same_weights_as_synchronous_noise():
    a = train(model(), toy_data(), settings("mat_scratch"), device=CPU, prefetch_noise=True).model
    b = train(model(), toy_data(), settings("mat_scratch"), device=CPU, prefetch_noise=False).model
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
