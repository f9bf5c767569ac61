"""torch's float32 standard deviation from the C++ library's sums (memristor_mat.statistics): the
same value as ``x.std()`` wherever it is returned, torch's kernel wherever the bounds do not decide
it, and the bounds themselves measured against exact sums."""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from memristor_mat import native, statistics
from memristor_mat.training import clip_weights


@pytest.fixture
def decisions(monkeypatch):
    """The decisions of float32_std_from_sums in the test: True where the sums decided."""
    seen = []
    real = statistics.float32_std_from_sums

    def recorded(*args):
        value = real(*args)
        seen.append(value is not None)
        return value

    monkeypatch.setattr(statistics, "float32_std_from_sums", recorded)
    return seen


def tensors(count, seed):
    """Weights as training leaves them and harder cases: normal, clipped (ties on the bounds),
    rounded to a few levels (many ties), one-signed, with a mean large against the spread, of
    4,096 to 300,000 elements, shapes of 1 to 4 dimensions."""
    g = torch.Generator().manual_seed(seed)
    for k in range(count):
        n = int(torch.randint(statistics.MIN_ELEMENTS, 300_000, (1,), generator=g))
        scale = 10 ** float(torch.empty(1).uniform_(-4, 1, generator=g))
        x = torch.randn(n, generator=g) * scale
        kind = k % 6
        if kind == 1:
            x = x.clamp(-1.5 * scale, 1.5 * scale)
        elif kind == 2:
            x = (x / scale * 4).round() * (scale / 4)
        elif kind == 3:
            x = x.abs()
        elif kind == 4:
            x = x + scale * float(torch.empty(1).uniform_(-30, 30, generator=g))
        shape = {0: (n,), 1: (n // 8, 8), 2: (n // 16, 4, 4), 3: (n // 32, 2, 4, 4)}[k % 4]
        yield kind, x[: math.prod(shape)].reshape(shape).contiguous()


@pytest.mark.parametrize("threads", [1, 2])
def test_the_standard_deviation_is_torchs_and_mostly_from_the_sums(compiled, decisions, threads):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)  # torch's kernel combines per-thread partial sums on two
    try:
        kinds = []
        for kind, x in tensors(240, seed=threads):
            kinds.append(kind)
            assert statistics.float32_std(x) == x.std().item(), (kind, x.shape)
    finally:
        torch.set_num_threads(previous)
    assert len(decisions) == len(kinds)
    near_zero_mean = [d for d, kind in zip(decisions, kinds) if kind in (0, 1, 2, 5)]
    assert sum(near_zero_mean) >= 0.9 * len(near_zero_mean), "the sums should decide most weights"
    assert sum(decisions) < len(decisions), "a large mean should leave some to torch here"


def exact_sums(x: torch.Tensor) -> tuple[Fraction, Fraction]:
    """(sum((x - mean)^2), mean) exactly: a float32 times 2^149 is an integer."""
    ints = [int(v * 2.0 ** 149) for v in x.double().flatten().tolist()]
    n, total, squares = len(ints), sum(ints), sum(i * i for i in ints)
    return Fraction(n * squares - total * total, n * 2 ** 298), Fraction(total, n * 2 ** 149)


def test_the_bounds_hold_with_room_against_exact_sums(compiled):
    # the margins the decision relies on (statistics' docstring), measured: our sums within the
    # proven bound, torch's Welford sum (its double kernel: the same updates on the same values)
    # within an eighth of the bound taken for it, also with a mean 1,000 spreads away
    u = statistics.UNIT_ROUNDOFF
    g = torch.Generator().manual_seed(5)
    for n in (4096, 100_352, 250_001):
        for offset in (0.0, 0.5, 30.0, 1000.0):
            x = torch.randn(n, generator=g) * 0.03 + 0.03 * offset
            exact, mean = exact_sums(x)
            shift, total, squares = compiled.shifted_sums(x)
            ours = squares - total * total / n
            assert abs(Fraction(ours) - exact) <= Fraction((4 * n + 16) * u * squares)
            kappa = math.sqrt(1 + n * float(mean) ** 2 / float(exact))
            for threads in (1, 2):
                previous = torch.get_num_threads()
                torch.set_num_threads(threads)
                try:
                    welford = Fraction(torch.var(x.double()).item()) * (n - 1)  # M2 (n - 1) / (n - 1), 2 roundings
                finally:
                    torch.set_num_threads(previous)
                error = abs(welford - exact) / exact
                assert error <= Fraction(statistics.WELFORD_CONSTANT * n * kappa * u / 8), (n, offset, threads, float(error))


def test_the_decision_returns_a_float32_only_where_no_midpoint_is_near():
    f = float(np.float32(0.0371))
    up = float(np.nextafter(np.float32(f), np.float32(1)))
    midpoint = (f + up) / 2  # 25 significant bits: its square is exact in double
    for n in (2, 101):
        assert statistics.float32_std_from_sums(n, 0.0, 0.0, f * f * (n - 1)) == f
        assert statistics.float32_std_from_sums(n, 0.0, 0.0, midpoint * midpoint * (n - 1)) is None
        # off the midpoint by a quarter of torch's error bound: still undecided; by 1e-9: decided
        near = midpoint * (1 + statistics.WELFORD_CONSTANT * n * statistics.UNIT_ROUNDOFF / 4)
        assert statistics.float32_std_from_sums(n, 0.0, 0.0, near * near * (n - 1)) is None
        assert statistics.float32_std_from_sums(n, 0.0, 0.0, (midpoint * (1 + 1e-9)) ** 2 * (n - 1)) == up
    assert statistics.float32_std_from_sums(1, 0.0, 0.0, 1.0) is None  # n - 1 = 0: torch's NaN
    assert statistics.float32_std_from_sums(10, 0.0, 0.0, 0.0) is None  # constant: torch's 0
    assert statistics.float32_std_from_sums(10, 0.0, float("nan"), 1.0) is None
    assert statistics.float32_std_from_sums(10, 0.0, 0.0, float("inf")) is None


def test_undecided_tensors_and_non_finite_ones_get_torchs_value(compiled, decisions, monkeypatch):
    x = torch.randn(50_000, generator=torch.Generator().manual_seed(1))
    monkeypatch.setattr(statistics, "WELFORD_CONSTANT", 1e9)  # an interval too wide to decide
    assert statistics.float32_std(x) == x.std().item() and decisions == [False]
    monkeypatch.undo()
    for value in (float("nan"), float("inf")):
        y = x.clone()
        y[123] = value
        assert math.isnan(statistics.float32_std(y)) and math.isnan(y.std().item())
    constant = torch.full((8192,), 0.25)
    assert statistics.float32_std(constant) == constant.std().item() == 0.0


def test_tensors_outside_its_reach_take_torchs_kernel(monkeypatch):
    monkeypatch.setattr(native, "cpu_module", lambda *t: pytest.fail("the library should not be asked"))
    g = torch.Generator().manual_seed(2)
    big = torch.randn(300, 200, generator=g)
    for x in (torch.randn(statistics.MIN_ELEMENTS - 1, generator=g), big.double(), big.t(), big[:, ::2]):
        assert statistics.float32_std(x) == x.std().item()
    monkeypatch.undo()
    monkeypatch.setenv(native.ENVIRONMENT_VARIABLE, "python")  # never built: torch's kernel
    assert statistics.float32_std(big) == big.std().item()


def test_the_library_names_what_it_cannot_take(compiled):
    with pytest.raises(RuntimeError, match="expected a contiguous float32 CPU tensor, got Double"):
        compiled.shifted_sums(torch.zeros(10, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="the tensor is empty"):
        compiled.shifted_sums(torch.zeros(0))


@pytest.fixture
def clip_calls(compiled, monkeypatch):
    """The tensor counts of the library's clipping calls in the test."""
    calls = []

    class Recorded:
        def __getattr__(self, name):
            return getattr(compiled, name)

        def clip_to_std_(self, weights, *args):
            calls.append(len(weights))
            compiled.clip_to_std_(weights, *args)

    monkeypatch.setattr(native, "cpu_module", lambda *tensors: Recorded())
    return calls


def clipped_by_torch(weights, k_std):
    """torch's clipping: each tensor of several elements clamped to +-(k_std * its std)."""
    reference = [w.detach().clone() for w in weights]
    for r in (r for r in reference if r.numel() > 1):
        bound = (k_std * r.std()).item()
        r.clamp_(-bound, bound)
    return reference


@pytest.mark.parametrize("k_std", [0.1, 1.7, 2.5, 3.0])
def test_clipping_clamps_to_torchs_float32_bound(clip_calls, k_std):
    # clip_weights clamps to float32(k_std) * float32_std in float32: torch's k_std * w.std(); the
    # library clips lists of float32 CPU tensors in one call, Python the others
    g = torch.Generator().manual_seed(int(k_std * 10))
    for _ in range(25):
        w = torch.nn.Parameter(torch.randn(128, 784, generator=g) * 0.05)
        bias = torch.nn.Parameter(torch.randn(128, generator=g) * 0.05)
        small = torch.nn.Parameter(torch.randn(10, 128, generator=g) * 0.1)
        w64 = torch.nn.Parameter(torch.randn(64, 80, generator=g, dtype=torch.float64))
        for weights in ([w, bias, small], [w.detach().clone().requires_grad_(), w64]):
            reference = clipped_by_torch(weights, k_std)
            with torch.no_grad():
                clip_weights(weights, k_std)
            for p, r in zip(weights, reference):
                assert torch.equal(p.detach(), r)
        assert (w.detach().abs() == w.detach().abs().max()).sum() > 1, "the test should clip"
    assert clip_calls == [3] * 25  # the float32 lists; the one with float64 by Python


def test_the_librarys_clipping_takes_torchs_std_where_the_sums_do_not_decide(clip_calls, monkeypatch):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(50_000, generator=g)
    with_nan = torch.randn(20_000, generator=g)
    with_nan[7] = float("nan")
    weights = [x, torch.full((8192,), 0.25), with_nan, torch.ones(1) * 7]
    reference = clipped_by_torch(weights, 2.5)
    monkeypatch.setattr(statistics, "WELFORD_CONSTANT", 1e9)  # an interval too wide to decide
    clip_weights(weights, 2.5)
    for p, r in zip(weights, reference):
        assert torch.equal(p, r) or (torch.isnan(p).all() and torch.isnan(r).all())
    assert clip_calls == [4] and weights[3].item() == 7.0  # one element: not clipped


def test_the_librarys_decision_is_pythons(compiled):
    # csrc/statistics.cpp's float32_std_from_sums, which the clipping takes, against the reference
    # here: the same float32 or the same undecided case, on sums as tensors give them, near the
    # midpoints between float32 values, and degenerate ones
    cases = []
    for _, x in tensors(60, seed=3):
        cases.append((x.numel(), *compiled.shifted_sums(x)))
    g = np.random.default_rng(0)
    for n in (2, 3, 17, 4096, 100_352, 10**7):
        for _ in range(200):
            f = float(np.float32(10 ** g.uniform(-6, 3)))
            midpoint = float(np.nextafter(np.float32(f), np.float32(np.inf))) / 2 + f / 2
            target = midpoint * (1 + g.uniform(-1, 1) * 10.0 ** g.integers(-16, -6))
            shift = g.normal() * 10 ** g.uniform(-3, 3)
            total = g.normal() * target * 10 ** g.uniform(-3, 1)
            cases.append((n, shift, total, target * target * (n - 1) + total * total / n))
    cases += [(1, 0.0, 0.0, 1.0), (10, 0.0, 0.0, 0.0), (10, 0.0, float("nan"), 1.0), (10, 0.0, 0.0, float("inf")),
              (10, float("-inf"), 0.0, 1.0), (10, 0.0, 5.0, 1.0)]
    decided = 0
    for case in cases:
        ours = compiled.float32_std_from_sums(*case, statistics.WELFORD_CONSTANT)
        assert ours == statistics.float32_std_from_sums(*case), case
        decided += ours is not None
    assert 300 < decided < len(cases) - 300  # both outcomes, many times


def test_the_library_sources_ship_with_the_package():
    # native.py builds every csrc/*.cpp beside it: an installed (non-editable) package needs them
    # as package data
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert {source.name for source in native.SOURCES} == {"adam.cpp", "gaussian_noise.cpp", "normals.cpp",
                                                           "quantization.cpp", "spiking_loop.cpp", "statistics.cpp"}
    package_data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    package = Path(native.__file__).parent
    for source in native.SOURCES:
        relative = source.relative_to(package).as_posix()
        assert any(Path(relative).match(pattern) for pattern in package_data["memristor_mat"]), relative
