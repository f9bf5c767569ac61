"""The Gaussian weight noise applied by the C++ library (csrc/gaussian_noise.cpp through
memristor_mat.noise.gaussian): torch's expression's numbers bit for bit, its gradient the
identity, MAT trainings the same with and without it; torch's expression wherever the library does
not reach or its numbers would differ."""

import logging

import pytest
import torch
from torch import nn

from memristor_mat import native, optim, training
from memristor_mat.noise import (
    GaussianWeightNoise,
    NoisyModel,
    PrefetchedNormals,
    SampledNoise,
    apply_all,
    at_conditions,
    gaussian,
)
from memristor_mat.noise.gaussian import REFERENCES, torch_noisy
from conftest import require_agreement


@pytest.fixture
def library_calls(compiled, monkeypatch):
    """The numbers of tensors in each call of the library in the test (its noise agreeing with torch's)."""
    require_agreement(gaussian._agreement.library(), compiled, "noise")
    calls = []

    class Recorded:
        def gaussian_weight_noise(self, weights, *args):
            calls.append(len(weights))
            return compiled.gaussian_weight_noise(weights, *args)

    monkeypatch.setattr(gaussian._agreement, "library", lambda: Recorded())
    return calls


@pytest.fixture
def torch_only(monkeypatch):
    """torch's expression applies the noise (as under MEMRISTOR_MAT_NATIVE=python)."""
    monkeypatch.setattr(gaussian._agreement, "library", lambda: None)


def bits(x):
    return x.detach().view(torch.int32)


def torchs(weight, normals, sigma, reference="2absmax"):
    return torch_noisy(weight, normals.select(normals.dim() - weight.dim() - 1, 0), sigma, reference)


SHAPES = [((), ()), ((1,), ()), ((31,), ()), ((33,), (4,)), ((128, 784), ()), ((10, 128), (3,)), ((3, 4, 5, 6), ()),
          ((40000,), (2,)), ((7,), (2, 3))]


@pytest.mark.parametrize("reference", sorted(REFERENCES))
def test_the_librarys_noisy_weights_are_torchs_bit_for_bit(library_calls, reference):
    generator = torch.Generator().manual_seed(0)
    weights = [torch.randn(shape, generator=generator) * 0.07 for shape, _ in SHAPES]
    normals = [torch.randn((*draws, 1, *shape), generator=generator) for shape, draws in SHAPES]
    noise = GaussianWeightNoise(reference)
    for sigma in (0.0, 0.1, 0.35, 1, 2.5):
        ours = noise.apply_all(weights, normals, {"sigma": sigma})
        for weight, z, mine in zip(weights, normals, ours):
            theirs = torchs(weight, z, sigma, reference)
            assert mine.shape == theirs.shape and torch.equal(bits(mine), bits(theirs))
        assert torch.equal(noise.apply(weights[4], normals[4], {"sigma": sigma}), ours[4])
    assert library_calls == [len(SHAPES), 1] * 5  # one call for all of a list's tensors


def test_the_extremes_are_found_at_every_position(library_calls):
    # the library scans vectors of 4, 8 or 16 floats (its build's registers) in two chains, then
    # the tail one by one: a lowest or highest weight anywhere, in tensors around those sizes
    generator = torch.Generator().manual_seed(5)
    for n in range(1, 72):
        z = torch.randn(1, n, generator=generator)
        for position in range(n):
            weight = torch.rand(n, generator=generator) * 0.1 - 0.05
            weight[position] = -1.0
            if n - 1 - position != position:
                weight[n - 1 - position] = 0.75
            mine = GaussianWeightNoise("range").apply(weight, z, {"sigma": 0.3})
            assert torch.equal(bits(mine), bits(torchs(weight, z, 0.3, "range"))), (n, position)
    assert len(library_calls) == sum(range(1, 72))


def test_degenerate_weights_give_torchs_numbers(library_calls):
    zeros = torch.zeros(100)
    zeros[::3] = -0.0  # the reference is +-0: which zero depends on the order of torch's reduction
    nan = torch.randn(100)
    nan[17] = float("nan")
    infinite = torch.randn(100)
    infinite[5] = float("inf")
    z = torch.randn(1, 100)
    z[0, 3] = 0.0  # 0 * inf
    for reference in REFERENCES:
        noise = GaussianWeightNoise(reference)
        mine = noise.apply(zeros, z, {"sigma": 0.2})
        assert torch.equal(bits(mine), bits(torchs(zeros, z, 0.2, reference)))
        for weight in (nan, infinite):
            mine, theirs = noise.apply(weight, z, {"sigma": 0.2}), torchs(weight, z, 0.2, reference)
            assert torch.equal(mine.isnan(), theirs.isnan())
            assert torch.equal(bits(mine)[~theirs.isnan()], bits(theirs)[~theirs.isnan()])
    assert library_calls


@pytest.mark.parametrize("case", ["float64", "float16", "mixed dtypes", "transposed weight", "strided normals",
                                  "empty"])
