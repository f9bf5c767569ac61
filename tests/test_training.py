"""Training methods (SPEC §2): determinism, resume after a kill, the method-specific mechanics."""

import dataclasses
import inspect

import pytest
import torch

from conftest import killed_in_epoch, standin_splits, toy_data, toy_events

from memristor_mat import training
from memristor_mat.checkpoint import CheckpointError
from memristor_mat.device import derive_seed
from memristor_mat.models import build_model
from memristor_mat.models.mlp import MLP
from memristor_mat.methods import mat, noisy_updates
from memristor_mat.methods.hooks import EpochContext
from memristor_mat.settings import NoisyUpdates, TrainingSettings
from memristor_mat.training import train

CPU = torch.device("cpu")


def model(seed=0):
    torch.manual_seed(seed)
    return MLP(input_size=16, hidden_sizes=[12], num_classes=2, bias=True)


def model_with_batchnorm():
    # a normalisation layer's affine parameters are not on the crossbar: clipping and injections must leave them out
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 12), torch.nn.BatchNorm1d(12),
                               torch.nn.ReLU(), torch.nn.Linear(12, 2))


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


@pytest.mark.parametrize("method", ["vanilla", "mat_scratch"])
def test_another_seed_gives_other_weights(method):
    # the same initial weights and data: only the run's seed differs (data order, noise)
    a = train(model(), toy_data(), settings(method, seed=3), device=CPU).model
    b = train(model(), toy_data(), settings(method, seed=4), device=CPU).model
    assert not torch.equal(a.state_dict()["layers.1.weight"], b.state_dict()["layers.1.weight"])


@pytest.fixture
def epoch_randomness(monkeypatch):
    """Per epoch of train(): the data order (sample indices in batch order), the noise
    generator's seed and the global torch seed (dropout) it set."""
    seen = {"order": [], "noise": [], "torch": []}

    class Batches(training.EpochBatches):
        def __init__(self, x, y, index_batches, *args, **kwargs):
            seen["order"].append(torch.cat(list(index_batches)))
            super().__init__(x, y, index_batches, *args, **kwargs)

    def context(**kwargs):
        seen["noise"].append(kwargs["generator"].initial_seed())
        return EpochContext(**kwargs)

    manual_seed = torch.manual_seed
    monkeypatch.setattr(training, "EpochBatches", Batches)
    monkeypatch.setattr(training, "EpochContext", context)
    monkeypatch.setattr(training.torch, "manual_seed", lambda s: (seen["torch"].append(s), manual_seed(s))[1])
    return seen


@pytest.mark.parametrize("purpose", ["order", "noise", "torch"])
def test_each_epochs_randomness_depends_on_the_seed_and_the_epoch(epoch_randomness, purpose):
    nets = [model(), model()]
    epoch_randomness["torch"].clear()  # model() seeds torch itself
    train(nets[0], toy_data(), settings("mat_scratch", seed=3, epochs=2), device=CPU)
    train(nets[1], toy_data(), settings("mat_scratch", seed=4, epochs=2), device=CPU)
    runs = epoch_randomness[purpose]
    assert len(runs) == 4  # (seed 3: epochs 0, 1), (seed 4: epochs 0, 1)
    different = (lambda a, b: not torch.equal(a, b)) if purpose == "order" else (lambda a, b: a != b)
    assert different(runs[0], runs[1]) and different(runs[2], runs[3]), "two epochs drew the same"
    assert different(runs[0], runs[2]) and different(runs[1], runs[3]), "two seeds drew the same"
    if purpose == "order":
        assert all(torch.equal(order.sort().values, torch.arange(256)) for order in runs)  # each a permutation


def test_without_shuffle_every_epoch_takes_the_samples_in_their_order(epoch_randomness):
    # the original's ECG loader (SPEC §3): the split's order every epoch, whatever the seed; the
    # rest of the run's randomness is the shuffled run's
    shuffled = train(model(), toy_data(), settings("mat_scratch", epochs=3), device=CPU).model
    noise_seeds = list(epoch_randomness["noise"])
    epoch_randomness["order"].clear()
    epoch_randomness["noise"].clear()
    kept = train(model(), toy_data(), settings("mat_scratch", epochs=3, shuffle=False), device=CPU).model
    assert [order.tolist() for order in epoch_randomness["order"]] == [list(range(256))] * 3
    assert epoch_randomness["noise"] == noise_seeds
    assert not torch.equal(shuffled.state_dict()["layers.1.weight"], kept.state_dict()["layers.1.weight"])
    again = train(model(), toy_data(), settings("mat_scratch", epochs=3, shuffle=False), device=CPU).model
    assert all(torch.equal(kept.state_dict()[k], again.state_dict()[k]) for k in kept.state_dict())


