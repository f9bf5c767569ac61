"""Quantisation-aware training (SPEC §2, §2.1): the quantiser against golden values computed by
hand, and ``qat`` / ``qat_noise`` in real ``train()`` runs against a hand-written loop of the
seven steps of SPEC §2.1."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import killed_in_epoch, toy_data

from memristor_mat import native, quantization, training
from memristor_mat.checkpoint import load_checkpoint
from memristor_mat.device import derive_seed, generator
from memristor_mat.methods.qat import QuantizationHooks
from memristor_mat.models.mlp import MLP
from memristor_mat.quantization import quantization_levels, quantize
from memristor_mat.settings import TrainingSettings
from memristor_mat.training import train

CPU = torch.device("cpu")


# --------------------------------------------------------------------------- the quantiser


def test_levels_of_101_evenly_spaced_values():
    # v_i = i, i = 0..100 (n = 101). torch.quantile: q(p) = v_k + (p (n-1) - k)(v_{k+1} - v_k),
    # k = floor(p (n-1)): p = 0.01 -> 0.01 * 100 = 1 -> q01 = v_1 = 1; p = 0.99 -> 99 -> q99 = 99.
    # 5 levels: linspace(1, 99, 5), step (99 - 1) / 4 = 24.5 -> 1, 25.5, 50, 74.5, 99
    v = torch.arange(101, dtype=torch.float32)
    assert quantization_levels(v, 5).tolist() == [1.0, 25.5, 50.0, 74.5, 99.0]
    # 2 levels: just the two percentiles
    assert quantization_levels(v, 2).tolist() == [1.0, 99.0]
    # 3 levels: 1, (1 + 99) / 2 = 50, 99
    assert quantization_levels(v, 3).tolist() == [1.0, 50.0, 99.0]


def test_quantize_101_evenly_spaced_values():
    # levels 1, 25.5, 50, 74.5, 99; boundaries at the mid-points
    # (1 + 25.5)/2 = 13.25, (25.5 + 50)/2 = 37.75, (50 + 74.5)/2 = 62.25, (74.5 + 99)/2 = 86.75;
    # no integer lies on a boundary, so 0..13 -> 1, 14..37 -> 25.5, 38..62 -> 50, 63..86 -> 74.5,
    # 87..100 -> 99 (0 and 100 lie outside [q01, q99] = [1, 99] and snap to the end levels)
    v = torch.arange(101, dtype=torch.float32)
    expected = torch.tensor([1.0] * 14 + [25.5] * 24 + [50.0] * 25 + [74.5] * 24 + [99.0] * 14)
    assert len(expected) == 101
    assert torch.equal(quantize(v, 5), expected)


def test_percentiles_interpolate_linearly():
    # v_i = i, i = 0..10 (n = 11): p = 0.01 -> 0.01 * 10 = 0.1, k = 0 -> q01 = 0 + 0.1 * (1 - 0) = 0.1;
    # p = 0.99 -> 9.9, k = 9 -> q99 = 9 + 0.9 * (10 - 9) = 9.9; 3 levels: 0.1, 5.0, 9.9
    levels = quantization_levels(torch.arange(11, dtype=torch.float32), 3)
    assert levels.tolist() == pytest.approx([0.1, 5.0, 9.9], rel=1e-6)


def _boundary_tensor():
    """101 values whose 1st / 99th percentiles are exactly 1 and 99 (sorted: v_1 = 1, v_99 = 99),
    holding values on, just below and just above each boundary of the 5 levels."""
    probes = []
    for boundary in (13.25, 37.75, 62.25, 86.75):
        probes += [boundary - 0.01, boundary, boundary + 0.01]
    middle = probes + [50.0] * (97 - len(probes))
    # 0 and 100: outside [q01, q99]; 1 and 99: the percentiles themselves
    return torch.tensor([0.0, 1.0, *middle, 99.0, 100.0]), probes


def test_boundaries_and_ties_go_to_the_lower_level():
    values, probes = _boundary_tensor()
    # the percentiles are 1 and 99 (k = 1 and k = 99, no interpolation), so the levels and
    # boundaries are those of the evenly spaced tensor
    assert quantization_levels(values, 5).tolist() == [1.0, 25.5, 50.0, 74.5, 99.0]
    result = quantize(values, 5)
    assert result[0] == 1.0 and result[-1] == 99.0  # outside: snapped to the end levels
    assert result[1] == 1.0 and result[-2] == 99.0  # the percentiles are the end levels
    got = result[2:2 + len(probes)].tolist()
    # probes: (boundary - 0.01, boundary, boundary + 0.01) per boundary; on it: the lower level
    expected = [1.0, 1.0, 25.5,       # 13.24, 13.25, 13.26
                25.5, 25.5, 50.0,     # 37.74, 37.75, 37.76
                50.0, 50.0, 74.5,     # 62.24, 62.25, 62.26
                74.5, 74.5, 99.0]     # 86.74, 86.75, 86.76
    assert got == expected
    assert (result[2 + len(probes):-2] == 50.0).all()


def test_far_outliers_snap_to_the_end_levels():
    # an outlier moves the percentile only through the interpolation weight (here ~1e-6 of the
    # gap), but every value beyond the percentiles goes to an end level, however far
    v = torch.arange(101, dtype=torch.float32)
    v[0], v[100] = -1e6, 1e6
    levels = quantization_levels(v, 4)
    result = quantize(v, 4)
    assert result[0] == levels[0] and result[100] == levels[-1]
    assert levels[0].item() == pytest.approx(1.0, abs=0.01) and levels[-1].item() == pytest.approx(99.0, abs=1.0)
    assert set(result.tolist()) <= set(levels.tolist())


def test_two_levels():
    # v_i = i, 0..100: levels 1 and 99, one boundary at 50; 50 is on it -> lower level
    v = torch.arange(101, dtype=torch.float32)
    expected = torch.tensor([1.0] * 51 + [99.0] * 50)
    assert torch.equal(quantize(v, 2), expected)


def test_shape_dtype_and_input_are_preserved():
    w = torch.arange(60, dtype=torch.float64).reshape(3, 4, 5)
    before = w.clone()
    q = quantize(w, 4)
    assert q.shape == (3, 4, 5) and q.dtype == torch.float64
    assert torch.equal(w, before)  # a new tensor; the input is untouched
    assert len(q.unique()) == 4
    # the same numbers as the flattened float32 tensor
    assert torch.equal(q.float().reshape(-1), quantize(w.float().reshape(-1), 4))


def test_fewer_than_two_levels_are_rejected():
    for n in (1, 0, -3):
        with pytest.raises(ValueError, match="at least 2 levels"):
            quantization_levels(torch.arange(10.0), n)
        with pytest.raises(ValueError, match="at least 2 levels"):
            quantize(torch.arange(10.0), n)


# --------------------------------------------------------------------------- bit-identity with torch.quantile
# (issue #12) quantization_levels selects the four order statistics instead of calling
# torch.quantile; these hold it to torch.quantile's own result, bit for bit.


def old_quantization_levels(weight, n_levels):
    """The implementation before issue #12, word for word: torch.quantile."""
    if n_levels < 2:
        raise ValueError(f"quantisation needs at least 2 levels, got {n_levels}")
    flat = weight.detach().reshape(-1)
    if flat.dtype not in (torch.float32, torch.float64):
        flat = flat.float()  # torch.quantile takes float32 and float64 only
    bounds = torch.quantile(flat, torch.tensor([0.01, 0.99], device=flat.device, dtype=flat.dtype))
    return torch.linspace(float(bounds[0]), float(bounds[1]), n_levels, device=flat.device, dtype=flat.dtype)


