"""Stuck-at faults (SPEC §8): each device independently stuck at G = 0 ("off", probability
``p_stuck_off``, the SPEC's p0) or at G = g_max ("on", ``p_stuck_on``, p1), whatever it was
programmed to, and whatever the device physics would do to it (stuck devices neither drift nor
fluctuate). Fault rates from about one to ten percent are reported for fabricated RRAM arrays
(e.g. Chen et al., "RRAM defect modeling and failure analysis based on march test and a novel
squeeze-search scheme", IEEE Trans. Computers 64, 2015, whose 1.75 % and 9.04 % stuck-at rates
are the ones most fault-tolerance studies reuse); SPEC §8 sweeps both rates from 0 to 10 %.
The fault pattern depends only on the draw's normals, so a Monte-Carlo draw is one chip: a
device stuck at a rate p is stuck the same way at every larger rate (the thresholds grow with p),
and at every time and level count of the same device. (Combined with other effects, the device
reads its normals after theirs, so ``[pcm, stuck_at]`` has other faulty devices than
``stuck_at`` alone on the same draw; ``levels`` reads none.)

With ``u = Phi(z)`` the uniform of the device's standard normal ``z``: stuck off if
``u < p_stuck_off``, stuck on if ``u > 1 - p_stuck_on`` (equivalently ``Phi(-z) < p_stuck_on``;
the comparisons are made on ``z`` against ``Phi^-1`` of the rates, which is the same event
without computing ``Phi`` per device or losing the upper tail to rounding near u = 1).
Not modelled: spatially correlated faults (whole lines), faults appearing over time, partially
stuck devices.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Mapping, Sequence

import torch

__all__ = ["StuckAtFaults", "fault_thresholds"]


def _quantile(p: float) -> float:
    """Phi^-1(p), -inf at 0 and +inf at 1."""
    if p <= 0:
        return float("-inf")
    if p >= 1:
        return float("inf")
    return NormalDist().inv_cdf(p)


def fault_thresholds(condition: Mapping[str, float]) -> tuple[float, float]:
    """``(low, high)``: stuck off where z < low = Phi^-1(p_off), on where z > high = -Phi^-1(p_on)
    (= Phi^-1(1 - p_on)). ValueError for rates outside [0, 1] or summing to more than 1."""
    p_off, p_on = float(condition["p_stuck_off"]), float(condition["p_stuck_on"])
    for name, p in (("p_stuck_off", p_off), ("p_stuck_on", p_on)):
        if not 0 <= p <= 1:
            raise ValueError(f"{name} must be a probability in [0, 1], not {p}")
    if p_off + p_on > 1:
        raise ValueError(f"p_stuck_off + p_stuck_on = {p_off + p_on:g} exceeds 1")
    return _quantile(p_off), -_quantile(p_on)


class StuckAtFaults:
    """Devices stuck at 0 or g_max (see the module docstring); conditions ``p_stuck_off`` and
    ``p_stuck_on``, identity iff both are 0."""

    registry_name = "stuck_at"
    normals_per_device = 1
    drift_compensation = False

    def __repr__(self) -> str:
        return "StuckAtFaults()"

    def is_identity(self, condition: Mapping[str, float]) -> bool:
        return condition["p_stuck_off"] == 0 and condition["p_stuck_on"] == 0

    def apply(self, g: torch.Tensor, normals: Sequence[torch.Tensor], condition: Mapping[str, float], *,
              programmed_only: bool = False) -> torch.Tensor:
        (z,) = normals
        low, high = fault_thresholds(condition)
        # a view of g at the broadcast shape (torch.broadcast_shapes would import sympy at its
        # first call: 0.35 s of every device evaluation job)
        g, _ = torch.broadcast_tensors(g, z)
        if low > float("-inf"):
            g = torch.where(z < low, 0.0, g)
        if high < float("inf"):
            g = torch.where(z > high, 1.0, g)
        return g