def test_shuffle_is_checked_and_left_out_of_the_settings_at_its_default():
    # a setting added later: jobs that do not set it keep their params (and so their results)
    assert "shuffle" not in settings().as_dict() and settings(shuffle=False).as_dict()["shuffle"] is False
    assert TrainingSettings.from_dict(settings(shuffle=False).as_dict()).shuffle is False
    with pytest.raises(ValueError, match="shuffle must be true or false, got 'no'"):
        settings(shuffle="no")


def test_mat_trains_through_w_plus_sigma_train_r_w_z_of_the_epochs_generator():
    """SPEC §2: each batch's forward pass sees W + sigma_train * R(W) * z, z fresh standard
    normals from the epoch's generator (seeded by (seed, "noise", epoch)), R the configured
    reference. lr 0 keeps W fixed, so every batch's noisy weights can be computed by hand."""
    net = model()
    clean = {name: p.detach().clone() for name, p in net.named_parameters()}
    seen = []
    net.register_forward_pre_hook(lambda module, args: seen.append(
        {name: p.detach().clone() for name, p in module.named_parameters()}) if module.training else None)
    config = settings("mat_scratch", epochs=2, sigma_train=0.07, noise_options={"reference": "range"},
                      optimizer={"name": "SGD", "lr": 0.0})
    train(net, toy_data(), config, device=CPU, prefetch_noise=False)
    assert len(seen) == 2 * 16
    for epoch in range(2):
        g = torch.Generator().manual_seed(derive_seed(3, "noise", epoch))
        for batch in range(16):
            # one draw per batch, the tensors in the model's parameter order
            for name, w in clean.items():
                z = torch.randn(w.shape, generator=g)
                expected = w + 0.07 * (w.max() - w.min()) * z
                torch.testing.assert_close(seen[16 * epoch + batch][name], expected, rtol=1e-6, atol=1e-7)
    assert all(torch.equal(p, clean[name]) for name, p in net.named_parameters())  # lr 0: W never moved


