"""Uniform per-tensor weight quantisation of the original study's QAT (SPEC §2, §2.1).

Per tensor W: levels = linspace(q_0.01, q_0.99, n) where q are W's 1st and 99th percentiles
(``torch.quantile``, linear interpolation); each weight goes to the nearest level, the decision
boundaries being the mid-points between consecutive levels; weights outside [q_0.01, q_0.99]
snap to the end levels. A weight exactly on a boundary goes to the lower level (the original's
code does not say; the set of such weights has measure zero).
"""

from __future__ import annotations

import torch

#: the percentiles that span the levels (SPEC §2.1)
LOW_QUANTILE, HIGH_QUANTILE = 0.01, 0.99


def quantization_levels(weight: torch.Tensor, n_levels: int) -> torch.Tensor:
    """The ``n_levels`` levels of one tensor, ascending (on the tensor's device). ``torch.quantile``
    takes at most 2**24 elements: larger tensors than any of this study's raise its error."""
    if n_levels < 2:
        raise ValueError(f"quantisation needs at least 2 levels, got {n_levels}")
    flat = weight.detach().reshape(-1)
    if flat.dtype not in (torch.float32, torch.float64):
        flat = flat.float()  # torch.quantile takes float32 and float64 only
    bounds = torch.quantile(flat, torch.tensor([LOW_QUANTILE, HIGH_QUANTILE], device=flat.device, dtype=flat.dtype))
    return torch.linspace(float(bounds[0]), float(bounds[1]), n_levels, device=flat.device, dtype=flat.dtype)


@torch.no_grad()
def quantize(weight: torch.Tensor, n_levels: int) -> torch.Tensor:
    """``weight`` with every element replaced by its nearest level (a new tensor)."""
    levels = quantization_levels(weight, n_levels).to(weight.dtype)
    boundaries = (levels[:-1] + levels[1:]) / 2
    # bucketize (right=False): index i with boundaries[i-1] < w <= boundaries[i], so a weight on
    # a boundary takes the lower level; below the first boundary 0, above the last n - 1
    return levels[torch.bucketize(weight.contiguous(), boundaries)]