@torch.no_grad()
def old_quantize(weight, n_levels):
    """quantize() before issue #12, on the old levels."""
    levels = old_quantization_levels(weight, n_levels).to(weight.dtype)
    boundaries = (levels[:-1] + levels[1:]) / 2
    return levels[torch.bucketize(weight.contiguous(), boundaries)]


def torch_percentiles(flat):
    return torch.quantile(flat, torch.tensor([0.01, 0.99], dtype=flat.dtype, device=flat.device))


def bits(t):
    """The tensor's bit patterns (tells -0.0 from +0.0, which torch.equal does not)."""
    return t.view({torch.float32: torch.int32, torch.float64: torch.int64, torch.float16: torch.int16,
                   torch.bfloat16: torch.int16}.get(t.dtype, t.dtype))


def identical(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b) and torch.equal(bits(a), bits(b))


def random_tensor(n, dtype, kind, g):
    """n values of one of several shapes: spread over many magnitudes, heavy ties, one sign, all equal."""
    if kind == "normal":
        scale = 10.0 ** (torch.rand((), generator=g).item() * 8 - 4)
        return torch.randn(n, generator=g, dtype=dtype) * scale
    if kind == "ties":  # integers -5..5: every order statistic is tied with its neighbours
        return torch.randint(-5, 6, (n,), generator=g).to(dtype)
    if kind == "positive":
        return torch.rand(n, generator=g, dtype=dtype) * 3 + 0.5
    if kind == "negative":
        return -torch.rand(n, generator=g, dtype=dtype).exp()
    if kind == "rounded":  # ties, and -0.0 beside +0.0
        return (torch.randn(n, generator=g, dtype=dtype) * 30).round() / 7
    if kind == "equal":
        return torch.full((n,), -0.37, dtype=dtype)
    raise ValueError(kind)


KINDS = ("normal", "ties", "positive", "negative", "rounded", "equal")
# every size up to 300 (the tiny ones, 1, 2, 3, included), the sizes whose exact positions
# 0.01 (n - 1) and 0.99 (n - 1) are integers (101, 201, 1001, ...), the MLP's tensors, and sizes
# drawn up to 200,000
SPECIAL_SIZES = (101, 201, 301, 1001, 2001, 10001, 100001, 200001, 1280, 100352, 255, 256, 257)


