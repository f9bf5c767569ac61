"""Phase-change memory (SPEC §8): programming noise, conductance drift and 1/f read noise.

The statistical model of Nandakumar et al., "Phase-change memory models for deep learning
training and inference", ICECS 2019 (fitted on about a million doped-GST devices), in the form
of IBM aihwkit's ``PCMLikeNoiseModel`` (Joshi et al., "Accurate deep neural network inference
using computational phase-change memory", Nature Communications 11, 2473, 2020). Implemented from
the formulas in SPEC §8; no code is taken from aihwkit. With ``g = G / g_max`` the *target*
conductance and ``z1, z2, z3`` independent standard normals (in this order in the normals):

* programming: ``G_p = max(G + sigma_p(g) z1, 0)``,
  ``sigma_p = 0.26348 + 1.9650 g - 1.1731 g^2`` uS;
* drift: ``nu = |mu_nu + sigma_nu z2|`` with ``mu_nu = clip(-0.0155 ln g + 0.0244, 0.049, 0.1)``
  and ``sigma_nu = clip(-0.0125 ln g - 0.0059, 0.008, 0.045)`` (``g`` clamped to >= 1e-7 inside
  ``ln``; the exponent depends on the target, as in aihwkit), ``G_d = G_p ((t + t0) / t0)^-nu``,
  t0 = 20 s;
* read noise: ``G_t = max(G_d + |G_d| Q_s sqrt(ln((t + t0 + t_r) / (2 t_r))) z3, 0)``,
  ``Q_s = min(0.0088 / max(G_p / g_max, 1e-3)^0.65, 0.2)``, t_r = 250 ns.

``t = t_inference`` is in seconds after programming. Conductances are not clipped at g_max
(programming noise and read noise can exceed it). ``sigma_p`` is in uS of the fitted devices and
is divided by this model's ``g_max`` (SPEC §8): a larger window means relatively less programming
noise. (aihwkit instead rescales the fit by ``g_max / 25``, so its relative noise does not depend
on ``g_max``; both agree at the default 25 uS.) Not modelled: device-to-device variability of
g_max, temperature, IR drop and other peripheral non-idealities, programming with
program-and-verify iterations beyond the fitted noise.
"""

from __future__ import annotations

import math
from typing import Mapping, NamedTuple, Sequence

import torch

from .crossbar import check_compensation

__all__ = ["PCMNoise", "PROGRAMMING_COEFFICIENTS", "ProgrammedPCM", "T0", "T_READ"]

#: sigma_p polynomial in g (uS), lowest order first (Nandakumar et al. 2019)
PROGRAMMING_COEFFICIENTS = (0.26348, 1.9650, -1.1731)
#: drift reference time (s)
T0 = 20.0
#: read duration of the 1/f noise fit (s)
T_READ = 250e-9
#: floor of g inside ln (aihwkit's _ZERO_CLIP)
G_FLOOR = 1e-7


def drift_statistics(g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mu_nu, sigma_nu)`` of the drift exponent at target conductance ``g = G / g_max``."""
    log_g = g.clamp_min(G_FLOOR).log_()
    mu = log_g.mul(-0.0155).add_(0.0244).clamp_(0.049, 0.1)
    sigma = log_g.mul_(-0.0125).add_(-0.0059).clamp_(0.008, 0.045)
    return mu, sigma


def read_noise_time_factor(t: float) -> float:
    """sqrt(ln((t + t0 + t_r) / (2 t_r))): the accumulated 1/f noise's growth with time."""
    return math.sqrt(math.log((t + T0 + T_READ) / (2 * T_READ)))


class ProgrammedPCM(NamedTuple):
    """PCM devices right after programming (:meth:`PCMNoise.program`)."""

    #: G_p / g_max
    conductance: torch.Tensor
    #: nu, the drift exponent of each device
    drift_exponent: torch.Tensor
    #: max(G_p / g_max, 1e-3)^-0.65, the read noise's scale before its time factor and bound
    read_noise_scale: torch.Tensor
    #: the read noise's standard normals
    z_read: torch.Tensor


