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
aihwkit's ``GlobalDriftCompensation``): the periphery reads each layer's response to a fixed
probe once right after programming and again at the time of inference, and rescales the layer's
outputs by the ratio (SPEC §8: one scalar per layer and Monte-Carlo draw). The readout is the
mean absolute output. A layer is the tensors that feed the same outputs
(:func:`memristor_mat.noise.crossbar_layers`: a module's weight and bias; the spiking network's
input and recurrent matrices), each with the axis of its outputs (0 for ``nn.Linear`` and
convolutions, whose weights are (out, in, ...), a convolution read as its unrolled (out, in k k)
matrix); a bias adds to every output whatever the input. Two probes (the PCM option
``compensation_probe``):

* ``ones`` (default): one all-ones input, one read of the array (the probe of aihwkit's first
  versions, which read out the largest |output|). The layer's response ``r`` is, per output, the
  sum over its tensors of each tensor summed over its input axes (``W 1 + b``), and
  ``alpha = mean_i |r_ref[i]| / mean_i |r_t[i]|``. Signed sums partly cancel, so the factor
  scatters from draw to draw (5.7 % relative sd on a 10 x 128 layer with its bias, a year after
  programming, 200 draws; 2.8 % with ``one_hot``).
* ``one_hot``: every one-hot input in turn, one read per input line (aihwkit's probe since its
  readout became the mean): the responses are the columns ``W[:, j] + b``, and
  ``alpha = mean_ij |W_ref[i, j] + b_ref[i]| / mean_ij |W_t[i, j] + b_t[i]|``, an average over
  every device of the layer (a layer of biases alone: ``mean_i |b_ref[i]| / mean_i |b_t[i]|``).

``*_ref`` are the weights right after programming (programming noise only) from the same normals,
and every tensor of the layer is multiplied by alpha (a layer's output is linear in its weights
and bias).

Per column (the PCM option ``compensation_scope: column``; aihwkit's
``PerColumnDriftCompensation``): one factor per output of the layer (a column of the crossbar)
instead of one per layer, from the one-hot probe's responses of that output alone,
``alpha_i = mean_j |W_ref[i, j] + b_ref[i]| / mean_j |W_t[i, j] + b_t[i]|``, multiplying the
layer's tensors along their output axis. It undoes each column's mean drift, at the price of a
factor from fewer devices. (With the all-ones probe a column's factor would be the ratio of two
signed sums, unbounded where a row sums to about 0: refused.)
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import torch

from ..noise_registry import COMPENSATION_PROBES, COMPENSATION_SCOPES
from .base import SampledNoise

__all__ = ["ConductanceEffect", "Crossbar", "check_compensation", "device_conductances", "drift_compensation_factor",
           "probe_readout", "probe_response"]


@runtime_checkable
class ConductanceEffect(Protocol):
    """One effect acting on normalised conductances ``g = G / g_max`` (see the module docstring)."""

    #: its key in :data:`memristor_mat.noise_registry.NOISE_MODELS`
    registry_name: str
    #: standard normals per device (a weight has two devices)
    normals_per_device: int
    #: True only for an effect that drifts with drift compensation switched on
    drift_compensation: bool
    # Optional, for such an effect: ``compensation_probe``, one of COMPENSATION_PROBES (default
    # "ones"), and ``compensation_scope``, one of COMPENSATION_SCOPES (default "layer")

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


def probe_response(weight: torch.Tensor, weight_dims: int, output_axis: int = 0) -> torch.Tensor:
    """A tensor's output to an all-ones probe: ``(*lead, n_out)``, summed over every one of its
    last ``weight_dims`` dimensions but ``output_axis`` (counted among those); a 1-D tensor (a
    bias) is its own response."""
    lead = weight.dim() - weight_dims
    if weight_dims == 0:  # a scalar parameter: one output
        return weight.unsqueeze(-1)
    outputs_last = weight.movedim(lead + output_axis, -1)
    return outputs_last if weight_dims == 1 else outputs_last.flatten(lead, -2).sum(-2)


