"""Recurrent spiking network of the ECG task (SPEC §3 ECG): dynamics, surrogate gradient, masked
recurrence under weight noise, time-constant variability, vmap evaluation and training."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from memristor_mat.data import DatasetSplits
from memristor_mat.evaluation import clean_accuracy, correct_with_stacked_weights, correct_with_weights
from memristor_mat.models import ARCHITECTURES, architecture_options, build_model
from memristor_mat.noise import GaussianWeightNoise, NoisyModel, noisy_parameter_names
from memristor_mat.snn import RecurrentSNN, double_integrator_kernel, lognormal_spread, spike
from memristor_mat.training import TrainingSettings, train

CPU = torch.device("cpu")
VARIANTS = ["spiking", "tanh"]


def events(batch=6, steps=40, channels=4, rate=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((batch, steps, channels), generator=g) < rate).float()


def snn(seed=0, **options):
    torch.manual_seed(seed)
    options.setdefault("hidden_size", 24)
    return RecurrentSNN(**options)


def toy_data(n_train=200, n_test=100, steps=50, seed=0):
    """Class 1: a burst of events on channel 0 early in the window; class 0: a burst on channel 2.
    Sparse background events on all channels."""
    g = torch.Generator().manual_seed(seed)

    def split(n):
        x = (torch.rand((n, steps, 4), generator=g) < 0.02).float()
        y = torch.randint(0, 2, (n,), generator=g)
        start = torch.randint(2, 12, (n,), generator=g)
        for i in range(n):
            channel = 0 if y[i] == 1 else 2
            x[i, start[i]:start[i] + 6, channel] = 1.0
        return x, y

    x_train, y_train = split(n_train)
    x_test, y_test = split(n_test)
    return DatasetSplits("toy_events", x_train, y_train, x_test, y_test, 2, "toy event sequences")


def settings(method="vanilla", **overrides):
    values = dict(method=method, epochs=8, batch_size=16, optimizer={"name": "Adamax", "lr": 1e-2}, seed=0,
                  sigma_train=0.1 if method in ("mat", "mat_scratch") else 0.0, eval_batch_size=100)
    values.update(overrides)
    return TrainingSettings(**values)


# --------------------------------------------------------------------------- shapes and values


@pytest.mark.parametrize("neuron", VARIANTS)
@pytest.mark.parametrize("recurrence", ["spikes", "currents"])
def test_shapes_and_recorded_values(neuron, recurrence):
    model = snn(neuron=neuron, recurrence=recurrence)
    x = events()
    assert model(x).shape == (6, 2)
    trace = model.record(x)
    assert trace["input"].shape == (6, 40, 4)
    assert trace["hidden"].shape == trace["membrane"].shape == (6, 40, 24)
    assert trace["readout"].shape == (6, 40, 2)
    assert torch.equal(trace["logits"], model(x))
    assert torch.equal(trace["logits"], trace["readout"].amax(dim=1))
    hidden = trace["hidden"]
    if neuron == "spiking":
        assert set(hidden.unique().tolist()) <= {0.0, 1.0}
        assert hidden.sum() > 0, "the initialisation should make the network spike"
        # a spike is emitted exactly when the membrane (before reset) crosses the threshold
        assert torch.equal(hidden, (trace["membrane"] > 1.0).float())
    else:
        assert hidden.min() >= -1 and hidden.max() <= 1  # tanh, saturating to +-1 in float32
        assert (hidden.abs() < 1).float().mean() > 0.5
        assert torch.allclose(hidden, torch.tanh(trace["membrane"] - 1.0))


@pytest.mark.parametrize("neuron", VARIANTS)
@pytest.mark.parametrize("recurrence", ["spikes", "currents"])
def test_lean_inference_pass_matches_the_training_pass(neuron, recurrence):
    model = snn(neuron=neuron, recurrence=recurrence).train()
    x = events(batch=16, steps=60, seed=5)
    with torch.no_grad():
        lean = model(x)  # steps the input and readout projections one at a time
    torch.testing.assert_close(lean, model(x).detach(), rtol=1e-5, atol=1e-5)


def test_readout_is_the_leaky_double_integrator():
    model = snn()
    trace = model.record(events())
    drive = trace["hidden"] @ model.w_out.detach()
    alpha, beta = math.exp(-(1 / 360) / 5e-3), math.exp(-(1 / 360) / 20e-3)
    out_syn = out_mem = torch.zeros(6, 2)
    expected = []
    for t in range(drive.shape[1]):
        out_syn = alpha * out_syn + drive[:, t]
        out_mem = beta * out_mem + out_syn
        expected.append(out_mem)
    torch.testing.assert_close(trace["readout"], torch.stack(expected, dim=1), rtol=1e-5, atol=1e-5)
    kernel = double_integrator_kernel(0.5, 0.5, 4, dtype=torch.float64)  # equal constants: (n+1) a^n
    assert kernel[3, 0] == pytest.approx(4 * 0.5**3) and kernel[0, 3] == 0


def test_bad_options_are_rejected_by_name():
    for options, word in [({"neuron": "relu"}, "neuron"), ({"recurrence": "voltages"}, "recurrence"),
                          ({"tau_mem": 0}, "tau_mem"), ({"hidden_size": 0}, "sizes"),
                          ({"spike_count_weight": -1}, "spike_count_weight"),
                          ({"time_constant_variability": "yes"}, "time_constant_variability")]:
        with pytest.raises(ValueError, match=word):
            RecurrentSNN(**options)
    with pytest.raises(ValueError, match="inputs"):
        snn()(torch.zeros(2, 10, 3))


def test_registered_architecture():
    assert ARCHITECTURES["recurrent_snn"] is RecurrentSNN
    options = architecture_options("recurrent_snn", {"arch": "recurrent_snn", "hidden_size": 8}, (250, 4), 2)
    assert options == {"hidden_size": 8, "n_inputs": 4, "num_classes": 2}
    model = build_model("recurrent_snn", **options)
    assert model(events()).shape == (6, 2)
    # a checkpoint's state dict (weights and the drawn time constants) rebuilds the same network
    rebuilt = build_model("recurrent_snn", **options, variability_seed=9)
    rebuilt.load_state_dict(model.state_dict())
    assert torch.equal(rebuilt(events()), model(events()))


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("threshold", [1.0, torch.tensor(1.0)])
def test_surrogate_gradient_values(threshold):
    offsets = [-0.5, -0.1, 0.0, 0.05, 0.3]
    membrane = (1.0 + torch.tensor(offsets)).requires_grad_()
    out = spike(membrane, threshold, 10.0)
    assert out.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]  # exactly the step: strictly above threshold
    out.sum().backward()
    expected = [1 / (10 * abs(v) + 1) ** 2 for v in offsets]
    torch.testing.assert_close(membrane.grad, torch.tensor(expected))


def test_surrogate_under_vmap_and_grad_transforms():
    membrane = torch.tensor([[0.5, 1.2], [1.0, 0.9], [2.0, -1.0]])

    def total(m):
        return spike(m, 1.0, 10.0).sum()

    per_row = torch.vmap(torch.func.grad(total))(membrane)
    torch.testing.assert_close(per_row, 1 / (10 * (membrane - 1).abs() + 1) ** 2)
    assert torch.equal(torch.vmap(lambda m: spike(m, 1.0, 10.0))(membrane), (membrane > 1).float())


@pytest.mark.parametrize("neuron", VARIANTS)
@pytest.mark.parametrize("recurrence", ["spikes", "currents"])
def test_gradients_reach_every_weight(neuron, recurrence):
    model = snn(neuron=neuron, recurrence=recurrence).train()
    loss = model.training_loss(model(events()), torch.tensor([0, 1, 0, 1, 1, 0]))
    loss.backward()
    for name in ("w_in", "w_rec", "w_out"):
        grad = getattr(model, name).grad
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    assert torch.all(model.w_rec.grad.diagonal() == 0)  # masked self-connections get no gradient


def test_training_loss_is_nll_plus_spike_regularisers():
    model = snn(spike_count_weight=1e-3, spike_rate_weight=1e-4).train()
    x, y = events(), torch.tensor([0, 1, 0, 1, 1, 0])
    loss = model.training_loss(model(x), y)
    trace = model.record(x)
    per_neuron = trace["hidden"].sum(dim=(0, 1))
    expected = (F.cross_entropy(trace["logits"], y) + 1e-3 * per_neuron.sum()
                + 1e-4 * per_neuron.square().mean())
    torch.testing.assert_close(loss.detach(), expected)


def test_training_loss_needs_a_training_forward_pass():
    model = snn()
    y = torch.zeros(6, dtype=torch.long)
    with pytest.raises(RuntimeError, match="training mode"):
        model.training_loss(torch.zeros(6, 2), y)
    model.eval()
    logits = model(events())
    with pytest.raises(RuntimeError, match="training mode"):
        model.training_loss(logits, y)
    model.train()
    with torch.no_grad():
        logits = model(events())
    with pytest.raises(RuntimeError, match="training mode"):
        model.training_loss(logits, y)
    logits = model(events())
    with pytest.raises(RuntimeError, match="6"):
        model.training_loss(logits[:3], y[:3])
    logits = model(events())
    model.training_loss(logits, y).backward()
    with pytest.raises(RuntimeError, match="one training_loss call per forward pass"):
        model.training_loss(logits, y)
    copy.deepcopy(model)  # no autograd graph left on the module


# --------------------------------------------------------------------------- weight noise


def test_recurrent_diagonal_stays_zero_under_weight_noise():
    model = snn()
    assert noisy_parameter_names(model) == ("w_in", "w_rec", "w_out")
    noisy = NoisyModel(model, GaussianWeightNoise(0.3), generator=torch.Generator().manual_seed(0))
    x = events()
    applied = noisy(x, record=True)["recurrent_weights"]
    clean = model.record(x)["recurrent_weights"]
    assert torch.all(applied.diagonal() == 0) and torch.all(clean.diagonal() == 0)
    off_diagonal = ~torch.eye(24, dtype=torch.bool)
    assert torch.all(applied[off_diagonal] != clean[off_diagonal])
    assert not torch.equal(noisy(x), model(x))
    # the stored weights stay clean and the clean model is unaffected
    assert torch.equal(model.record(x)["recurrent_weights"], clean)


@pytest.mark.parametrize("neuron", VARIANTS)
def test_monte_carlo_under_vmap_matches_draw_by_draw(neuron):
    model = snn(neuron=neuron, hidden_size=16)
    g = torch.Generator().manual_seed(1)
    x = events(batch=30, steps=30, seed=2)
    y = torch.randint(0, 2, (30,), generator=g)
    stacked = {name: p.detach() + 0.3 * p.detach().abs().max() * torch.randn((4, *p.shape), generator=g)
               for name, p in model.named_parameters()}
    batched = correct_with_stacked_weights(model, stacked, x, y, batch_size=16)
    one_by_one = [correct_with_weights(model, {n: w[d] for n, w in stacked.items()}, x, y, batch_size=16)
                  for d in range(4)]
    assert batched.tolist() == one_by_one
    assert len(set(one_by_one)) > 1, "the draws should differ"
    assert model._activity is None  # nothing batched leaks out of vmap


# --------------------------------------------------------------------------- time constants


def test_time_constant_variability():
    a, b = snn(variability_seed=3), snn(seed=1, variability_seed=3)
    assert torch.equal(a.alpha, b.alpha) and torch.equal(a.beta, b.beta)  # not from the global RNG
    c = snn(variability_seed=4)
    assert not torch.equal(a.alpha, c.alpha) and not torch.equal(a.beta, c.beta)
    assert torch.all((a.alpha > 0) & (a.alpha < 1) & (a.beta > 0) & (a.beta < 1))
    torch.testing.assert_close(a.alpha, torch.exp(-(1 / 360) / a.tau_syn_per_neuron))

    big = RecurrentSNN(hidden_size=2000, variability_seed=0)
    for tau, taus in ((5e-3, big.tau_syn_per_neuron), (20e-3, big.tau_mem_per_neuron)):
        log_tau = taus.double().log()
        assert log_tau.std().item() == pytest.approx(lognormal_spread(tau), rel=0.15)
        assert log_tau.median().exp().item() == pytest.approx(tau, rel=0.1)

    fixed = snn(time_constant_variability=False)
    assert torch.all(fixed.tau_syn_per_neuron == 5e-3) and torch.all(fixed.tau_mem_per_neuron == 20e-3)
    assert torch.allclose(fixed.alpha, torch.full((24,), math.exp(-(1 / 360) / 5e-3)))


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("neuron", VARIANTS)
@pytest.mark.parametrize("method", ["vanilla", "mat_scratch"])
def test_learns_a_separable_toy_problem(neuron, method):
    data, model = toy_data(), snn(neuron=neuron)
    assert clean_accuracy(model, data.x_test, data.y_test) < 0.9  # not solved by the initialisation
    result = train(model, data, settings(method), device=CPU, progress=False)
    assert result.history[-1]["test_accuracy_clean"] > 0.9, result.history


def test_same_seeds_same_weights():
    data = toy_data(n_train=64, n_test=32)
    runs = [train(snn(), data, settings("mat_scratch", epochs=2), device=CPU, progress=False).model
            for _ in range(2)]
    for name, value in runs[0].state_dict().items():
        assert torch.equal(value, runs[1].state_dict()[name]), name