def fuzz_sizes():
    g = torch.Generator().manual_seed(12)
    drawn = torch.randint(300, 200_001, (30,), generator=g).tolist()
    return list(range(1, 301)) + list(SPECIAL_SIZES) + drawn


@pytest.mark.parametrize("selection", ["numpy", "torch"])
def test_percentiles_are_torch_quantile_bit_for_bit(selection):
    # both selections, the CPU's (numpy) and the other devices' (torch.topk), run here on the CPU
    g = torch.Generator().manual_seed(1)
    checked = 0
    for i, n in enumerate(fuzz_sizes()):
        for dtype in (torch.float32, torch.float64):
            for kind in (KINDS if n <= 3 or n in SPECIAL_SIZES else (KINDS[i % len(KINDS)], "normal")):
                x = random_tensor(n, dtype, kind, g)
                low, high, largest = quantization._percentiles(x, selection=selection)
                got = torch.tensor([low, high], dtype=dtype)
                expected = torch_percentiles(x)
                assert identical(got, expected), (n, dtype, kind, got.tolist(), expected.tolist())
                assert largest == x.max().item()
                checked += 1
    assert checked > 1500


def _full_selection(values, low, high, monkeypatch):
    """The CPU path's answer without candidates: two selections in the whole array."""
    monkeypatch.setattr(quantization, "_CANDIDATES_FROM", 2 ** 62)
    try:
        return quantization._order_statistics_cpu(values.copy(), low, high)
    finally:
        monkeypatch.undo()


def test_the_candidates_at_the_ends_are_taken_for_weights_and_give_the_full_selection(monkeypatch):
    # weights as trained (normal, clipped at +-2 std with ties on the bounds, rounded, one sign):
    # the sampled thresholds hold the ranks, so the fast path answers, and as the full selection
    g = torch.Generator().manual_seed(13)
    for n in (4096, 5000, 100352, 200001):
        for dtype in (torch.float32, torch.float64):
            normal = torch.randn(n, generator=g, dtype=dtype)
            for x in (normal, normal.clamp(-2 * normal.std(), 2 * normal.std()), (normal * 30).round() / 7,
                      normal.abs() + 0.5, random_tensor(n, dtype, "ties", g)):
                values = x.numpy()
                (low, high), _ = quantization._interpolation_plan(n, dtype, CPU)
                found = quantization._order_statistics_of_ends(values, low, high)
                assert found is not None, (n, dtype)
                assert found == _full_selection(values, low, high, monkeypatch), (n, dtype)


def test_a_misleading_sample_falls_back_to_the_full_selection(monkeypatch):
    # the sample (every 32nd element) says nothing of the rest: its thresholds let too few
    # elements through, which is detected; the answer is the full selection's either way
    n = 100352
    stride = quantization._SAMPLE_STRIDE
    (low, high), _ = quantization._interpolation_plan(n, torch.float32, CPU)
    rest = torch.randn(n, generator=torch.Generator().manual_seed(14))
    cases = {}
    x = rest.clone(); x[::stride] = -1e6 - torch.arange(len(x[::stride]), dtype=torch.float32)  # sample far below
    cases["low"] = x
    x = rest.clone(); x[::stride] = 1e6 + torch.arange(len(x[::stride]), dtype=torch.float32)  # sample far above
    cases["high"] = x
    x = rest.clone(); x[n // 2] = float("nan")
    cases["nan"] = x
    for name, x in cases.items():
        values = x.numpy()
        assert quantization._order_statistics_of_ends(values, low, high) is None, name
        got = quantization._order_statistics_cpu(values, low, high)
        expected = _full_selection(values, low, high, monkeypatch)
        assert str(got) == str(expected), name  # NaN == NaN as text
    # and the percentiles stay torch.quantile's through the fallback
    for x in (cases["low"], cases["high"]):
        low_value, high_value, _ = quantization._percentiles(x, selection="numpy")
        assert identical(torch.tensor([low_value, high_value]), torch_percentiles(x))


def test_levels_equal_the_old_implementation_on_many_tensors():
    g = torch.Generator().manual_seed(2)
    for i, n in enumerate(fuzz_sizes()[::3]):
        for dtype in (torch.float32, torch.float64):
            x = random_tensor(n, dtype, KINDS[i % len(KINDS)], g)
            for n_levels in (2, 4, 16):
                assert identical(quantization_levels(x, n_levels), old_quantization_levels(x, n_levels)), (n, dtype)


def test_integer_position_of_the_99th_percentile():
    # 0.99 in float32 is 4152361 / 2**22, so for n - 1 = 2**22 the rank 0.99 (n - 1) is the
    # integer 4152361 and the weight 0 (the only such sizes below 2**29); float64 q never gives one
    n = 2 ** 22 + 1
    x = torch.randn(n, generator=torch.Generator().manual_seed(3))
    (_, (high_below, high_above)), weights = quantization._interpolation_plan(n, torch.float32, CPU)
    assert high_below == high_above == 4152361 and weights[1].item() == 0.0
    for selection in ("numpy", "torch"):
        low, high, _ = quantization._percentiles(x, selection=selection)
        assert identical(torch.tensor([low, high]), torch_percentiles(x))


def test_quantile_ranks_are_float64_on_this_torch():
    # v = 0..198, then 2**24 twice (n = 201). 0.99 as float32 times 200 is 198.0 in float32 but
    # 198.0000019 in float64 (PyTorch PR #187574): the weight 1.9e-6 times the jump to 2**24
    # lifts the 99th percentile from 198 to about 230. Float32 ranks would give 198 here.
    v = torch.arange(201, dtype=torch.float32)
    v[199:] = 2.0 ** 24
    high = torch.quantile(v, torch.tensor([0.99])).item()
    assert high == pytest.approx(230.0, abs=1e-3)
    assert quantization._float64_ranks("cpu")
    # 0.01 * 200 = 1.9999999553: weight 0.9999999553, 1.0 in float32, so v_2 exactly
    assert quantization_levels(v, 2).tolist() == [2.0, high]


def test_lerp_and_rank_arithmetic_matter():
    # the control of the bit-identity tests: the textbook formulas miss torch.quantile on many
    # of the same tensors, so those tests tell a faithful reproduction from a close one
    g = torch.Generator().manual_seed(4)
    naive_misses = float32_rank_misses = 0
    for n in range(2, 300):
        x = torch.randn(n, generator=g) * 100
        expected = torch_percentiles(x)
        ordered = x.sort().values
        for ranks, naive in ((torch.tensor([0.01, 0.99]).double() * (n - 1), True),
                             (torch.tensor([0.01, 0.99]) * (n - 1), False)):
            below, above = ranks.long(), ranks.ceil().long()
            weights = (ranks - below).float()
            if naive:  # v_below + w (v_above - v_below), not torch.lerp
                got = ordered[below] + weights * (ordered[above] - ordered[below])
                naive_misses += not torch.equal(got, expected)
            else:  # torch.lerp, but ranks in float32
                got = ordered[below].lerp(ordered[above], weights)
                float32_rank_misses += not torch.equal(got, expected)
    assert naive_misses >= 10 and float32_rank_misses >= 10, (naive_misses, float32_rank_misses)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64])
