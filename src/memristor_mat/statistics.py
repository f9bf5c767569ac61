"""torch's standard deviation of a float32 CPU tensor, the same float32 value, about 4x faster.

Why: :func:`memristor_mat.training.clip_weights` (SPEC §2.1) takes each weight tensor's standard
deviation after every optimiser step. torch's CPU kernel for a contiguous tensor runs Welford's
update in double precision one element after another, a division per element: 93-110 us for the
MLP's first layer (100,352 weights), about a tenth of a vanilla step of the paper's MNIST recipe.

How: the package's C++ library (:mod:`memristor_mat.native`, ``csrc/statistics.cpp``) sums, in one
vectorised pass in double precision, T = sum(x - c) and Q = sum((x - c)^2) for a shift c (the mean
of the first 64 elements), so that S' = Q - T^2 / n approximates S = sum((x - mean)^2). torch
returns float32(sqrt(M2 / (n - 1))), M2 its own double-precision sum. Both are within known bounds
of S, so :func:`float32_std` bounds the double torch rounds to float32 in an interval; where
every value of that interval rounds to the same float32 (rounding to nearest is monotone), that is
torch's result, and otherwise (the interval holds a midpoint between two float32 values, about
1 % of calls at n = 100,352, more for tensors whose mean is large against their spread) torch
computes it. The bounds, with u = 2^-53:

- ours: |S' - S| <= (4 n + 16) u Q. Each difference and square is rounded once (relative error
  <= 3.01 u), the partial sums of n nonnegative terms add at most 1.01 n u Q (Higham, *Accuracy and
  Stability of Numerical Algorithms*, 2nd ed., 2002, §4.2, gamma_n for any order of summation);
  T's error is <= 1.02 (n + 1) u sum|x - c| <= 1.02 (n + 1) u sqrt(n Q) (Cauchy-Schwarz), which
  moves T^2 / n by at most 2.05 (n + 1) u Q; the last three roundings add 3.1 u Q.
- torch's (Welford's update, in double precision, partial sums of threads combined by Chan et
  al.'s formula): |M2 - S| <= C n kappa u S, kappa = sqrt(1 + n mean^2 / S) the problem's condition
  number. Chan, Golub & LeVeque, "Algorithms for computing the sample variance: analysis and
  recommendations", The American Statistician 37(3), 1983, Table 1 give n kappa u for the updating
  algorithm up to a constant factor; C = 64 here, and ``tests/test_statistics.py`` measures
  torch's actual error against it (the largest seen is far below).
- torch's division and square root, and the float32 rounding of the result's bounds, a few u more.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from memristor_mat import native

# below this many elements torch's kernel takes a few microseconds: not worth the library's call
MIN_ELEMENTS = 4096
UNIT_ROUNDOFF = 2.0 ** -53
WELFORD_CONSTANT = 64.0


def _float32(value: float) -> float:
    """``value`` rounded to the nearest float32 (ties to even), as a Python float."""
    return float(np.float32(value))


def float32_std_from_sums(n: int, shift: float, total: float, squares: float) -> float | None:
    """torch.std's float32 value (correction 1) for n elements whose shifted sums are ``total`` =
    sum(x - shift) and ``squares`` = sum((x - shift)^2) as ``csrc/statistics.cpp`` computes them, or
    None where the bounds (module docstring) do not decide it."""
    if n < 2 or not all(map(math.isfinite, (shift, total, squares))):
        return None
    u = UNIT_ROUNDOFF
    estimate = squares - total * total / n
    ours = (4 * n + 16) * u * squares * 1.01  # 1.01: squares is the computed Q, not the exact one
    low, high = estimate - ours, estimate + ours
    if not low > 0:
        return None  # a constant tensor, or a spread too small for the bound: torch decides
    mean = abs(shift) + abs(total) / n
    kappa = math.sqrt(1.0 + n * mean * mean / low) * 1.01
    welford = WELFORD_CONSTANT * n * kappa * u
    if not welford < 1:
        return None  # a mean so large against the spread that torch's error bound is no bound
    # torch's double before its float32 rounding lies in [lowest, highest]
    lowest = math.sqrt(low * (1 - welford) / (n - 1) * (1 - u)) * (1 - u) * (1 - 8 * u)
    highest = math.sqrt(high * (1 + welford) / (n - 1) * (1 + u)) * (1 + u) * (1 + 8 * u)
    rounded = _float32(lowest)
    return rounded if rounded == _float32(highest) else None


def float32_std(x: torch.Tensor) -> float:
    """``float(x.std())`` (torch's float32 value, correction 1) for a float32 tensor: from the
    C++ library's sums where they decide it (a contiguous CPU tensor of at least
    :data:`MIN_ELEMENTS` elements, the library built), else from torch."""
    if (x.numel() >= MIN_ELEMENTS and x.dtype == torch.float32 and x.device.type == "cpu"
            and x.is_contiguous()):
        compiled = native.cpu_module(x)
        if compiled is not None:
            shift, total, squares = compiled.shifted_sums(x.detach())
            value = float32_std_from_sums(x.numel(), shift, total, squares)
            if value is not None:
                return value
    return x.std().item()
