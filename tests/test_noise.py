"""Noise injection (SPEC §1): statistics, straight-through gradient, isolation between models."""

import itertools
import os
import signal

import pytest
import torch
from torch import nn

from memristor_mat import normals
from memristor_mat.models.mlp import MLP
from memristor_mat.noise import (
    GaussianWeightNoise,
    NoisyModel,
    PrefetchedNormals,
    draw_normals,
    make_noise_model,
    noisy_parameter_names,
    weight_reference,
)


class Probe(nn.Module):
    """Returns the weight it is given, so a forward pass exposes the noisy tensor."""

    def __init__(self, weight):
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x):
        return self.weight * x


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, bias=True), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)
    )


@pytest.mark.parametrize("reference, expected", [("2absmax", 2 * 3.0), ("absmax", 3.0), ("range", 3.0 + 1.0)])
def test_reference_ranges(reference, expected):
    w = torch.tensor([[-1.0, 0.5], [3.0, 0.0]])
    assert float(weight_reference(w, reference)) == pytest.approx(expected)


def test_unknown_reference_model_option_and_condition_are_rejected():
    with pytest.raises(ValueError, match="reference 'median'"):
        GaussianWeightNoise(reference="median")
    with pytest.raises(ValueError, match="noise model 'memristor'"):
        make_noise_model("memristor")
    with pytest.raises(ValueError, match="no option 'sigma_train'"):
        make_noise_model("gaussian", {"sigma_train": 0.1})
    noise = make_noise_model("gaussian", {"reference": "absmax"})
    with pytest.raises(ValueError, match="'sigma'.*below the minimum"):
        noise.check_condition({"sigma": -0.1})
    with pytest.raises(ValueError, match="'t_inference' is not a condition"):
        noise.check_condition({"sigma": 0.1, "t_inference": 1})
    with pytest.raises(ValueError, match="'sigma'.*required"):
        NoisyModel(Probe(torch.ones(3)), noise, {})


def test_identity_only_at_sigma_zero_and_sample_uses_the_generator():
    noise = GaussianWeightNoise()
    assert noise.condition_keys == ("sigma",)
    assert noise.is_identity({"sigma": 0.0}) and not noise.is_identity({"sigma": 1e-9})
    weight = torch.tensor([[-1.0, 0.5], [3.0, 0.0]])
    z = torch.randn((1, 2, 2), generator=torch.Generator().manual_seed(4))
    # W + sigma * 2 max|W| * z, by hand: 2 max|W| = 6
    expected = weight + 0.1 * 6.0 * z[0]
    torch.testing.assert_close(noise.sample(weight, torch.Generator().manual_seed(4), {"sigma": 0.1}), expected)


@pytest.mark.parametrize("reference", ["2absmax", "absmax", "range"])
def test_empirical_noise_std_is_sigma_times_reference(reference):
    torch.manual_seed(0)
    weight = torch.randn(400, 250) * 0.3 + 0.1
    sigma = 0.07
    model = NoisyModel(Probe(weight.clone()), GaussianWeightNoise(reference=reference), {"sigma": sigma},
                       generator=torch.Generator().manual_seed(1))
    noise = model(torch.ones(())) - weight
    expected = sigma * float(weight_reference(weight, reference))
    # 100,000 samples: the sample std is within 1% of the true std with overwhelming probability
    assert float(noise.detach().std()) == pytest.approx(expected, rel=0.01)
    assert abs(float(noise.detach().mean())) < 4 * expected / 100_000**0.5


def test_fresh_draw_every_forward_pass():
    model = NoisyModel(Probe(torch.ones(50)), GaussianWeightNoise(), {"sigma": 0.1}, generator=torch.Generator().manual_seed(0))
    first, second = model(torch.ones(())), model(torch.ones(()))
    assert not torch.equal(first, second)