def test_quantize_equals_the_old_implementation(dtype):
    # the MLP's tensors (784 x 128, 128 x 10 weights, biases), conv-like shapes, tiny ones; the
    # study's level counts and more; other dtypes go through float32 as before
    g = torch.Generator().manual_seed(5)
    shapes = [(128, 784), (10, 128), (128,), (10,), (16, 3, 5, 5), (), (1,), (2,), (3,), (7, 1), (1000,)]
    for shape in shapes:
        for kind in ("normal", "ties", "rounded"):
            w = random_tensor(math.prod(shape), torch.float64, kind, g).reshape(shape)
            w = (w * 100).round() if dtype == torch.int64 else w
            w = w.to(dtype)
            for n_levels in (2, 3, 4, 16, 255):
                assert identical(quantize(w, n_levels), old_quantize(w, n_levels)), (shape, kind, n_levels)
                assert identical(quantization_levels(w, n_levels), old_quantization_levels(w, n_levels))


def test_quantize_of_non_contiguous_weights_equals_the_old_implementation():
    g = torch.Generator().manual_seed(10)
    w = torch.randn(128, 784, generator=g)
    conv = torch.randn(8, 3, 5, 5, generator=g)
    for view in (w.t(), w[:, ::3], conv.to(memory_format=torch.channels_last), conv.permute(2, 0, 3, 1)):
        assert not view.is_contiguous()
        assert identical(quantize(view, 4), old_quantize(view, 4))
        assert identical(quantization_levels(view, 4), old_quantization_levels(view, 4))


def test_quantize_of_trained_like_weights_in_a_qat_loop_equals_the_old_implementation():
    # what QAT does at every step: quantise, perturb slightly, quantise again (the full-precision
    # weights drift by small steps, so ties and near-ties of the order statistics recur)
    g = torch.Generator().manual_seed(6)
    w = torch.randn(128, 784, generator=g) * 0.05
    for _ in range(30):
        assert identical(quantize(w, 4), old_quantize(w, 4))
        w = w + torch.randn(w.shape, generator=g) * 1e-4