def test_tensors_the_passes_do_not_take_get_torchs_expression(library_calls, case):
    generator = torch.Generator().manual_seed(1)
    weight, z = torch.randn(12, 10, generator=generator), torch.randn(1, 12, 10, generator=generator)
    if case == "float64":
        weight, z = weight.double(), z.double()
    elif case == "float16":
        weight, z = weight.half(), z.half()
    elif case == "mixed dtypes":
        z = z.double()
    elif case == "transposed weight":
        weight, z = weight.t(), torch.randn(1, 10, 12, generator=generator)
    elif case == "strided normals":
        z = torch.randn(1, 12, 20, generator=generator)[..., ::2]
    if case == "empty":
        with pytest.raises(RuntimeError, match="aminmax"):  # torch's own error
            GaussianWeightNoise().apply(torch.empty(0), torch.empty(1, 0), {"sigma": 0.1})
    else:
        mine = GaussianWeightNoise().apply(weight, z, {"sigma": 0.3})
        theirs = torchs(weight, z, 0.3)
        assert mine.dtype == theirs.dtype and torch.equal(mine, theirs)
    assert library_calls == [1]


def test_the_library_names_normals_of_the_wrong_shape(compiled):
    with pytest.raises(RuntimeError, match=r"normals of shape \[4\] for a weight of shape \[3, 4\]"):
        compiled.gaussian_weight_noise([torch.zeros(3, 4)], [torch.zeros(4)], 0.1, "2absmax")
    with pytest.raises(RuntimeError, match="2 weights but 1 tensors of normals"):
        compiled.gaussian_weight_noise([torch.zeros(3)] * 2, [torch.zeros(1, 3)], 0.1, "2absmax")
    with pytest.raises(RuntimeError, match="unknown noise reference 'mean'"):
        compiled.gaussian_weight_noise([torch.zeros(3)], [torch.zeros(1, 3)], 0.1, "mean")


def test_the_gradient_is_the_identity_summed_over_draws(library_calls):
    generator = torch.Generator().manual_seed(2)
    for draws in ((), (5,)):
        grads = []
        for use_library in (True, False):
            weight = nn.Parameter(torch.randn(6, 9, generator=torch.Generator().manual_seed(3)))
            z = torch.randn((*draws, 1, 6, 9), generator=torch.Generator().manual_seed(4))
            upstream = torch.randn((*draws, 6, 9), generator=torch.Generator().manual_seed(5))
            noisy = (GaussianWeightNoise().apply(weight, z, {"sigma": 0.2}) if use_library
                     else torchs(weight, z, 0.2))
            (noisy * upstream).sum().backward()
            grads.append(weight.grad)
        assert torch.equal(grads[0], grads[1])
        assert torch.equal(grads[0], upstream if not draws else upstream.sum(0))
    del generator
    assert library_calls == [1, 1]


def test_a_weight_whose_noisy_tensor_is_unused_gets_no_gradient_as_with_torch(library_calls):
    first, second = nn.Parameter(torch.randn(4)), nn.Parameter(torch.randn(3))
    noisy = GaussianWeightNoise().apply_all([first, second], [torch.randn(1, 4), torch.randn(1, 3)], {"sigma": 0.1})
    grads = torch.autograd.grad(noisy[0].sum(), [first, second], allow_unused=True)
    assert torch.equal(grads[0], torch.ones(4)) and grads[1] is None
    alone = GaussianWeightNoise().apply(second, torch.randn(1, 3), {"sigma": 0.1})
    assert torch.autograd.grad((alone * 0).sum() + noisy[0].sum(), [first, second], allow_unused=True)[1] is not None
    assert library_calls == [2, 1]


def test_normals_that_require_a_gradient_get_it_as_torch_gives_it(library_calls):
    weight = nn.Parameter(torch.randn(8, 3))
    results = []
    for use_library in (True, False):
        z = torch.randn(1, 8, 3, generator=torch.Generator().manual_seed(6)).requires_grad_()
        noisy = GaussianWeightNoise().apply(weight, z, {"sigma": 0.4}) if use_library else torchs(weight, z, 0.4)
        (noisy ** 2).sum().backward()
        results.append((noisy.detach(), z.grad))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