def test_gradient_is_straight_through():
    torch.manual_seed(0)
    weight = torch.randn(30, 20)
    probe = Probe(weight.clone())
    model = NoisyModel(probe, GaussianWeightNoise(), {"sigma": 0.2}, generator=torch.Generator().manual_seed(3))
    upstream = torch.randn(30, 20)
    (model(torch.ones(())) * upstream).sum().backward()
    # d(W + s z)/dW = identity: no gradient through the noise or through max|W|
    assert torch.equal(probe.weight.grad, upstream)


def test_gradient_reaches_clean_weights_of_a_real_network():
    torch.manual_seed(0)
    mlp = MLP(input_size=12, hidden_sizes=[7], num_classes=3, bias=True)
    model = NoisyModel(mlp, GaussianWeightNoise(), {"sigma": 0.1}, generator=torch.Generator().manual_seed(0))
    model(torch.randn(5, 12)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mlp.parameters())


class TiedPair(nn.Module):
    """One weight in two modules (``second.weight`` is ``first.weight``): both uses must see the
    same noisy tensor."""

    def __init__(self):
        super().__init__()
        self.first = Probe(torch.ones(40))
        self.second = Probe(torch.ones(40))
        self.second.weight = self.first.weight

    def forward(self, x):
        return torch.stack([self.first(x), self.second(x)])


def test_a_tied_weight_gets_one_draw_in_all_its_uses():
    model = NoisyModel(TiedPair(), GaussianWeightNoise(), {"sigma": 0.3}, generator=torch.Generator().manual_seed(0))
    first, second = model(torch.ones(()))
    assert not torch.equal(first, torch.ones(40))
    assert torch.equal(first, second)
    # an untied twin is noised under each name separately
    untied = TiedPair()
    untied.second.weight = nn.Parameter(torch.ones(40))
    first, second = NoisyModel(untied, GaussianWeightNoise(), {"sigma": 0.3},
                               generator=torch.Generator().manual_seed(0))(torch.ones(()))
    assert not torch.equal(first, second)