def test_nan_and_infinity_behave_as_with_torch_quantile():
    for n in (1, 5, 300, 5000):
        for position in (0, n // 2, n - 1):
            x = torch.randn(n, generator=torch.Generator().manual_seed(n))
            x[position] = float("nan")
            new, old = quantization_levels(x, 4), old_quantization_levels(x, 4)
            assert new.isnan().all() and old.isnan().all()
            assert quantize(x, 4).isnan().all() and old_quantize(x, 4).isnan().all()
            for selection in ("numpy", "torch"):
                _, _, largest = quantization._percentiles(x, selection=selection)
                assert math.isnan(largest)
    # infinities are values like any other: the percentiles may be infinite or NaN (inf - inf)
    # exactly as torch.quantile has them
    for values in ([1.0, float("inf"), 3.0], [float("-inf"), 1.0, float("inf")], [float("inf")], [0.5, 2.0]):
        for n in (1, 2, 3, 150, 600):
            x = torch.tensor(values * n)
            new, old = quantization_levels(x, 4), old_quantization_levels(x, 4)
            assert torch.equal(new.isnan(), old.isnan()) and torch.equal(new[~new.isnan()], old[~old.isnan()])


def test_empty_tensor_raises_as_before():
    for levels in (quantization_levels, old_quantization_levels):
        with pytest.raises(RuntimeError, match="non-empty"):
            levels(torch.empty(0), 4)


def test_more_than_2_pow_24_elements_as_torch_quantile():
    # this torch computes the ranks in float64 and takes any size: so do the levels
    n = 2 ** 24 + 3
    x = torch.randn(n, generator=torch.Generator().manual_seed(7))
    low, high, _ = quantization._percentiles(x)
    assert identical(torch.tensor([low, high]), torch_percentiles(x))


def test_float32_ranks_as_before_pytorch_pr_187574(monkeypatch):
    # a torch that computes float32 ranks (before PR #187574, or MPS) refuses more than 2**24
    # elements; the levels follow it: its arithmetic (ranks = q * (n - 1) in float32, as in
    # ATen's quantile then) and its refusal
    monkeypatch.setattr(quantization, "_float64_ranks", lambda device_type: False)
    quantization._interpolation_plan.cache_clear()
    try:
        g = torch.Generator().manual_seed(8)
        for n in list(range(1, 300)) + [1001, 100352, 123457]:
            x = torch.randn(n, generator=g) * 100
            q = torch.tensor([0.01, 0.99])
            ranks = q * (n - 1)  # float32
            below, above = ranks.long(), ranks.ceil().long()
            ordered = x.sort().values
            expected = ordered[below].lerp_(ordered[above], ranks - below)
            for selection in ("numpy", "torch"):
                low, high, _ = quantization._percentiles(x, selection=selection)
                assert identical(torch.tensor([low, high]), expected), n
        with pytest.raises(RuntimeError, match="too large"):
            quantization_levels(torch.zeros(2 ** 24 + 1), 4)
        quantization_levels(torch.zeros(2 ** 24), 4)  # the largest taken
    finally:
        quantization._interpolation_plan.cache_clear()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_levels_on_cuda_equal_torch_quantile_there():
    g = torch.Generator().manual_seed(9)
    for n in list(range(1, 50)) + [101, 1280, 100352, 2 ** 22 + 1]:
        for dtype in (torch.float32, torch.float64):
            x = random_tensor(n, dtype, "normal", g).cuda()
            new = quantization_levels(x, 4)
            assert new.device == x.device
            assert identical(new.cpu(), old_quantization_levels(x, 4).cpu()), (n, dtype)
            assert identical(quantize(x, 4).cpu(), old_quantize(x, 4).cpu())


# --------------------------------------------------------------------------- QAT in train()


def model(seed=0, hidden=12):
    torch.manual_seed(seed)
    return MLP(input_size=16, hidden_sizes=[hidden], num_classes=2, bias=True)


def settings(method="qat", levels=4, noise_sd=None, **overrides):
    options = {"levels": levels} if noise_sd is None else {"levels": levels, "noise_sd": noise_sd}
    values = dict(method=method, epochs=2, batch_size=16, optimizer={"name": "SGD", "lr": 0.1}, seed=3,
                  eval_batch_size=64, method_options=options)
    values.update(overrides)
    return TrainingSettings(**values)


IDENTITY = {"arch": "mlp", "arch_options": {"input_size": 16, "hidden_sizes": [12], "num_classes": 2, "bias": True}}


def distinct(tensor):
    return len(torch.unique(tensor))


def reference_qat(net, data, *, seed, epochs, batch_size, lr, levels, noise_sd=0.0, clip=None):
    """SPEC §2.1 written out by hand: the seven steps per batch, plain SGD, the data order and
    the noise stream of train() (seeded from (seed, "order" | "noise", epoch))."""
    params = list(net.parameters())  # the MLP's memristor tensors, in module order
    full = [p.detach().clone() for p in params]  # step 0: the full-precision copy
    optimizer = torch.optim.SGD(params, lr=lr)
    x, y = data.x_train, data.y_train
    for epoch in range(epochs):
        order = torch.randperm(len(y), generator=generator(derive_seed(seed, "order", epoch)))
        noise = generator(derive_seed(seed, "noise", epoch))
        for batch in order.split(batch_size):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(net(x[batch]), y[batch]).backward()      # (1) at the current weights
            with torch.no_grad():
                for p, f in zip(params, full):
                    p.copy_(f)                                         # (2) full precision back
            optimizer.step()                                           # (3) straight-through step
            with torch.no_grad():
                for p, f in zip(params, full):
                    if clip is not None and p.numel() > 1:            # (4) clip to +-k std
                        bound = clip * p.std()
                        p.clamp_(-bound, bound)
                    f.copy_(p)                                         # (5) store full precision
                    p.copy_(quantize(p, levels))                       # (6) quantise
                    if noise_sd > 0:                                   # (7) absolute noise
                        p.add_(torch.randn(p.shape, generator=noise), alpha=noise_sd)
    return net, full


def assert_same_weights(a, b):
    for (name, x), y in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(x, y), name


def test_qat_with_clipping_equals_the_hand_written_seven_steps():
    config = settings(weight_clip_std=2.5, epochs=2)
    trained = train(model(), toy_data(128, 64), config, device=CPU).model
    expected, _ = reference_qat(model(), toy_data(128, 64), seed=3, epochs=2, batch_size=16, lr=0.1, levels=4, clip=2.5)
    assert_same_weights(trained, expected)
    for name, p in trained.named_parameters():  # the deployed weights are quantised
        assert distinct(p) <= 4, name
    assert distinct(trained.layers[1].weight) == 4


def test_qat_without_clipping_equals_the_hand_written_seven_steps():
    trained = train(model(), toy_data(128, 64), settings(levels=2, epochs=1), device=CPU).model
    expected, _ = reference_qat(model(), toy_data(128, 64), seed=3, epochs=1, batch_size=16, lr=0.1, levels=2)
    assert_same_weights(trained, expected)


def test_qat_noise_equals_the_hand_written_seven_steps():
    config = settings("qat_noise", levels=4, noise_sd=0.01, weight_clip_std=2.5)
    trained = train(model(), toy_data(128, 64), config, device=CPU).model
    expected, _ = reference_qat(model(), toy_data(128, 64), seed=3, epochs=2, batch_size=16, lr=0.1, levels=4,
                                   noise_sd=0.01, clip=2.5)
    assert_same_weights(trained, expected)
    # the deployed weights are quantised + noise: no longer on 4 levels
    assert distinct(trained.layers[1].weight) > 4


def test_qat_noise_with_zero_noise_is_qat():
    plain = train(model(), toy_data(128, 64), settings("qat", levels=4, weight_clip_std=2.5), device=CPU).model
    zero = train(model(), toy_data(128, 64), settings("qat_noise", levels=4, noise_sd=0.0, weight_clip_std=2.5),
                 device=CPU).model
    assert_same_weights(plain, zero)


def test_qat_noise_is_absolute_gaussian_noise_about_the_quantised_weights(tmp_path):
    # a hidden layer of 16 x 128 = 2048 weights; noise_sd 0.02, a fraction of the level spacing
    noise_sd = 0.02
    resume = tmp_path / "run.resume"
    config = settings("qat_noise", levels=4, noise_sd=noise_sd, epochs=1)
    identity = {"arch": "mlp", "arch_options": {**IDENTITY["arch_options"], "hidden_sizes": [128]}}
    trained = train(model(hidden=128), toy_data(128, 64), config, device=CPU, resume_path=resume,
                    resume_extra=identity).model
    full = load_checkpoint(resume)["method_state"]["full_precision"]
    w = trained.layers[1].weight.detach()
    deviation = w - quantize(full["layers.1.weight"], 4)
    # N(0, noise_sd^2), not scaled by the weights: sd of 2048 samples within a few % of noise_sd
    assert deviation.std().item() == pytest.approx(noise_sd, rel=0.1)
    assert abs(deviation.mean().item()) < 4 * noise_sd / 2048 ** 0.5
    # the same sd for small and large weights (absolute, not relative, noise)
    levels = quantization_levels(full["layers.1.weight"], 4)
    low = deviation[quantize(full["layers.1.weight"], 4).abs() <= levels.abs().min()]
    assert low.numel() > 100
    assert low.std().item() == pytest.approx(noise_sd, rel=0.2)
    # and it is exactly the epoch's noise stream, scaled by noise_sd, after quantising
    noise = generator(derive_seed(3, "noise", 0))
    batches = 128 // 16
    draws = None
    for _ in range(batches):  # one draw per tensor per batch, in parameter order; the last one stays
        draws = {name: torch.randn(p.shape, generator=noise) for name, p in trained.named_parameters()}
    for name, p in trained.named_parameters():
        assert torch.equal(p.detach(), quantize(full[name], 4).add(draws[name], alpha=noise_sd)), name


def _record_events(monkeypatch):
    """Log every training-mode forward, before_step, optimiser step, clip and after_clip, with
    the weights each one sees."""
    events = []
    before, after = QuantizationHooks.before_step, QuantizationHooks.after_clip

    def snapshot(net):
        return {name: p.detach().clone() for name, p in net.named_parameters()}

    def before_step(self, index, context):
        events.append(("before_step", index, snapshot(self.model)))
        before(self, index, context)

    def after_clip(self, index, context):
        after(self, index, context)
        events.append(("after_clip", index, snapshot(self.model),
                       {name: w.clone() for name, w in self.full_precision.items()}))

    monkeypatch.setattr(QuantizationHooks, "before_step", before_step)
    monkeypatch.setattr(QuantizationHooks, "after_clip", after_clip)
    clip = training.clip_weights
    monkeypatch.setattr(training, "clip_weights", lambda *a: (events.append(("clip",)), clip(*a)))
    make = training.make_optimizer

    def recording_optimizer(spec, parameters):
        optimizer = make(spec, parameters)
        params = optimizer.param_groups[0]["params"]
        optimizer.register_step_pre_hook(
            lambda opt, *_: events.append(("step", [p.detach().clone() for p in params])))
        return optimizer

    monkeypatch.setattr(training, "make_optimizer", recording_optimizer)
    return events, snapshot


def test_step_order_and_what_each_step_sees(monkeypatch):
    events, snapshot = _record_events(monkeypatch)
    net = model()
    initial = snapshot(net)
    forwards = []
    net.register_forward_pre_hook(lambda m, _: forwards.append(snapshot(m)) if m.training else None)
    trained = train(net, toy_data(128, 64), settings(levels=3, weight_clip_std=2.5, epochs=2), device=CPU).model

    batches = 2 * 128 // 16
    # per batch: before_step, optimiser step, clip, after_clip (the forward comes before them)
    assert [e[0] for e in events] == ["before_step", "step", "clip", "after_clip"] * batches
    assert len(forwards) == batches
    names = list(initial)
    quantised_prev, full_prev = initial, initial  # before the first batch: the initial weights
    for b in range(batches):
        before_step, step, _, after_clip = events[4 * b: 4 * b + 4]
        # (1) the forward (and the weights when the gradients exist) are the previous batch's
        # quantised weights; on the very first batch the initial, unquantised ones
        for name in names:
            assert torch.equal(forwards[b][name], quantised_prev[name]), (b, name)
            assert torch.equal(before_step[2][name], quantised_prev[name]), (b, name)
        if b == 0:
            assert distinct(forwards[0]["layers.1.weight"]) > 3
        else:
            assert all(distinct(w) <= 3 for w in forwards[b].values())
        # (2)-(3) the optimiser steps from the full-precision values
        for name, value in zip(names, step[1]):
            assert torch.equal(value, full_prev[name]), (b, name)
        # (5)-(6) the stored copy is the stepped + clipped weights, the model holds them quantised
        for name in names:
            assert torch.equal(after_clip[2][name], quantize(after_clip[3][name], 3)), (b, name)
        quantised_prev, full_prev = after_clip[2], after_clip[3]
    # the full-precision copy moved away from the levels (it is not the quantised model)
    assert distinct(full_prev["layers.1.weight"]) > 3
    for name, p in trained.named_parameters():
        assert torch.equal(p.detach(), quantised_prev[name]), name
        assert distinct(p) <= 3, name


def test_interrupted_and_resumed_qat_run_is_bit_identical(tmp_path, monkeypatch):
    config = settings("qat", levels=4, weight_clip_std=2.5, epochs=3)
    uninterrupted = train(model(), toy_data(128, 64), config, device=CPU, resume_path=tmp_path / "a.resume",
                          resume_extra=IDENTITY)
    resume = tmp_path / "b.resume"
    with killed_in_epoch(monkeypatch, 2), pytest.raises(KeyboardInterrupt):
        train(model(), toy_data(128, 64), config, device=CPU, resume_path=resume, resume_extra=IDENTITY)
    state = load_checkpoint(resume)
    assert state["epochs_done"] == 1
    # the checkpoint holds the full-precision copy beside the quantised model
    full = state["method_state"]["full_precision"]
    assert set(full) == set(state["state_dict"])
    assert distinct(full["layers.1.weight"]) > 4 and distinct(state["state_dict"]["layers.1.weight"]) <= 4
    resumed = train(model(seed=99), toy_data(128, 64), config, device=CPU, resume_path=resume, resume_extra=IDENTITY)
    assert resumed.resumed_from_epoch == 1
    assert_same_weights(uninterrupted.model, resumed.model)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in uninterrupted.history]


