"""Uniform per-tensor weight quantisation of the original study's QAT (SPEC §2, §2.1).

Per tensor W: levels = linspace(q_0.01, q_0.99, n) where q are W's 1st and 99th percentiles
(``torch.quantile``, linear interpolation); each weight goes to the nearest level, the decision
boundaries being the mid-points between consecutive levels; weights outside [q_0.01, q_0.99]
snap to the end levels. A weight exactly on a boundary goes to the lower level (the original's
code does not say; the set of such weights has measure zero).

The percentiles are ``torch.quantile``'s, bit for bit, but without calling it (issue #12: at
every QAT step it cost more than the MLP's forward and backward pass). For a tensor of n
elements, v_0 <= ... <= v_{n-1} in ascending order (NaN last), ``torch.quantile(v, q)``
(linear interpolation) computes

    ranks   = q * (n - 1)          # q held in the tensor's dtype (0.01 and 0.99 rounded to
                                   # float32 for a float32 tensor), the product in float64,
                                   # exact as n - 1 < 2**53 (PyTorch PR #187574, in the pinned
                                   # 2.14.1); before that PR, and on MPS, in the tensor's dtype,
                                   # tensors of more than 2**24 elements being refused
    below   = ranks.long()         # truncation = floor, as ranks >= 0
    weights = (ranks - below).to(dtype)
    above   = ranks.ceil().long()
    result  = v[below].lerp_(v[above], weights)

and NaN for every q if the tensor holds a NaN. Only four order statistics are needed, among
the ~1 % smallest and the ~1 % largest elements: on the CPU single-rank ``np.partition``
(introselect) finds them among the candidates that pass a threshold at each end (a sample places
the thresholds), elsewhere two ``torch.topk``, both in about linear time. ``ranks``,
``below``, ``weights`` and ``above`` come from the same tensor ops as in torch (in float64 or
not as the installed torch does it on that kind of device, asked once by
:func:`_float64_ranks`), and the interpolation is the same ``lerp_`` on two-element tensors
of the dtype, on the device: ``lerp`` takes ``self + w (end - self)`` for w < 0.5 and ``end -
(end - self)(1 - w)`` otherwise, with the kernel's own rounding, so calling it rather than
re-deriving it keeps the result ``torch.quantile``'s to the bit. The order statistics are
elements of the tensor, not computed numbers; the one freedom a selection has is whether a
-0.0 or a +0.0 of the tensor stands at a rank, which compare equal (``torch.equal``).

Size: no limit where torch has none (float64 ranks); where torch computes float32 ranks, more
than 2**24 elements raise its RuntimeError, as before.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from . import native

#: the percentiles that span the levels (SPEC §2.1)
LOW_QUANTILE, HIGH_QUANTILE = 0.01, 0.99

#: the largest tensor torch.quantile takes where it computes the ranks in float32
FLOAT32_RANKS_MAX_ELEMENTS = 2 ** 24


@functools.lru_cache(maxsize=None)
def _float64_ranks(device_type: str) -> bool:
    """Whether this torch's ``quantile`` computes a float32 tensor's ranks in float64 on this
    kind of device (since PyTorch PR #187574, so in the pinned 2.14.1; not on MPS) rather than
    in float32, refusing more than 2**24 elements of any dtype as before it. Found once by
    asking it: for 201 elements, 0.99 as float32 times 200 is 198.0 in float32 but
    198.0000019... in float64, which the jump from v_198 = 198 to v_199 = 2**24 makes visible
    (198 + 1.9e-6 * (2**24 - 198) = 230)."""
    v = torch.arange(201, dtype=torch.float32, device=device_type)
    v[199:] = 2.0 ** 24
    q = torch.tensor([HIGH_QUANTILE], dtype=torch.float32, device=device_type)
    return torch.quantile(v, q).item() != 198.0


@functools.lru_cache(maxsize=256)
def _interpolation_plan(n: int, dtype: torch.dtype, device: torch.device):
    """For a tensor of ``n`` elements, by torch.quantile's own rank arithmetic: the ranks below
    and above the two quantile positions, ``((low_below, low_above), (high_below, high_above))``,
    and the interpolation weights (a tensor of the dtype, on the device)."""
    float64_ranks = _float64_ranks(device.type)
    if not float64_ranks and n > FLOAT32_RANKS_MAX_ELEMENTS:
        raise RuntimeError("quantile() input tensor is too large")
    q = torch.tensor([LOW_QUANTILE, HIGH_QUANTILE], dtype=dtype)
    if float64_ranks:
        q = q.double()  # a float64 q stays as it is either way
    ranks = q * (n - 1)
    below = ranks.long()
    weights = (ranks - below).to(dtype)
    above = ranks.ceil().long()
    (low_below, high_below), (low_above, high_above) = below.tolist(), above.tolist()
    return ((low_below, low_above), (high_below, high_above)), weights.to(device)


#: below this many elements the CPU path sorts (a few microseconds) instead of selecting
_SORT_BELOW = 256


#: from this many elements on the CPU path selects among candidates (:func:`_order_statistics_of_ends`)
_CANDIDATES_FROM = 4096
#: one element in this many forms the sample that places the candidates' thresholds
_SAMPLE_STRIDE = 32


def _order_statistics_cpu(values: np.ndarray, low: tuple[int, int], high: tuple[int, int]):
    """v[low_below], v[high_below], v[low_above], v[high_above] and the largest element (NaN if
    any is NaN) of a 1-d array, v being it in ascending order with NaN last, as torch.sort has
    it. From :data:`_CANDIDATES_FROM` elements on, among the two ends' candidates
    (:func:`_order_statistics_of_ends`); otherwise, or where those do not hold the ranks, two
    single-rank ``np.partition`` (introselect, linear time), each followed by the max of the
    part just below the rank selected; ranks [0, low_above) and then (low_above, high_above)
    are left unordered. numpy's multi-rank partition is several times slower than this."""
    (low_below, low_above), (high_below, high_above) = low, high
    n = values.size
    if n < _SORT_BELOW or high_below <= low_above:
        ordered = np.sort(values)
        picked = ordered[[low_below, high_below, low_above, high_above, n - 1]]
        return picked[:4].tolist(), picked[4].item()
    if n >= _CANDIDATES_FROM:
        found = _order_statistics_of_ends(values, low, high)
        if found is not None:
            return found
    # here the upper pair lies above the lower one (high_below > low_above, always so from
    # n = _SORT_BELOW on), and each pair is one rank apart or equal (weight 0)
    part = np.partition(values, low_above)  # a copy; v[low_above] at its place
    v_low_above = part[low_above]
    v_low_below = v_low_above if low_below == low_above else part[:low_above].max()
    upper = part[low_above + 1:]  # ranks low_above + 1 .. n - 1, a view
    k = high_above - (low_above + 1)
    upper.partition(k)  # in place: v[high_above] at upper[k]
    v_high_above = upper[k]
    v_high_below = v_high_above if high_below == high_above else upper[:k].max()  # k >= 1 here
    largest = upper[k:].max()  # ranks high_above .. n - 1: NaN if any (NaN goes last)
    return [v_low_below.item(), v_high_below.item(), v_low_above.item(), v_high_above.item()], largest.item()


def _order_statistics_of_ends(values: np.ndarray, low: tuple[int, int], high: tuple[int, int]):
    """What :func:`_order_statistics_cpu` returns, found among a few candidates at each end, or
    None where they do not hold the ranks asked for (then the caller selects in the whole array).

    The four ranks lie in the lowest and highest ~1 % of the array: the order statistics of a
    sample (every :data:`_SAMPLE_STRIDE`-th element) place a threshold at each end that about
    (sample rank) x stride elements pass, the sample rank chosen some standard deviations beyond
    the rank asked for; the c elements <= the lower threshold are then exactly the c smallest
    (ties included), so the rank-r element of the array is the rank-r element among them for
    every r < c, and the same holds from the top at the upper end. So the result does not depend
    on the sample (it is checked, never trusted): a sample that misplaces a threshold only costs
    the fallback. An array holding a NaN (NaN compares with nothing, and ranks last) also falls
    back. Two comparisons and one selection in ~2 % of the elements take about a tenth of the time
    of two selections in all of them (issue #12: 100,352 weights per QAT step)."""
    (low_below, low_above), (high_below, high_above) = low, high
    n = values.size
    largest = values.max()
    if largest != largest:  # a NaN
        return None
    sample = values[::_SAMPLE_STRIDE]
    # the count of elements <= the sample's rank-j element is about (j + 1) x stride, with a
    # standard deviation of about stride x sqrt(j + 1): aim 4 of them and 8 ranks beyond
    low_count, high_count = low_above + 1, n - high_below  # elements needed at each end
    low_rank = low_count // _SAMPLE_STRIDE + 8 + int(4 * math.sqrt(low_count / _SAMPLE_STRIDE))
    high_rank = sample.size - 1 - (high_count // _SAMPLE_STRIDE + 8 + int(4 * math.sqrt(high_count / _SAMPLE_STRIDE)))
    if high_rank <= low_rank:
        return None
    ordered_sample = np.partition(sample, (low_rank, high_rank))
    lower = values[values <= ordered_sample[low_rank]]  # the smallest elements, all of them up to that value
    upper = values[values >= ordered_sample[high_rank]]
    if lower.size < low_count or upper.size < high_count:
        return None
    lower.partition(low_above)
    v_low_above = lower[low_above]
    v_low_below = v_low_above if low_below == low_above else lower[:low_above].max()
    k = high_above - (n - upper.size)  # the array's rank high_above among the upper candidates
    upper.partition(k)
    v_high_above = upper[k]
    v_high_below = v_high_above if high_below == high_above else upper[:k].max()
    return [v_low_below.item(), v_high_below.item(), v_low_above.item(), v_high_above.item()], largest.item()


def _order_statistics_torch(flat: torch.Tensor, low: tuple[int, int], high: tuple[int, int]):
    """The same as :func:`_order_statistics_cpu` as tensors on ``flat``'s device: the values
    below and above the two positions, and the largest element (a one-element tensor), by two
    ``torch.topk`` (the low_above + 1 smallest, the n - high_below largest; topk, like sort,
    takes NaN as the largest)."""
    (low_below, low_above), (high_below, high_above) = low, high
    n = flat.numel()
    n_smallest, n_largest = low_above + 1, n - high_below
    # cat(smallest ascending, largest descending): rank r < n_smallest at r, rank r >=
    # high_below at n_smallest + n - 1 - r
    ends = torch.cat((torch.topk(flat, n_smallest, largest=False).values, torch.topk(flat, n_largest).values))
    index = torch.tensor([low_below, n_smallest + n - 1 - high_below, low_above, n_smallest + n - 1 - high_above,
                          n_smallest], device=flat.device)
    picked = ends.index_select(0, index)
    return picked[:2], picked[2:4], picked[4:]


def _percentiles(flat: torch.Tensor, *, selection: str | None = None) -> tuple[float, float, float]:
    """``torch.quantile(flat, [LOW_QUANTILE, HIGH_QUANTILE])`` of a non-empty 1-d float32 or
    float64 tensor, bit for bit when it holds no NaN, without ordering it all; and its largest
    element (NaN if it holds a NaN). ``selection``: "numpy" (the default on the CPU) or "torch"
    (elsewhere), for the tests to run both on the CPU."""
    (low, high), weights = _interpolation_plan(flat.numel(), flat.dtype, flat.device)
    if (selection or ("numpy" if flat.device.type == "cpu" else "torch")) == "numpy":
        picked, largest = _order_statistics_cpu(flat.numpy(), low, high)
        below = torch.tensor(picked[:2], dtype=flat.dtype)
        above = torch.tensor(picked[2:], dtype=flat.dtype)
        low_value, high_value = below.lerp_(above, weights).tolist()
        return low_value, high_value, largest
    below, above, largest = _order_statistics_torch(flat, low, high)
    bounds = below.lerp_(above, weights)  # the same op on tensors of the same shape as in quantile
    return tuple(torch.cat((bounds, largest)).tolist())  # one sync


def quantization_levels(weight: torch.Tensor, n_levels: int) -> torch.Tensor:
    """The ``n_levels`` levels of one tensor, ascending (on the tensor's device). The percentiles
    are ``torch.quantile``'s to the bit, computed without it (see the module's docstring): a
    tensor holding a NaN gets NaN levels, an empty one raises torch.quantile's RuntimeError, and
    so does one of more than 2**24 elements where torch.quantile refuses it (before PyTorch PR
    #187574, or on MPS)."""
    if n_levels < 2:
        raise ValueError(f"quantisation needs at least 2 levels, got {n_levels}")
    flat = weight.detach().reshape(-1)
    if flat.dtype not in (torch.float32, torch.float64):
        flat = flat.float()  # torch.quantile takes float32 and float64 only
    if flat.numel() == 0:
        raise RuntimeError("quantile() input tensor must be non-empty")
    low, high, largest = _percentiles(flat)
    if largest != largest:  # a NaN in the tensor: torch.quantile gives NaN for every q
        low = high = float("nan")
    return torch.linspace(low, high, n_levels, device=flat.device, dtype=flat.dtype)


#: up to this many levels the CPU counts the boundaries below each weight (one vectorised
#: comparison per boundary) instead of bucketize's binary search per element
_COUNT_UP_TO_LEVELS = 16


def _level_index(weight: torch.Tensor, boundaries: torch.Tensor) -> torch.Tensor:
    """``torch.bucketize(weight, boundaries)`` (right=False), the same indices: on the CPU, for
    a float32 or float64 tensor and finite ascending boundaries (always so when the levels are
    finite), the number of boundaries strictly below each weight, which is what the binary
    search finds (it finds the first boundary ``>= w``; a weight has no NaN when its levels are
    finite, and an infinite weight compares as any number). Its search is a scalar loop per
    element: at the MLP's 100,352 weights it took 0.6-2 ms a call, 2-10x as long as the
    comparisons, and QAT quantises every weight matrix at every step (issue #12). Anything else:
    bucketize."""
    if (weight.device.type == "cpu" and weight.dtype in (torch.float32, torch.float64)
            and len(boundaries) < _COUNT_UP_TO_LEVELS and bool(torch.isfinite(boundaries).all())):
        index = torch.zeros(weight.shape, dtype=torch.int32)
        above = torch.empty(weight.shape, dtype=torch.bool)
        for boundary in boundaries.tolist():  # a float of the weight's dtype, compared exactly
            index.add_(torch.gt(weight, boundary, out=above))
        return index
    return torch.bucketize(weight.contiguous(), boundaries)


@torch.no_grad()
def quantize(weight: torch.Tensor, n_levels: int) -> torch.Tensor:
    """``weight`` with every element replaced by its nearest level (a new tensor). A contiguous
    float32 CPU tensor goes through the C++ library in one pass (``csrc/quantization.cpp``: the
    same comparisons and the same elements, so the same numbers), where it is built."""
    levels = quantization_levels(weight, n_levels).to(weight.dtype)
    boundaries = (levels[:-1] + levels[1:]) / 2
    compiled = native.cpu_module(weight)
    if (compiled is not None and weight.dtype == torch.float32 and weight.layout == torch.strided
            and weight.is_contiguous() and bool(torch.isfinite(boundaries).all())):
        return compiled.quantize_to_levels(weight, levels, boundaries)
    # bucketize (right=False): index i with boundaries[i-1] < w <= boundaries[i], so a weight on
    # a boundary takes the lower level; below the first boundary 0, above the last n - 1
    index = _level_index(weight, boundaries)
    # levels[index], the same elements: index_select is several times faster on the CPU than
    # advanced indexing (issue #12)
    return levels.index_select(0, index.reshape(-1)).reshape(index.shape)