class RecurrentNet(nn.Module):
    """torch's RNN keeps its own list of its weights (updated by its ``__setattr__``)."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(3, 5, batch_first=True)
        self.head = nn.Linear(5, 2)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


def _spiking_net():
    from memristor_mat.models.snn import RecurrentSNN

    torch.manual_seed(0)
    return RecurrentSNN(n_inputs=4, hidden_size=9, num_classes=3)


@pytest.mark.parametrize("factory, shape, direct", [
    (lambda: MLP(input_size=12, hidden_sizes=[7], num_classes=3, bias=True), (5, 12), True),
    (small_cnn, (4, 3, 8, 8), True),
    (_spiking_net, (4, 20, 4), True),
    (RecurrentNet, (4, 6, 3), False),
])
def test_noisy_weights_swapped_in_directly_match_functional_call(factory, shape, direct):
    """The forward pass swaps the noisy tensors into their modules' parameter dictionaries, where
    that is safe, instead of through functional_call: the same outputs, gradients and batch-norm
    statistics, bit for bit, and the clean parameters back in place afterwards."""
    torch.manual_seed(1)
    x = torch.randn(shape) if factory is not _spiking_net else (torch.rand(shape) < 0.3).float()
    runs = []
    for swap in ("direct", "functional_call"):
        torch.manual_seed(0)
        model = factory()
        model.train()
        noisy = NoisyModel(model, GaussianWeightNoise(), {"sigma": 0.2}, generator=torch.Generator().manual_seed(2))
        assert (noisy._owners is not None) == direct
        if swap == "functional_call":
            noisy._owners = None
        clean = {name: p.detach().clone() for name, p in model.named_parameters()}
        identities = [id(p) for p in model.parameters()]
        out = noisy(x)
        out.square().sum().backward()
        assert [id(p) for p in model.parameters()] == identities
        assert all(isinstance(p, nn.Parameter) for p in model.parameters())
        assert all(torch.equal(p, clean[name]) for name, p in model.named_parameters())
        assert not torch.equal(out, model(x))  # the noise reached the forward pass
        runs.append((out.detach(), {n: p.grad for n, p in model.named_parameters()},
                     {n: b.clone() for n, b in model.named_buffers()}))
    (out_a, grads_a, buffers_a), (out_b, grads_b, buffers_b) = runs
    assert torch.equal(out_a, out_b)
    assert grads_a.keys() == grads_b.keys() and all(torch.equal(grads_a[n], grads_b[n]) for n in grads_a)
    assert all(torch.equal(buffers_a[n], buffers_b[n]) for n in buffers_a)


def test_clean_parameters_are_back_after_a_forward_pass_that_fails():
    mlp = MLP(input_size=12, hidden_sizes=[7], num_classes=3)
    model = NoisyModel(mlp, GaussianWeightNoise(), {"sigma": 0.3}, generator=torch.Generator().manual_seed(0))
    before = [(p, p.detach().clone()) for p in mlp.parameters()]
    with pytest.raises(RuntimeError):
        model(torch.randn(5, 11))  # wrong input width
    assert [p for p, _ in before] == list(mlp.parameters())
    assert all(isinstance(p, nn.Parameter) and torch.equal(p, value) for p, value in before)


@pytest.mark.parametrize("switch", ["disabled", "sigma0"])
def test_no_noise_is_bitwise_the_plain_model(switch):
    torch.manual_seed(0)
    mlp = MLP(input_size=12, hidden_sizes=[7], num_classes=3)
    noise = GaussianWeightNoise()
    model = NoisyModel(mlp, noise, {"sigma": 0.0 if switch == "sigma0" else 0.3}, generator=torch.Generator().manual_seed(0))
    model.enabled = switch != "disabled"
    x = torch.randn(9, 12)
    assert torch.equal(model(x), mlp(x))


def test_two_models_with_different_sigma_do_not_interfere():
    weight = torch.randn(200, 200)
    low = NoisyModel(Probe(weight.clone()), GaussianWeightNoise(), {"sigma": 0.01}, generator=torch.Generator().manual_seed(0))
    high = NoisyModel(Probe(weight.clone()), GaussianWeightNoise(), {"sigma": 0.2}, generator=torch.Generator().manual_seed(0))
    high.enabled = True
    low_noise = low(torch.ones(())) - weight
    high_noise = high(torch.ones(())) - weight
    # same draws, scaled by each model's own sigma: building the second changed nothing in the first
    torch.testing.assert_close(high_noise, low_noise * 20, rtol=1e-4, atol=1e-5)
    low.enabled = False
    assert torch.equal(low(torch.ones(())), weight)
    assert not torch.equal(high(torch.ones(())), weight)


def test_conv_and_linear_weights_and_existing_biases_get_noise_batchnorm_optional():
    model = small_cnn()
    names = noisy_parameter_names(model)
    assert names == ("0.weight", "0.bias", "4.weight", "4.bias")
    with_bn = noisy_parameter_names(model, include_normalization=True)
    assert set(with_bn) == set(names) | {"1.weight", "1.bias"}
    mlp_names = noisy_parameter_names(MLP(bias=False))
    assert all(name.endswith("weight") for name in mlp_names)  # a missing bias is never noised


def test_every_noised_tensor_changes_in_forward_pass():
    torch.manual_seed(0)
    model = small_cnn().eval()
    seen = {}

    def capture(name):
        def hook(module, args):
            seen[name] = (module.weight.detach().clone(), module.bias.detach().clone())
        return hook

    model[0].register_forward_pre_hook(capture("conv"))
    model[4].register_forward_pre_hook(capture("linear"))
    noisy = NoisyModel(model, GaussianWeightNoise(), {"sigma": 0.1}, generator=torch.Generator().manual_seed(0))
    noisy(torch.randn(2, 3, 8, 8))
    assert not torch.equal(seen["conv"][0], model[0].weight)
    assert not torch.equal(seen["conv"][1], model[0].bias)
    assert not torch.equal(seen["linear"][0], model[4].weight)
    assert not torch.equal(seen["linear"][1], model[4].bias)
    # the clean parameters themselves are untouched
    assert torch.equal(model[1].weight, torch.ones(4))


def test_same_generator_seed_gives_same_noise():
    weight = torch.randn(64)
    a = NoisyModel(Probe(weight.clone()), GaussianWeightNoise(), {"sigma": 0.1}, generator=torch.Generator().manual_seed(5))
    b = NoisyModel(Probe(weight.clone()), GaussianWeightNoise(), {"sigma": 0.1}, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a(torch.ones(())), b(torch.ones(())))


@pytest.mark.parametrize("process", [True, False], ids=["process", "thread"])
def test_prefetched_normals_equal_a_plain_loop(process):
    shapes = {"a": torch.Size([3, 4]), "b": torch.Size([5])}
    stream = PrefetchedNormals(shapes, 2, torch.Generator().manual_seed(9), 6, process=process)
    # a draw is valid until the next one is taken (the process reuses its slot): copied here
    prefetched = [{k: v.clone() for k, v in draw.items()} for draw in itertools.islice(stream, 10)]
    stream.close()
    reference_generator = torch.Generator().manual_seed(9)
    reference = [draw_normals(shapes, 2, reference_generator) for _ in range(6)]
    assert len(prefetched) == 6
    for got, expected in zip(prefetched, reference):
        assert got.keys() == expected.keys()
        assert all(torch.equal(got[k], expected[k]) for k in got)


@pytest.mark.parametrize("process", [True, False], ids=["process", "thread"])
def test_prefetched_normals_stop_cleanly_when_closed_early(process):
    stream = PrefetchedNormals({"w": torch.Size([10])}, 1, torch.Generator().manual_seed(0), 1000, depth=2,
                               process=process)
    next(stream)
    stream.close()
    assert not stream.is_alive()


@pytest.mark.parametrize("process", [True, False], ids=["process", "thread"])
def test_a_failed_draw_is_raised_where_the_normals_are_taken(process, monkeypatch):
    def broken_draw(*args, **kwargs):
        raise MemoryError("no room for the normals")

    monkeypatch.setattr(normals, "normal_", broken_draw)  # a forked process inherits the patch
    stream = PrefetchedNormals({"w": torch.Size([10])}, 1, torch.Generator().manual_seed(0), 5, process=process)
    with pytest.raises((RuntimeError, MemoryError), match="no room for the normals"):
        next(stream)
    stream.close()


def test_a_killed_drawing_process_is_reported_not_waited_for():
    stream = PrefetchedNormals({"w": torch.Size([10])}, 1, torch.Generator().manual_seed(0), 1000, process=True)
    next(stream)
    os.kill(stream._worker.pid, signal.SIGKILL)
    with pytest.raises(RuntimeError, match="ended early"):
        for _ in range(stream.depth + 1):  # the draws already made (a ring's worth at most) come out first
            next(stream)
    stream.close()


def test_model_can_restrict_its_memristor_parameters():
    class WithTimeConstants(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(3))
            self.tau = nn.Parameter(torch.ones(3))

        def memristor_parameter_names(self):
            return ["w"]

        def forward(self, x):
            return self.w * self.tau * x

    model = WithTimeConstants()
    assert noisy_parameter_names(model) == ("w",)


def test_the_ring_outgrows_a_cores_cache_for_small_draws_and_keeps_three_slots_for_large():
    from memristor_mat.noise.injection import MAX_DEPTH, RING_BYTES, ring_depth

    mlp = 4 * (784 * 128 + 128 * 10)  # the MNIST MLP's float32 normals
    assert ring_depth(mlp) * mlp >= RING_BYTES > (ring_depth(mlp) - 1) * mlp
    assert ring_depth(RING_BYTES) == 3 and ring_depth(100 * RING_BYTES) == 3
    assert ring_depth(16) == MAX_DEPTH
    stream = PrefetchedNormals({"w": torch.Size([128, 784])}, 1, torch.Generator().manual_seed(0), 2, process=False)
    assert stream.depth == ring_depth(4 * 128 * 784)
    stream.close()