def test_resume_without_the_full_precision_copy_would_differ(tmp_path, monkeypatch):
    # the control of the test above: if the copy were not restored, the resumed run would
    # continue from other full-precision values and end elsewhere
    config = settings("qat", levels=4, weight_clip_std=2.5, epochs=2)
    uninterrupted = train(model(), toy_data(128, 64), config, device=CPU).model
    resume = tmp_path / "run.resume"
    with killed_in_epoch(monkeypatch, 2), pytest.raises(KeyboardInterrupt):
        train(model(), toy_data(128, 64), config, device=CPU, resume_path=resume, resume_extra=IDENTITY)
    monkeypatch.setattr(QuantizationHooks, "load_state_dict", lambda self, state: None)
    resumed = train(model(seed=99), toy_data(128, 64), config, device=CPU, resume_path=resume, resume_extra=IDENTITY)
    assert not torch.equal(uninterrupted.layers[1].weight, resumed.model.layers[1].weight)


def test_resume_state_of_another_model_is_refused():
    hooks = QuantizationHooks(model(), dict(model().named_parameters()), settings(), CPU)
    with pytest.raises(ValueError, match="full-precision copies"):
        hooks.load_state_dict({"full_precision": {"other.weight": torch.zeros(2)}})


@pytest.mark.parametrize("method, options, sigma_train, message", [
    ("qat", {}, 0.0, "takes the options"),                                     # no levels
    ("qat", {"levels": 4, "noise_sd": 0.01}, 0.0, "takes the options"),         # qat has no noise
    ("qat_noise", {"levels": 4}, 0.0, "takes the options"),                     # no noise_sd
    ("qat_noise", {"noise_sd": 0.01}, 0.0, "takes the options"),                # no levels
    ("qat", {"levels": 4}, 0.1, "must be 0"),                                   # no forward noise
    ("qat_noise", {"levels": 4, "noise_sd": 0.01}, 0.2, "must be 0"),
    ("vanilla", {"levels": 4}, 0.0, "takes the options"),                       # not a QAT method
])
def test_bad_qat_settings_are_rejected(method, options, sigma_train, message):
    values = dataclasses.asdict(settings())
    values.update(method=method, method_options=options, sigma_train=sigma_train)
    with pytest.raises(ValueError, match=message):
        TrainingSettings.from_dict(values)