def check_compensation(probe: str, scope: str) -> None:
    """ValueError unless ``probe`` and ``scope`` name a drift compensation this module computes."""
    if probe not in COMPENSATION_PROBES:
        raise ValueError(f"compensation_probe must be one of {list(COMPENSATION_PROBES)}, not {probe!r}")
    if scope not in COMPENSATION_SCOPES:
        raise ValueError(f"compensation_scope must be one of {list(COMPENSATION_SCOPES)}, not {scope!r}")
    if scope == "column" and probe != "one_hot":
        raise ValueError("compensation_scope column needs compensation_probe one_hot: a column's factor from "
                         "the all-ones probe is a ratio of two signed sums, unbounded where a row sums to about 0")


def probe_readout(layer: Sequence[tuple[torch.Tensor, int, int]], probe: str = "ones",
                  scope: str = "layer") -> torch.Tensor:
    """A layer's mean absolute response to ``probe`` (see the module docstring), one per leading
    (draw) index (``scope="layer"``), or one per leading index and output (``scope="column"``:
    shape ``(*lead, n_out)``, the one-hot probe only). ``layer``: its tensors as ``(tensor,
    weight_dims, output_axis)``, each tensor with leading draw dimensions before its last
    ``weight_dims``; tensors of at most one weight dimension are biases (their own response to
    any input)."""
    check_compensation(probe, scope)
    if probe == "ones":
        return sum(probe_response(t, dims, axis) for t, dims, axis in layer).abs().mean(-1)
    biases = [probe_response(t, dims, axis) for t, dims, axis in layer if dims <= 1]
    bias = sum(biases[1:], biases[0]) if biases else None
    matrices = [t.movedim(t.dim() - dims + axis, -1).flatten(t.dim() - dims, -2) for t, dims, axis in layer if dims > 1]
    per_output = scope == "column"
    if not matrices:  # biases alone: no input line to probe
        return bias.abs() if per_output else bias.abs().mean(-1)
    # (*lead, n_in, n_out) each: the responses to that tensor's one-hot inputs, the bias added
    summed = (-2,) if per_output else (-2, -1)
    total = sum((matrix if bias is None else matrix + bias.unsqueeze(-2)).abs().sum(summed) for matrix in matrices)
    reads = sum(matrix.shape[-2] for matrix in matrices) * (1 if per_output else matrices[0].shape[-1])
    return total / reads


