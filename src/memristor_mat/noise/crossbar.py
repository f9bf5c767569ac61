"""Conductance noise on a differential-pair crossbar (SPEC §8).

A weight tensor ``W`` is mapped per tensor to one pair of devices per weight, with ``a = max|W|``
(treated as a constant) and G_min = 0::

    g+ = max(W, 0) / a,    g- = max(-W, 0) / a        (g = G / g_max, normalised to [0, 1])

the conductance effects of the device (finite levels, then the device physics: PCM or RRAM, then
stuck devices) act on each of the two conductances independently, and the crossbar computes with
``(g+_t - g-_t) * a``. This is the single-pair mapping of IBM aihwkit's
``SinglePairConductanceConverter`` (Rasch et al., "Hardware-aware training for large-scale and
diverse deep learning inference workloads using in-memory computing-based accelerators", Nature
Communications 14, 5282, 2023), written from the SPEC's formulas; no code is taken from aihwkit.

Randomness. Every random number is a standard normal taken from the ``normals`` the caller
draws (:mod:`memristor_mat.noise.base`); an effect that needs a uniform uses ``u = Phi(z)``.
Effect ``e`` of the chain owns ``2 k_e`` consecutive entries of the normals dimension
(``k_e = e.normals_per_device``), read as ``(k_e, 2)`` = (normal index, device + / -). So the
same draw of normals is the same physical chip at every condition (time of inference, stuck-at
rate ...): reading it later ages the same devices (common random numbers).

Global drift compensation (Ambrogio et al., "Reducing the impact of phase-change memory
conductance drift on the inference of large-scale hardware neural networks", IEDM 2019;
aihwkit's ``GlobalDriftCompensation``): the periphery reads each tensor's response to a fixed
probe once right after programming and again at the time of inference, and rescales the
tensor's outputs by the ratio. Here the probe is an all-ones input (that of the first aihwkit
versions, which read out the largest |output|; later ones probe with the one-hot vectors and read
the mean) and the readout is the mean absolute output (SPEC §8): with the tensor viewed as
``(shape[0], -1)``,

    alpha = mean_i |sum_j W_ref[i, j]| / mean_i |sum_j W_t[i, j]|,

``W_ref`` being the weights right after programming (programming noise only) from the same
normals. One scalar per tensor and Monte-Carlo draw; a 1-D tensor (a bias) is read as ``(n, 1)``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import torch

from .base import SampledNoise

__all__ = ["ConductanceEffect", "Crossbar", "device_conductances", "drift_compensation_factor"]


@runtime_checkable
class ConductanceEffect(Protocol):
    """One effect acting on normalised conductances ``g = G / g_max`` (see the module docstring)."""

    #: its key in :data:`memristor_mat.noise_registry.NOISE_MODELS`
    registry_name: str
    #: standard normals per device (a weight has two devices)
    normals_per_device: int
    #: True only for an effect that drifts with drift compensation switched on
    drift_compensation: bool

    def is_identity(self, condition: Mapping[str, float]) -> bool:
        """True if the effect leaves every conductance exactly as it is at ``condition``."""

    def apply(self, g: torch.Tensor, normals: Sequence[torch.Tensor], condition: Mapping[str, float], *,
              programmed_only: bool = False) -> torch.Tensor:
        """Normalised conductances after the effect. ``g``: any shape (possibly with leading draw
        dimensions); ``normals``: ``normals_per_device`` standard-normal tensors broadcastable
        against ``g``; ``condition``: the whole device's condition (each effect reads its own
        keys). ``programmed_only``: the state right after programming (PCM: programming noise
        only, no drift and no read noise; the other effects act as usual). Must not modify ``g``
        or ``normals`` in place (the crossbar passes the same ``g`` to both readings)."""

    # Optional, for an effect whose conditions only change how its programmed devices are read
    # (PCM): ``program(g, normals)`` returns that state, with the programmed-only conductances as
    # its ``conductance``, and ``read(state, condition)`` gives ``apply(g, normals, condition)``
    # from it, leaving it as it is. The crossbar then programs once for every condition when
    # the effect comes first in its chain.


def device_conductances(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(g, a)``: the normalised conductances of the pair, stacked as ``(2, *weight.shape)``
    (g+ then g-), and the tensor's scale ``a = max|W|`` (a 0-d tensor, detached). An all-zero
    tensor has a = 0 and all conductances 0, so its deployed weights ``(g+ - g-) a`` are 0
    whatever the noise."""
    w = weight.detach()
    low, high = torch.aminmax(w)
    a = torch.maximum(-low, high)
    # max(W, 0) / a == max(W / a, 0) bit for bit (a > 0); the largest |W| maps to exactly 1;
    # dividing by 1 for the all-zero tensor avoids a device sync on a == 0
    g = torch.stack((w, w.neg())).div_(torch.where(a > 0, a, torch.ones_like(a)))
    return g.clamp_min_(0), a