def test_qat_settings_round_trip_through_a_dict():
    original = settings("qat_noise", levels=4, noise_sd=0.0025)
    assert TrainingSettings.from_dict(original.as_dict()) == original


def test_level_index_is_bucketize_for_every_level_count_and_tie():
    # the CPU counts the boundaries below each weight up to 16 levels: bucketize's indices, with
    # weights on the boundaries (they go to the lower level), infinite weights, and both dtypes;
    # NaN or infinite boundaries (the levels of a tensor holding a NaN) fall back to bucketize
    g = torch.Generator().manual_seed(12)
    for dtype in (torch.float32, torch.float64):
        for n_levels in (2, 3, 4, 5, 15, 16, 17, 64):
            levels = torch.linspace(-1.5, 2.0, n_levels, dtype=dtype)
            boundaries = (levels[:-1] + levels[1:]) / 2
            w = torch.randn(300, 7, generator=g, dtype=torch.float64).to(dtype)
            w.view(-1)[: 2 * len(boundaries)] = boundaries.repeat(2)  # exactly on every boundary
            w.view(-1)[-3:] = torch.tensor([float("inf"), float("-inf"), 1e30], dtype=dtype)
            for view in (w, w.t()):
                index = quantization._level_index(view, boundaries)
                assert torch.equal(index.long(), torch.bucketize(view.contiguous(), boundaries)), (dtype, n_levels)
    w = torch.randn(50, generator=g)
    for boundaries in (torch.tensor([float("nan"), float("nan")]), torch.tensor([0.0, float("inf")])):
        assert torch.equal(quantization._level_index(w, boundaries), torch.bucketize(w, boundaries))