def mat_training(seed=0, steps=40, prefetch=False):
    """A few MAT steps of the paper's MNIST recipe (Adam, clipping) on random images."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128, bias=False), nn.ReLU(), nn.Linear(128, 10, bias=False))
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    shapes = {name: p.shape for name, p in model.named_parameters()}
    normals = PrefetchedNormals(shapes, 1, generator, steps) if prefetch else None
    noisy = NoisyModel(model, GaussianWeightNoise(), {"sigma": 0.2}, generator=None if prefetch else generator,
                       normals=normals)
    data = torch.Generator().manual_seed(seed + 1)
    x, y = torch.rand(32 * steps, 1, 28, 28, generator=data), torch.randint(0, 10, (32 * steps,), generator=data)
    try:
        for step in range(steps):
            batch = slice(32 * step, 32 * (step + 1))
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(noisy(x[batch]), y[batch]).backward()
            optimizer.step()
            training.clip_weights(list(model.parameters()), 2.5)
    finally:
        if normals is not None:
            normals.close()
    return model


@pytest.mark.parametrize("prefetch", [False, True])
def test_mat_training_is_the_same_with_the_library(library_calls, monkeypatch, prefetch):
    ours = mat_training(prefetch=prefetch)
    assert library_calls == [2] * 40  # one call a step for both weights
    monkeypatch.setattr(gaussian._agreement, "library", lambda: None)
    theirs = mat_training(prefetch=prefetch)
    assert all(torch.equal(p, q) for p, q in zip(ours.parameters(), theirs.parameters()))


def test_evaluation_reads_a_layer_in_one_call(library_calls):
    weights = {"w": torch.randn(5, 4), "b": torch.randn(5)}
    normals = {"w": torch.randn(3, 1, 5, 4), "b": torch.randn(3, 1, 5)}
    read = at_conditions(GaussianWeightNoise(), weights, normals)
    for sigma in (0.1, 0.3):
        noisy = read({"sigma": sigma})
        assert list(noisy) == ["w", "b"]
        assert all(torch.equal(noisy[n], torchs(weights[n], normals[n], sigma)) for n in weights)
    assert library_calls == [2, 2]


def test_without_the_library_torch_applies_the_noise(monkeypatch):
    monkeypatch.setenv(native.ENVIRONMENT_VARIABLE, "python")  # never built
    monkeypatch.setattr(native, "_loaded", lambda mode: pytest.fail("nothing should be built"))
    weight, z = nn.Parameter(torch.randn(4, 5)), torch.randn(1, 4, 5)
    noisy = GaussianWeightNoise().apply(weight, z, {"sigma": 0.2})
    assert type(noisy.grad_fn).__name__ == "AddcmulBackward0" and torch.equal(noisy, torchs(weight, z, 0.2))
    assert gaussian.applier() == "torch's operators apply the Gaussian weight noise (the C++ library is not in use)"


def test_tensors_off_the_cpu_are_not_given_to_the_library(monkeypatch):
    monkeypatch.setattr(gaussian._agreement, "library", lambda: pytest.fail("off the CPU: torch's expression"))
    weight, z = torch.empty(4, 5, device="meta"), torch.empty(1, 4, 5, device="meta")
    assert GaussianWeightNoise().apply(weight, z, {"sigma": 0.2}).device.type == "meta"


class Rounding:
    """A library whose noisy weights are off by one unit in the last place at one element."""

    def __init__(self, compiled):
        self.compiled = compiled

    def gaussian_weight_noise(self, *args):
        noisy = self.compiled.gaussian_weight_noise(*args)
        bits(noisy[-1]).view(-1)[-1] += 1
        return noisy


def test_a_library_that_would_change_the_numbers_is_not_used(compiled, monkeypatch, caplog):
    wrong = Rounding(compiled)
    monkeypatch.setattr(native, "cpu_module", lambda *tensors: wrong)
    monkeypatch.setattr(gaussian._agreement, "reasons", {})
    weight, z = torch.randn(30), torch.randn(1, 30)
    with caplog.at_level(logging.INFO, logger="memristor_mat.noise.gaussian"):
        noisy = GaussianWeightNoise().apply(weight, z, {"sigma": 0.2})
        GaussianWeightNoise().apply(weight, z, {"sigma": 0.2})
    assert torch.equal(bits(noisy), bits(torchs(weight, z, 0.2)))
    assert caplog.text.count("torch's operators apply the Gaussian weight noise") == 1  # checked once per library
    assert "1 of 462 noisy weights differ from torch's (reference 2absmax, shape (33,), draws (2, 7)" in caplog.text
    assert gaussian.applier().startswith("torch's operators apply the Gaussian weight noise: the C++ library's "
                                         "would not be the same")


class Scaled(SampledNoise):
    """A plug-in noise model with ``apply`` alone (``apply_all`` from SampledNoise)."""

    registry_names = ("gaussian",)

    def is_identity(self, condition):
        return False

    def apply(self, weight, normals, condition):
        return weight + condition["sigma"] * normals.select(normals.dim() - weight.dim() - 1, 0)


class ApplyOnly:
    """A noise model following the protocol's required methods only (no ``apply_all``)."""

    apply = Scaled.apply


def test_apply_all_of_models_without_their_own():
    weights, normals = [torch.ones(3), torch.ones(2, 2)], [torch.ones(1, 3), torch.ones(1, 2, 2)]
    for noise in (Scaled(), ApplyOnly()):
        noisy = apply_all(noise, weights, normals, {"sigma": 0.5})
        assert [n.tolist() for n in noisy] == [[1.5] * 3, [[1.5, 1.5]] * 2]