def drift_compensation_factor(reference: torch.Tensor, current: torch.Tensor, weight_dims: int) -> torch.Tensor:
    """alpha = mean_i |sum_j ref[i, j]| / mean_i |sum_j cur[i, j]| for each leading (draw) index,
    each tensor's last ``weight_dims`` dimensions viewed as ``(shape[0], -1)`` (an all-ones probe
    input, read out as the mean absolute output). Shape: the leading dimensions followed by
    ``weight_dims`` ones, ready to multiply ``current``."""

    def readout(w: torch.Tensor) -> torch.Tensor:
        lead = w.shape[: w.dim() - weight_dims]
        rows = w.shape[w.dim() - weight_dims] if weight_dims > 0 else 1
        return w.reshape(*lead, rows, -1).sum(-1).abs().mean(-1)

    ref, cur = readout(reference), readout(current)
    tiny = torch.finfo(cur.dtype).tiny
    alpha = ref / cur.clamp_min(tiny)
    lead = torch.broadcast_shapes(reference.shape[: reference.dim() - weight_dims],
                                  current.shape[: current.dim() - weight_dims])
    return alpha.expand(lead).reshape((*lead, *([1] * weight_dims)))


class Crossbar(SampledNoise):
    """A device made of conductance effects (SPEC §8), mapped onto differential pairs.

    ``effects`` must already be in their physical order (levels, then pcm / rram, then stuck_at:
    :func:`~memristor_mat.noise.base.make_noise_model` sorts them). See the module docstring for
    the mapping, the layout of the normals and the drift compensation.
    """

    def __init__(self, effects: Sequence[ConductanceEffect]) -> None:
        self.effects = tuple(effects)
        if not self.effects:
            raise ValueError("a crossbar needs at least one conductance effect")
        self.registry_names = tuple(e.registry_name for e in self.effects)
        self.normals_per_weight = 2 * sum(e.normals_per_device for e in self.effects)
        self.compensates_drift = any(e.drift_compensation for e in self.effects)

    def __repr__(self) -> str:
        return f"Crossbar({list(self.effects)!r})"

    def is_identity(self, condition: Mapping[str, Any]) -> bool:
        return all(e.is_identity(condition) for e in self.effects)

    def _blocks(self, normals: torch.Tensor, dim: int) -> list[list[torch.Tensor]]:
        """Each effect's normals: ``k_e`` views of shape ``(*draws, 2, *weight.shape)``."""
        blocks, offset = [], 0
        for effect in self.effects:
            k = effect.normals_per_device
            block = normals.narrow(dim, offset, 2 * k).unflatten(dim, (k, 2))
            blocks.append([block.select(dim, i) for i in range(k)])
            offset += 2 * k
        return blocks

    def apply(self, weight: torch.Tensor, normals: torch.Tensor, condition: Mapping[str, Any]) -> torch.Tensor:
        """Deployed weights ``(*draws, *weight.shape)`` from ``normals`` of shape
        ``(*draws, normals_per_weight, *weight.shape)``. ``weight`` itself where every effect is
        the identity at ``condition``. The gradient with respect to ``weight`` is the identity
        (straight-through): the result is ``weight + (noisy - weight).detach()`` when a gradient
        is being recorded, the noisy weights themselves otherwise (no extra rounding)."""
        if self.is_identity(condition):
            return weight
        return self.program(weight, normals)(condition)

    def program(self, weight: torch.Tensor, normals: torch.Tensor) -> Callable[[Mapping[str, Any]], torch.Tensor]:
        """The chip programmed with ``weight`` and one draw (or a stack of draws) of ``normals``,
        as a function of the condition: ``program(weight, normals)(condition)`` is
        ``apply(weight, normals, condition)``. What no condition changes is made once: the
        conductances, and, where the first effect has a ``program(g, normals)`` and
        ``read(programmed, condition)`` (PCM: programming noise, drift exponents), that effect's
        programmed state, which then reads at each time for less than half the work of applying
        it anew (a PCM condition of the MLP's first layer, 16 draws: 13.6 instead of 32.2 ms)."""
        dim = normals.dim() - weight.dim() - 1
        if dim < 0 or normals.shape[dim] != self.normals_per_weight or normals.shape[dim + 1:] != weight.shape:
            raise ValueError(f"normals of shape {tuple(normals.shape)} do not fit a weight of shape "
                             f"{tuple(weight.shape)} with {self.normals_per_weight} normals per weight")
        lead = normals.shape[:dim]
        g, a = device_conductances(weight)
        blocks = self._blocks(normals, dim)
        first = self.effects[0]
        programmed = first.program(g, blocks[0]) if hasattr(first, "program") else None

        def read(condition: Mapping[str, Any]) -> torch.Tensor:
            if self.is_identity(condition):
                return weight
            conductances, reference = g, None  # reference: the programmed-only conductances, once they differ
            for index, (effect, block) in enumerate(zip(self.effects, blocks)):
                if index == 0 and programmed is not None:
                    if self.compensates_drift and effect.drift_compensation:
                        reference = programmed.conductance
                    conductances = effect.read(programmed, condition)
                    continue
                if reference is not None:
                    reference = effect.apply(reference, block, condition, programmed_only=True)
                elif self.compensates_drift and effect.drift_compensation:
                    reference = effect.apply(conductances, block, condition, programmed_only=True)
                conductances = effect.apply(conductances, block, condition)
            pair = -weight.dim() - 1  # the plus/minus dimension
            noisy = torch.sub(conductances.select(pair, 0), conductances.select(pair, 1))
            if reference is not None:
                deployed = reference.select(pair, 0) - reference.select(pair, 1)
                noisy.mul_(drift_compensation_factor(deployed, noisy, weight.dim()))
            noisy = noisy.mul_(a).to(weight.dtype).expand((*lead, *weight.shape))
            if torch.is_grad_enabled() and weight.requires_grad:
                return weight + (noisy - weight).detach()
            return noisy

        return read