class PCMNoise:
    """The PCM conductance effect (see the module docstring); condition ``t_inference`` (s).

    ``drift_compensation``: the crossbar rescales each layer by its global drift-compensation
    factor, read with ``compensation_probe`` (``ones`` or ``one_hot``), or by one factor per
    output column (``compensation_scope: column``, with the one-hot probe); see
    :mod:`memristor_mat.noise.crossbar`. ``g_max``: uS (default 25, the fit's)."""

    registry_name = "pcm"
    normals_per_device = 3  # programming, drift exponent, read noise

    def __init__(self, drift_compensation: bool = True, g_max: float = 25.0, compensation_probe: str = "ones",
                 compensation_scope: str = "layer") -> None:
        if not isinstance(drift_compensation, bool):
            raise ValueError(f"drift_compensation must be true or false, not {drift_compensation!r}")
        check_compensation(compensation_probe, compensation_scope)
        if isinstance(g_max, bool) or not isinstance(g_max, (int, float)) or not g_max > 0 or math.isinf(g_max):
            raise ValueError(f"g_max must be a positive number of uS, not {g_max!r}")
        self.drift_compensation = drift_compensation
        self.compensation_probe = compensation_probe
        self.compensation_scope = compensation_scope
        self.g_max = float(g_max)

    def __repr__(self) -> str:
        return (f"PCMNoise(drift_compensation={self.drift_compensation}, g_max={self.g_max:g}, "
                f"compensation_probe={self.compensation_probe!r}, compensation_scope={self.compensation_scope!r})")

    def is_identity(self, condition: Mapping[str, float]) -> bool:
        return False  # programming and read noise act at any time

    def programming_sigma(self, g: torch.Tensor) -> torch.Tensor:
        """sigma_p / g_max at target ``g`` (normalised)."""
        c0, c1, c2 = (c / self.g_max for c in PROGRAMMING_COEFFICIENTS)
        return (g * c2 + c1).mul_(g).add_(c0)

    def programmed(self, g: torch.Tensor, z_program: torch.Tensor) -> torch.Tensor:
        """G_p: the conductances right after programming."""
        return torch.addcmul(g, self.programming_sigma(g), z_program).clamp_min_(0)

    def program(self, g: torch.Tensor, normals: Sequence[torch.Tensor]) -> ProgrammedPCM:
        """The devices programmed to ``g``: what does not depend on the time of reading, made
        once for every time :meth:`read` reads them at."""
        z_program, z_drift, z_read = normals
        g_p = self.programmed(g, z_program)
        mu, sigma = drift_statistics(g)
        # Q_s / 0.0088 = max(G_p, 1e-3)^-0.65, the power as exp(-0.65 ln(.)), which takes half the
        # time of pow on CPUs and equals it up to rounding
        return ProgrammedPCM(g_p, torch.addcmul(mu, sigma, z_drift).abs_(),
                             g_p.clamp_min(1e-3).log_().mul_(-0.65).exp_(), z_read)

    def read(self, programmed: ProgrammedPCM, condition: Mapping[str, float]) -> torch.Tensor:
        """G_t: the programmed devices read at ``condition["t_inference"]``; leaves ``programmed``
        as it is."""
        t = float(condition["t_inference"])
        if t < 0 or not math.isfinite(t):
            raise ValueError(f"t_inference must be a finite time >= 0 s, not {t}")
        # ((t + t0) / t0)^-nu = exp(-nu ln((t + t0) / t0)); exactly 1 at t = 0
        g_d = programmed.drift_exponent.mul(-math.log1p(t / T0)).exp_().mul_(programmed.conductance)
        # Q_s S(t) = min(0.0088 S / max(G_p, 1e-3)^0.65, 0.2 S)
        s = read_noise_time_factor(t)
        spread = programmed.read_noise_scale.mul(0.0088 * s).clamp_max_(0.2 * s).mul_(g_d)
        # |G_d| = G_d (G_d >= 0); few temporaries, in place, since fresh allocations of this size cost
        # page faults on every call
        return g_d.addcmul_(spread, programmed.z_read).clamp_min_(0)

    def apply(self, g: torch.Tensor, normals: Sequence[torch.Tensor], condition: Mapping[str, float], *,
              programmed_only: bool = False) -> torch.Tensor:
        if programmed_only:
            return self.programmed(g, normals[0])
        return self.read(self.program(g, normals), condition)