def drift_compensation_factor(reference: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """alpha = reference / current: from a layer's probe readouts (:func:`probe_readout`) right
    after programming and now, one per leading (draw) index, and output where the readouts are
    per column (a readout of 0 counts as the smallest positive number)."""
    return reference / current.clamp_min(torch.finfo(current.dtype).tiny)


def _along_outputs(alpha: torch.Tensor, scope: str, weight_dims: int, output_axis: int) -> torch.Tensor:
    """The factors ``alpha`` (``(*lead)`` per layer, ``(*lead, n_out)`` per column) shaped to
    multiply a tensor of the layer (``(*lead, *weight)``, its outputs along ``output_axis``)."""
    if scope == "layer":
        return alpha.reshape(*alpha.shape, *([1] * weight_dims))
    lead, n_out = alpha.shape[:-1], alpha.shape[-1]
    if weight_dims == 0:  # a scalar parameter: its one output
        return alpha.reshape(lead)
    return alpha.reshape(*lead, *([1] * output_axis), n_out, *([1] * (weight_dims - 1 - output_axis)))


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
        #: the drift compensation's probe, from the effect that compensates (PCM's option)
        self.compensation_probe = next((getattr(e, "compensation_probe", "ones") for e in self.effects
                                        if e.drift_compensation), None)
        self.compensation_scope = next((getattr(e, "compensation_scope", "layer") for e in self.effects
                                        if e.drift_compensation), None)

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
        ``(*draws, normals_per_weight, *weight.shape)``, the tensor read as a layer of its own
        with its outputs along dimension 0 (:meth:`program_layer` reads a layer of several).
        ``weight`` itself where every effect is the identity at ``condition``. The gradient with
        respect to ``weight`` is the identity (straight-through): the result is
        ``weight + (noisy - weight).detach()`` when a gradient is being recorded, the noisy weights
        themselves otherwise (no extra rounding)."""
        if self.is_identity(condition):
            return weight
        return self.program(weight, normals)(condition)

    def program(self, weight: torch.Tensor, normals: torch.Tensor) -> Callable[[Mapping[str, Any]], torch.Tensor]:
        """The chip programmed with ``weight`` and one draw (or a stack of draws) of ``normals``,
        as a function of the condition: ``program(weight, normals)(condition)`` is
        ``apply(weight, normals, condition)``."""
        read = self.program_layer({"": weight}, {"": normals})
        return lambda condition: read(condition)[""]

    def program_layer(self, weights: Mapping[str, torch.Tensor], normals: Mapping[str, torch.Tensor],
                      output_axes: Mapping[str, int] | None = None
                      ) -> Callable[[Mapping[str, Any]], dict[str, torch.Tensor]]:
        """The tensors of one layer (by name; see the module docstring) programmed with one draw
        (or a stack of draws) of their ``normals``, as a function of the condition that gives the
        deployed tensors by name. ``output_axes``: each tensor's axis of the layer's outputs
        (default 0), for the drift compensation, which rescales the layer as a whole. What no
        condition changes is made once: the conductances, and, where the first effect has a
        ``program(g, normals)`` and ``read(programmed, condition)`` (PCM: programming noise, drift
        exponents), that effect's programmed state, which then reads at each time for less than
        half the work of applying it anew (a PCM condition of the MLP's first layer, 16 draws:
        13.6 instead of 32.2 ms)."""
        readers = {name: self._program_tensor(weight, normals[name]) for name, weight in weights.items()}
        # the draw dimensions of each tensor's normals (an effect that ignores them returns fewer)
        leads = {name: normals[name].shape[:normals[name].dim() - weight.dim() - 1] for name, weight in weights.items()}
        axes = {name: (output_axes or {}).get(name, 0) for name in weights}

        def read(condition: Mapping[str, Any]) -> dict[str, torch.Tensor]:
            if self.is_identity(condition):
                return dict(weights)
            readings = {name: reader(condition) for name, reader in readers.items()}
            deployed = {name: noisy for name, (noisy, _) in readings.items()}
            if any(reference is not None for _, reference in readings.values()):
                probe, scope = self.compensation_probe, self.compensation_scope
                response_now = probe_readout([(noisy, weights[name].dim(), axes[name])
                                              for name, (noisy, _) in readings.items()], probe, scope)
                response_then = probe_readout([(reference, weights[name].dim(), axes[name])
                                               for name, (_, reference) in readings.items()], probe, scope)
                alpha = drift_compensation_factor(response_then, response_now)
                deployed = {name: noisy * _along_outputs(alpha, scope, weights[name].dim(), axes[name])
                            for name, noisy in deployed.items()}
            for name, noisy in deployed.items():
                weight = weights[name]
                noisy = noisy.to(weight.dtype).expand((*leads[name], *weight.shape))
                if torch.is_grad_enabled() and weight.requires_grad:
                    noisy = weight + (noisy - weight).detach()
                deployed[name] = noisy
            return deployed

        return read

    def _program_tensor(self, weight: torch.Tensor, normals: torch.Tensor):
        """One tensor of a layer: ``condition -> (noisy, reference)``, its deployed weights before
        the drift compensation and, where an effect compensates drift, those right after
        programming (both in the weight's units, with the draw dimensions of ``normals``)."""
        dim = normals.dim() - weight.dim() - 1
        if dim < 0 or normals.shape[dim] != self.normals_per_weight or normals.shape[dim + 1:] != weight.shape:
            raise ValueError(f"normals of shape {tuple(normals.shape)} do not fit a weight of shape "
                             f"{tuple(weight.shape)} with {self.normals_per_weight} normals per weight")
        g, a = device_conductances(weight)
        blocks = self._blocks(normals, dim)
        first = self.effects[0]
        programmed = first.program(g, blocks[0]) if hasattr(first, "program") else None
        pair = -weight.dim() - 1  # the plus/minus dimension

        def deployed(conductances: torch.Tensor) -> torch.Tensor:
            return torch.sub(conductances.select(pair, 0), conductances.select(pair, 1)).mul_(a)

        def read(condition: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
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
            return deployed(conductances), None if reference is None else deployed(reference)

        return read
