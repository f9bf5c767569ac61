"""Resistive RAM (SPEC §8): the conductance-dependent spread of Wan et al., "A compute-in-memory
chip based on resistive random-access memory", Nature 608, 504-512 (2022) (NeuRRAM), as fitted
in IBM aihwkit's ``ReRamWan2022NoiseModel``. Implemented from the formulas in SPEC §8; no code is
taken from aihwkit.

With ``g = G / g_max`` (g_max = 40 uS) and one standard normal ``z`` per device,
``G_t = max(G + sigma(g, t) z, 0)``, ``sigma(g, t) = sum_k c_k(t) g^k`` uS, a quartic fitted to
the published spread 1 s, 1 day and 2 days after programming; the model is defined at those three
times only (no interpolation, no drift of the mean). Since the same ``z`` is used at every time,
a Monte-Carlo draw is one chip whose deviations grow with the fit's spread.

Not modelled: a mean shift (relaxation) of the conductance, read (1/f) noise beyond what the
fitted spread contains (aihwkit suggests adding about 1 % separately), device-to-device
variability of g_max, temperature, IR drop; conductances are not clipped at g_max.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch

__all__ = ["RRAMNoise", "SPREAD_COEFFICIENTS"]

#: sigma(g, t) in uS: c0..c4 of the quartic in g = G / 40 uS, by time after programming (s)
SPREAD_COEFFICIENTS: Mapping[float, tuple[float, float, float, float, float]] = {
    1.0: (0.348, 16.030, -43.853, 45.393, -16.815),
    86400.0: (0.701, 22.086, -50.773, 47.095, -16.458),
    172800.0: (0.782, 20.274, -43.507, 37.062, -11.934),
}


def spread_coefficients(t: float) -> tuple[float, ...]:
    """The quartic's coefficients (uS) at ``t`` seconds; ValueError at a time without a fit."""
    for time, coefficients in SPREAD_COEFFICIENTS.items():
        if math.isclose(float(t), time, rel_tol=1e-12):
            return coefficients
    raise ValueError(f"the RRAM model is defined at t_inference = "
                     f"{', '.join(f'{k:g}' for k in SPREAD_COEFFICIENTS)} s only, not {t:g}")


class RRAMNoise:
    """The RRAM conductance effect (see the module docstring); condition ``t_inference`` (s, one
    of 1, 86400, 172800). ``g_max``: uS (default 40, the fit's); sigma is in the fit's uS."""

    registry_name = "rram"
    normals_per_device = 1
    drift_compensation = False

    def __init__(self, g_max: float = 40.0) -> None:
        if isinstance(g_max, bool) or not isinstance(g_max, (int, float)) or not g_max > 0 or math.isinf(g_max):
            raise ValueError(f"g_max must be a positive number of uS, not {g_max!r}")
        self.g_max = float(g_max)

    def __repr__(self) -> str:
        return f"RRAMNoise(g_max={self.g_max:g})"

    def is_identity(self, condition: Mapping[str, float]) -> bool:
        return False

    def spread(self, g: torch.Tensor, t: float) -> torch.Tensor:
        """sigma(g, t) / g_max (normalised), by Horner's rule."""
        *rest, top = (c / self.g_max for c in spread_coefficients(t))
        sigma = g * top
        for c in reversed(rest[1:]):
            sigma.add_(c).mul_(g)
        return sigma.add_(rest[0])

    def apply(self, g: torch.Tensor, normals: Sequence[torch.Tensor], condition: Mapping[str, float], *,
              programmed_only: bool = False) -> torch.Tensor:
        (z,) = normals
        return torch.addcmul(g, self.spread(g, condition["t_inference"]), z).clamp_min_(0)