def test_the_libraries_quantisation_is_the_python_paths_for_every_level_count_and_tie(compiled, monkeypatch):
    # csrc/quantization.cpp against the comparisons and index_select of the Python path, with
    # weights on every boundary (they go to the lower level), infinite and huge weights, ragged
    # tails of its blocks and sizes on both sides of its threads' grain
    g = torch.Generator().manual_seed(13)
    for n_levels in (2, 3, 4, 5, 8, 16, 17, 32, 64):
        levels = torch.linspace(-1.5, 2.0, n_levels)
        boundaries = (levels[:-1] + levels[1:]) / 2
        for size in (1, 255, 257, 100_352, 70_001):
            w = torch.randn(size, generator=g)
            w[: 2 * len(boundaries)] = boundaries.repeat(2)[:size]
            w[-3:] = torch.tensor([float("inf"), float("-inf"), 1e30])[-min(3, size):]
            ours = compiled.quantize_to_levels(w, levels, boundaries)
            theirs = levels.index_select(0, quantization._level_index(w, boundaries).reshape(-1))
            assert identical(ours, theirs), (n_levels, size)
            assert identical(ours, levels[torch.bucketize(w, boundaries)])
    # quantize() takes it for contiguous float32 CPU tensors: the same tensors as without it
    w = torch.randn(128, 784, generator=g) * 0.05
    with_library = [quantize(w, n) for n in (2, 4, 16, 32)]
    monkeypatch.setenv(native.ENVIRONMENT_VARIABLE, "python")
    assert all(identical(a, quantize(w, n)) for a, n in zip(with_library, (2, 4, 16, 32)))
    with pytest.raises(RuntimeError, match="contiguous float32 CPU tensor"):
        compiled.quantize_to_levels(w.t(), torch.zeros(2), torch.zeros(1))
    with pytest.raises(RuntimeError, match="n float32 levels and n - 1 boundaries"):
        compiled.quantize_to_levels(w, torch.zeros(3), torch.zeros(1))
