"""Finite conductance levels (SPEC §8): each conductance is programmed to the nearest of ``n``
equally spaced levels in [0, g_max] before any other noise acts.

With ``g = G / g_max``, ``g_q = floor(g (n - 1) + 1/2) / (n - 1)``: nearest-level rounding, a
conductance exactly halfway between two levels going to the *upper* one (a fixed rule, unlike
round-half-to-even, whose direction would alternate from level to level). ``g`` is clipped to
[0, 1] first, so the end levels are exactly 0 and g_max. This is the uniform quantisation of a
multi-level cell programmed to discrete targets (no fitted device data behind it: a level count
is a config value). Not modelled: non-uniform level placement, level-dependent write errors (the
device physics models add programming noise afterwards), a G_min above 0.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch

__all__ = ["ConductanceLevels", "level_count"]


def level_count(condition: Mapping[str, float]) -> int:
    """The condition's ``n_levels`` as an int; ValueError unless an integer >= 2."""
    n = condition["n_levels"]
    if isinstance(n, bool) or not isinstance(n, (int, float)) or not math.isfinite(n) or n != int(n) or n < 2:
        raise ValueError(f"n_levels must be an integer >= 2, not {n!r}")
    return int(n)


class ConductanceLevels:
    """Rounding to ``n_levels`` equally spaced conductances (see the module docstring); uses no
    random numbers."""

    registry_name = "levels"
    normals_per_device = 0
    drift_compensation = False

    def __repr__(self) -> str:
        return "ConductanceLevels()"

    def is_identity(self, condition: Mapping[str, float]) -> bool:
        return False  # rounding changes every conductance not already on a level

    def apply(self, g: torch.Tensor, normals: Sequence[torch.Tensor], condition: Mapping[str, float], *,
              programmed_only: bool = False) -> torch.Tensor:
        steps = level_count(condition) - 1
        return g.clamp(0, 1).mul_(steps).add_(0.5).floor_().div_(steps)