def test_noisy_updates_pass_their_configured_scale_and_reference(monkeypatch):
    calls = []
    original = noisy_updates.add_permanent_noise
    signature = inspect.signature(original)

    def spy(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        calls.append(dict(bound.arguments))
        return original(*args, **kwargs)

    monkeypatch.setattr(noisy_updates, "add_permanent_noise", spy)
    net = model_with_batchnorm()
    updates = NoisyUpdates(last_epochs=1, every_n_batches=8, relative_sd=0.03, reference="max")
    train(net, toy_data(), settings("noisy_updates", epochs=2, noisy_updates=updates), device=CPU)
    assert len(calls) == 2  # batches 7 and 15 of the last epoch
    memristor = [net[1].weight, net[1].bias, net[4].weight, net[4].bias]
    for call in calls:
        assert call["relative_sd"] == 0.03 and call["reference"] == "max"
        assert len(call["parameters"]) == 4 and all(a is b for a, b in zip(call["parameters"], memristor))
        assert call["gen"].initial_seed() == derive_seed(3, "noise", 1)  # the last epoch's generator


def test_noisy_updates_only_in_the_last_epochs(monkeypatch):
    calls = []
    original = noisy_updates.add_permanent_noise
    monkeypatch.setattr(noisy_updates, "add_permanent_noise", lambda *a: (calls.append(1), original(*a)))
    train(model(), toy_data(), settings("noisy_updates", epochs=3), device=CPU)
    # 256/16 = 16 batches per epoch, every 4th batch, last 2 epochs
    assert len(calls) == 2 * 4


def test_weight_clipping_clips_the_memristor_tensors_at_the_configured_k(monkeypatch):
    calls = []
    clip = training.clip_weights

    def spy(parameters, k_std):
        parameters = list(parameters)
        before = [w.detach().clone() for w in parameters]
        clip(parameters, k_std)
        calls.append((parameters, k_std, before, [w.detach().clone() for w in parameters]))

    monkeypatch.setattr(training, "clip_weights", spy)
    net = model_with_batchnorm()
    clipped = train(net, toy_data(), settings(weight_clip_std=1.3, epochs=2), device=CPU).model
    assert len(calls) == 2 * 16  # after every optimiser step
    memristor = [net[1].weight, net[1].bias, net[4].weight, net[4].bias]
    for parameters, k_std, _, _ in calls:
        assert k_std == 1.3
        assert len(parameters) == len(memristor) and all(a is b for a, b in zip(parameters, memristor))
    # the arithmetic, to the bit: each tensor clamped to +-k of its own std before the clipping
    _, _, before, after = calls[-1]
    for pre, post in zip(before, after):
        assert torch.equal(post, pre.clamp(-1.3 * pre.std(), 1.3 * pre.std()))
    assert not torch.equal(before[0], after[0])  # not vacuous: the step pushed weights beyond the bound
    # nothing moves the weights after the last clipping
    assert all(torch.equal(w, post) for w, post in zip(memristor, after))
    assert clipped is net


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


def test_resume_of_another_model_is_refused_naming_what_differs(tmp_path):
    # the same training settings, another network's options (a config edit keeps the resume
    # path): the state must not be loaded, neither failing on shapes nor silently (an SNN's
    # time constants are buffers of the same shapes)
    resume = tmp_path / "run.resume"
    train(model(), toy_data(), settings(epochs=1), device=CPU, resume_path=resume, resume_extra=IDENTITY)
    other = {**IDENTITY, "arch_options": {**IDENTITY["arch_options"], "hidden_sizes": [8]}}
    torch.manual_seed(0)
    smaller = MLP(input_size=16, hidden_sizes=[8], num_classes=2, bias=True)
    with pytest.raises(CheckpointError, match=r"another arch_options .*hidden_sizes.*\[12\].*delete it"):
        train(smaller, toy_data(), settings(epochs=1), device=CPU, resume_path=resume, resume_extra=other)
    assert resume.exists()  # nothing deleted: the user decides
    # a state that lacks what training stores is named, not a KeyError
    state = torch.load(resume, weights_only=True)
    del state["optimizer"]
    torch.save(state, resume)
    with pytest.raises(CheckpointError, match="does not fit this run.*optimizer"):
        train(model(), toy_data(), settings(epochs=1), device=CPU, resume_path=resume, resume_extra=IDENTITY)


def test_lr_schedule_steps_per_epoch():
    result = train(model(), toy_data(), settings(epochs=3, lr_scheduler={"name": "StepLR", "step_size": 1,
                                                                         "gamma": 0.5}), device=CPU)
    assert [row["lr"] for row in result.history] == pytest.approx([0.01, 0.005, 0.0025])


def test_plateau_schedule_steps_on_the_epochs_training_loss(monkeypatch):
    """ReduceLROnPlateau needs a measured loss: each epoch's mean training loss, as recorded."""
    seen = []
    step = torch.optim.lr_scheduler.ReduceLROnPlateau.step
    monkeypatch.setattr(torch.optim.lr_scheduler.ReduceLROnPlateau, "step",
                        lambda self, metrics: (seen.append(metrics), step(self, metrics)))
    # a threshold no loss can beat (not even the first, against infinity): the rate halves every epoch
    schedule = {"name": "ReduceLROnPlateau", "factor": 0.5, "patience": 0, "threshold": 2.0}
    result = train(model(), toy_data(), settings(epochs=3, lr_scheduler=schedule), device=CPU)
    assert seen == pytest.approx([row["train_loss"] for row in result.history])
    assert [row["lr"] for row in result.history] == pytest.approx([0.01, 0.005, 0.0025])
    with pytest.raises(ValueError, match="interval must be 'epoch'"):
        training.make_lr_scheduler({**schedule, "interval": "batch"},
                                   training.make_optimizer({"name": "SGD", "lr": 0.1}, model().parameters()))


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


@pytest.fixture
def drawing_starts(monkeypatch):
    """torch's thread count at each start of MAT's background draw (a process, or a thread off
    Linux); restores the count after the test."""
    started = []

    class Counted(mat.PrefetchedNormals):
        def __init__(self, *args, **kwargs):
            started.append(torch.get_num_threads())
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(mat, "PrefetchedNormals", Counted)
    threads = torch.get_num_threads()
    yield started
    torch.set_num_threads(threads)


def test_prefetched_noise_gives_the_same_weights_as_synchronous_noise(drawing_starts):
    torch.set_num_threads(2)  # a thread to spare: the normals are drawn on it
    a = train(model(), toy_data(), settings("mat_scratch"), device=CPU, prefetch_noise=True).model
    assert drawing_starts == [2, 2, 2, 2]  # one per epoch, each started with the thread given back
    b = train(model(), toy_data(), settings("mat_scratch"), device=CPU, prefetch_noise=False).model
    assert len(drawing_starts) == 4
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_a_one_thread_job_draws_its_noise_in_the_step(drawing_starts):
    # a second thread would use a core the scheduler did not give the job
    torch.set_num_threads(1)
    train(model(), toy_data(), settings("mat_scratch", epochs=1), device=CPU, prefetch_noise=True)
    assert drawing_starts == []


# --------------------------------------------------------------------------- the original's recipe (SPEC §2.1)


def test_original_injection_batches_of_the_papers_mnist_and_ecg_runs():
    # MNIST: 60,000 / 32 = 1,875 batches per epoch, index % 100 == 0 -> 0, 100, ..., 1800: 19 per
    # epoch, 57 over the last 3 epochs; this project's interval_end timing gives 18 (99, ..., 1799)
    original = NoisyUpdates(last_epochs=3, every_n_batches=100, timing="original")
    assert [i for i in range(1875) if original.injects_at(i)] == list(range(0, 1801, 100))
    assert 3 * sum(map(original.injects_at, range(1875))) == 57
    ours = NoisyUpdates(last_epochs=3, every_n_batches=100)
    assert [i for i in range(1875) if ours.injects_at(i)] == list(range(99, 1800, 100))
    # ECG: every 25 batches from batch 0
    ecg = NoisyUpdates(last_epochs=2, every_n_batches=25, relative_sd=0.1, timing="original", reference="max")
    assert [i for i in range(80) if ecg.injects_at(i)] == [0, 25, 50, 75]


def _event_log(monkeypatch):
    """Patch clipping and injection to log ("clip" | "noise") per call: each clip ends a batch."""
    events = []
    clip, noise = training.clip_weights, noisy_updates.add_permanent_noise
    monkeypatch.setattr(training, "clip_weights", lambda *a: (events.append("clip"), clip(*a)))
    monkeypatch.setattr(noisy_updates, "add_permanent_noise", lambda *a: (events.append("noise"), noise(*a)))
    return events


def _injected_batches(events, noise_first):
    """Global batch indices that got an injection, from the event log."""
    batches, batch = [], 0
    for event in events:
        if event == "clip":
            batch += 1
        else:
            batches.append(batch if noise_first else batch - 1)
    return batches


@pytest.mark.parametrize("timing, order, expected", [
    # 16 batches per epoch, epochs 1 and 2 of 0..2 are late, every 4th batch
    ("original", "noise_then_clip", [16, 20, 24, 28, 32, 36, 40, 44]),
    ("interval_end", "clip_then_noise", [19, 23, 27, 31, 35, 39, 43, 47]),
])
def test_injections_at_the_right_batches_and_in_the_right_order(monkeypatch, timing, order, expected):
    events = _event_log(monkeypatch)
    updates = NoisyUpdates(last_epochs=2, every_n_batches=4, relative_sd=0.05, timing=timing, order=order)
    train(model(), toy_data(), settings("noisy_updates", epochs=3, weight_clip_std=2.5, noisy_updates=updates),
          device=CPU)
    assert events.count("clip") == 48
    assert _injected_batches(events, order == "noise_then_clip") == expected
    # the order within a batch: the noise comes before (after) that batch's clipping
    first = events.index("noise")
    assert events[first + 1 if order == "noise_then_clip" else first - 1] == "clip"
    if order == "noise_then_clip":
        assert events[first - 1] == "clip"  # the previous batch's clip, then this batch's noise


def test_injection_scale_max_is_the_absolute_value_of_the_largest_weight():
    # W all negative: max(W) = -1, so sd = 0.1 * |max(W)| = 0.1 (max|W| would give 0.3, range 0.2)
    w = torch.tensor([-3.0, -1.0, -2.0, -1.5])
    expected = w + 0.1 * torch.randn(4, generator=torch.Generator().manual_seed(5))
    noisy_updates.add_permanent_noise([w], 0.1, torch.Generator().manual_seed(5), reference="max")
    assert torch.allclose(w, expected)
    v = torch.tensor([-3.0, -1.0, -2.0, -1.5])
    expected_range = v + 0.1 * 2.0 * torch.randn(4, generator=torch.Generator().manual_seed(5))
    noisy_updates.add_permanent_noise([v], 0.1, torch.Generator().manual_seed(5))  # default: range
    assert torch.allclose(v, expected_range)


def test_per_batch_schedule_steps_after_every_optimizer_step(monkeypatch):
    # The original's MultiStepLR([100, 150, 200], 0.5) stepped every batch (SPEC §2.1), scaled
    # down: milestones 5, 20, 40 over 3 epochs of 16 batches
    rates = []
    make = training.make_optimizer

    def recording_optimizer(spec, parameters):
        optimizer = make(spec, parameters)
        optimizer.register_step_pre_hook(lambda opt, *_: rates.append(opt.param_groups[0]["lr"]))
        return optimizer

    monkeypatch.setattr(training, "make_optimizer", recording_optimizer)
    schedule = {"name": "MultiStepLR", "milestones": [5, 20, 40], "gamma": 0.5, "interval": "batch"}
    result = train(model(), toy_data(), settings(epochs=3, lr_scheduler=schedule), device=CPU)
    expected = [0.01] * 5 + [0.005] * 15 + [0.0025] * 20 + [0.00125] * 8
    assert rates == pytest.approx(expected)
    # the history gives the rate of each epoch's last batch (indices 15, 31, 47)
    assert [row["lr"] for row in result.history] == pytest.approx([0.005, 0.0025, 0.00125])


def test_bad_schedule_interval_and_injection_options_are_rejected():
    with pytest.raises(ValueError, match="interval"):
        training.make_lr_scheduler({"name": "StepLR", "step_size": 1, "interval": "step"},
                                   training.make_optimizer({"name": "SGD", "lr": 0.1}, model().parameters()))
    for option in ("timing", "order", "reference"):
        with pytest.raises(ValueError, match=f"noisy_updates.{option}"):
            NoisyUpdates(**{option: "sometimes"})


def test_resume_with_a_per_batch_schedule_and_original_injections_is_bit_identical(tmp_path, monkeypatch):
    config = settings("noisy_updates", epochs=3, weight_clip_std=2.5,
                      lr_scheduler={"name": "MultiStepLR", "milestones": [5, 20, 40], "gamma": 0.5,
                                    "interval": "batch"},
                      noisy_updates=NoisyUpdates(last_epochs=2, every_n_batches=4, relative_sd=0.05,
                                                 timing="original", order="noise_then_clip"))
    uninterrupted = train(model(), toy_data(), config, device=CPU, resume_path=tmp_path / "a.resume",
                          resume_extra=IDENTITY)
    resume = tmp_path / "b.resume"
    with killed_in_epoch(monkeypatch, 3), pytest.raises(KeyboardInterrupt):
        train(model(), toy_data(), config, device=CPU, resume_path=resume, resume_extra=IDENTITY)
    resumed = train(model(seed=99), toy_data(), config, device=CPU, resume_path=resume, resume_extra=IDENTITY)
    assert resumed.resumed_from_epoch == 2
    for key, value in uninterrupted.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert [r["lr"] for r in resumed.history] == [r["lr"] for r in uninterrupted.history]


def test_clipping_keeps_each_tensor_within_k_of_its_own_std():
    torch.manual_seed(0)
    weights = [torch.randn(64, 32) * 3, torch.randn(10), torch.randn(1)]
    weights[0][0, :4] = torch.tensor([50.0, -50.0, 7.0, -7.0])
    expected = [w.clamp(-2.5 * w.std(), 2.5 * w.std()) if w.numel() > 1 else w.clone() for w in weights]
    training.clip_weights(weights, 2.5)
    for got, want in zip(weights, expected):
        assert torch.equal(got, want)  # to the bit, as clamping to the std's tensor
    assert weights[0][0, 0] < 50 and weights[0][0, 1] > -50


AUTOCAST_MODELS = {
    "mlp": (model, toy_data),
    "mobilenet_v2_cifar": (lambda: build_model("mobilenet_v2_cifar", num_classes=2, width_mult=0.25, stem_stride=2,
                                               inverted_residual_setting=[[1, 8, 1, 1], [4, 16, 1, 2]]),
                           lambda: standin_splits(32, 16)),
    # one step of four images: float16 convolutions on a CPU take about 0.4 s an image (the other
    # architectures and bfloat16 a few ms), and one step shows what the test looks for
    "resnet_cifar": (lambda: build_model("resnet_cifar", num_classes=2), lambda: standin_splits(4, 4)),
    "recurrent_snn original": (lambda: build_model("recurrent_snn", hidden_size=16, dynamics="original"),
                               lambda: toy_events(32, 16, steps=40)),
    "recurrent_snn normalised": (lambda: build_model("recurrent_snn", hidden_size=16),
                                 lambda: toy_events(32, 16, steps=40)),
    "recurrent_snn currents": (lambda: build_model("recurrent_snn", hidden_size=16, recurrence="currents"),
                               lambda: toy_events(32, 16, steps=40)),
}


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
@pytest.mark.parametrize("arch", AUTOCAST_MODELS)
def test_every_architecture_trains_with_mat_under_mixed_precision(arch, precision, monkeypatch):
    # mixed_precision applies on CUDA only; CPU autocast runs the same casts, so a network or a
    # noise hook that breaks under them fails here, not first on a GPU machine (float16 also
    # takes the GradScaler path, which CPU supports)
    monkeypatch.setattr(training, "autocast_dtype", lambda name, device: training.MIXED_PRECISION[name])
    make, data = AUTOCAST_MODELS[arch]
    torch.manual_seed(0)
    net = make()
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    result = train(net, data(), settings("mat_scratch", epochs=1, mixed_precision=precision), device=CPU,
                   progress=False)
    after = dict(result.model.named_parameters())
    assert all(w.dtype == torch.float32 and torch.isfinite(w).all() for w in after.values())
    assert any(not torch.equal(before[name], after[name]) for name in before), "training must move the weights"


def per_step_tally(batches):
    """The epoch's loss sum and correct count as a tensor sum after each step (the training loop's
    way before EpochTally)."""
    loss_sum = torch.zeros(())
    correct = torch.zeros((), dtype=torch.long)
    for loss, logits, labels in batches:
        loss_sum += loss * len(labels)
        correct += (logits.argmax(-1) == labels).sum()
    return float(loss_sum), int(correct)


def tally_of(batches):
    tally = training.EpochTally()
    for loss, logits, labels in batches:
        tally.add(loss, logits, labels)
    return tally.loss_sum(), tally.correct()


@pytest.mark.parametrize("default_dtype", [torch.float32, torch.float64])
def test_the_epochs_tally_is_the_per_step_sum_to_the_bit(default_dtype):
    # 1,875 batches of 32 (the paper's MNIST epoch) and a last one of 7; losses of many magnitudes,
    # so that the order and the roundings of the sum show
    g = torch.Generator().manual_seed(3)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(default_dtype)
    try:
        batches = []
        for k in range(1876):
            size = 7 if k == 1875 else 32
            loss = (torch.rand((), generator=g) * 10.0 ** float(torch.randint(-6, 3, (), generator=g))).to(default_dtype)
            batches.append((loss, torch.randn(size, 10, generator=g), torch.randint(0, 10, (size,), generator=g)))
        assert tally_of(batches) == per_step_tally(batches)
        # a loss of another type than the sum's: the additions one by one, as before
        mixed = [(loss.to(torch.bfloat16), logits, labels) for loss, logits, labels in batches[:50]]
        assert tally_of(mixed) == per_step_tally(mixed)
    finally:
        torch.set_default_dtype(previous)
    # the float32 sum differs from a float64 one and from a pairwise one here: the test can fail
    values = [float(loss) * len(labels) for loss, _, labels in batches]
    assert per_step_tally(batches)[0] != sum(values) or default_dtype is torch.float64


def test_the_epochs_tally_counts_batches_of_other_shapes_one_by_one():
    g = torch.Generator().manual_seed(4)
    batches = [(torch.tensor(0.5), torch.randn(4, 3, generator=g), torch.randint(0, 3, (4,), generator=g)),
               (torch.tensor(0.25), torch.randn(2, 6, 5, generator=g), torch.randint(0, 5, (2, 6), generator=g))]
    assert tally_of(batches) == per_step_tally(batches)
    assert training.EpochTally().loss_sum() == 0.0 and training.EpochTally().correct() == 0
