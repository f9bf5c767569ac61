"""The interface of a noise model, and how one is built from its registry name.

A noise model turns clean weights ``W`` and standard normals ``z`` into the weights a crossbar
applies at a *condition* (a small dict such as ``{"sigma": 0.1}`` or ``{"t_inference": 86400}``,
its keys listed in :mod:`memristor_mat.noise_registry`). All its randomness comes from ``z``,
``normals_per_weight`` standard normals per weight, drawn before the model sees the weights.
That split is what the rest of the library relies on:

* common random numbers: Monte-Carlo draw ``d`` is the same ``z`` for every model of an
  architecture and every condition (the same chip, read at another time or noise level), since
  ``z`` depends only on the tensor shapes and the draw's seed;
* bit-identical Gaussian draws whatever other models exist: a model needing other
  distributions derives them from normals (a uniform is ``Phi(z)``);
* speed: ``z`` can be generated ahead of time on another core (training) or for a chunk of
  draws at once (evaluation).

:meth:`NoiseModel.sample` is the one-call form, drawing ``z`` from a generator. A model may also
define ``apply_all(weights, normals, condition)``, :meth:`~NoiseModel.apply` to a list of tensors at
once (:class:`SampledNoise` loops; the Gaussian model makes one call of the C++ library for them
all); :func:`apply_all` uses it where it exists.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import torch

from .. import normals
from ..lazy_registry import resolve
from ..noise_registry import NOISE_MODELS, check_condition, device_chain

__all__ = ["NoiseModel", "SampledNoise", "apply_all", "at_conditions", "make_noise_model"]


@runtime_checkable
class NoiseModel(Protocol):
    """What a noise model provides (see the module docstring)."""

    #: standard normals per weight element
    normals_per_weight: int
    #: the keys of a condition, in the registry's order
    condition_keys: tuple[str, ...]

    def check_condition(self, condition: Mapping[str, Any]) -> dict[str, float]:
        """The full condition (defaults filled in); ValueError naming a bad key."""

    def is_identity(self, condition: Mapping[str, float]) -> bool:
        """True if the model leaves every weight exactly as it is at ``condition`` (then the
        clean model is evaluated once instead of per draw)."""

    def apply(self, weight: torch.Tensor, normals: torch.Tensor, condition: Mapping[str, float]) -> torch.Tensor:
        """Noisy weights. ``normals``: ``(*draws, normals_per_weight, *weight.shape)``; the result
        ``(*draws, *weight.shape)``. The gradient with respect to ``weight`` is the identity
        (straight-through), so a model can be trained through it."""

    def sample(self, weight: torch.Tensor, generator: torch.Generator, condition: Mapping[str, float]) -> torch.Tensor:
        """One draw of noisy weights, its normals taken from ``generator``."""


class SampledNoise:
    """Shared plumbing of the noise models: condition checks from the registry entries named
    ``registry_names`` and :meth:`sample` in terms of :meth:`apply`."""

    registry_names: tuple[str, ...] = ()
    normals_per_weight: int = 1

    @property
    def condition_keys(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for entry in device_chain(self.registry_names):
            for key in entry.conditions:
                seen[key.name] = None
        return tuple(seen)

    def check_condition(self, condition: Mapping[str, Any]) -> dict[str, float]:
        return check_condition(self.registry_names, condition)

    def apply_all(self, weights: Sequence[torch.Tensor], normals: Sequence[torch.Tensor],
                  condition: Mapping[str, float]) -> list[torch.Tensor]:
        """:meth:`apply` to each weight with its normals."""
        return [self.apply(weight, z, condition) for weight, z in zip(weights, normals)]

    def sample(self, weight: torch.Tensor, generator: torch.Generator, condition: Mapping[str, float]) -> torch.Tensor:
        z = normals.randn((self.normals_per_weight, *weight.shape), generator=generator, device=generator.device,
                          dtype=weight.dtype)
        return self.apply(weight, z.to(weight.device), self.check_condition(condition))


def apply_all(noise: NoiseModel, weights: Sequence[torch.Tensor], normals: Sequence[torch.Tensor],
              condition: Mapping[str, float]) -> list[torch.Tensor]:
    """``[noise.apply(w, z, condition) for w, z in zip(weights, normals)]``, by the model's own
    ``apply_all`` where it has one."""
    method = getattr(noise, "apply_all", None)
    if method is not None:
        return method(weights, normals, condition)
    return [noise.apply(weight, z, condition) for weight, z in zip(weights, normals)]


def at_conditions(noise: NoiseModel, weights: Mapping[str, torch.Tensor], normals: Mapping[str, torch.Tensor],
                  output_axes: Mapping[str, int] | None = None
                  ) -> Callable[[Mapping[str, float]], dict[str, torch.Tensor]]:
    """``condition -> {name: noise.apply(weights[name], normals[name], condition)}`` for the
    tensors of one layer (:func:`memristor_mat.noise.crossbar_layers`), for reading one draw of a
    chip at several conditions: a model with a ``program_layer(weights, normals, output_axes)`` of
    that form (the crossbar, whose drift compensation rescales the layer as a whole) makes what the
    condition does not change once; the others apply anew to each tensor at each condition."""
    program_layer = getattr(noise, "program_layer", None)
    if program_layer is not None:
        return program_layer(weights, normals, output_axes)
    names = list(weights)
    tensors = [weights[name] for name in names]
    layer_normals = [normals[name] for name in names]
    return lambda condition: dict(zip(names, apply_all(noise, tensors, layer_normals, condition)))


def make_noise_model(model: str | Sequence[str], options: Mapping[str, Any] | None = None) -> NoiseModel:
    """The noise model of a config: one registry name, or a list of conductance models that
    form one device (applied in their physical order). ``options`` is one flat mapping; each key
    goes to the model whose schema has it (a key two models share goes to both)."""
    options = dict(options or {})
    try:
        entries = device_chain(model)
    except ValueError as error:
        raise ValueError(str(error)) from None
    unclaimed = set(options)
    per_model = {}
    for entry in entries:
        own = {k: v for k, v in options.items() if k in entry.options.get("properties", {})}
        unclaimed -= set(own)
        per_model[entry.name] = own
    if unclaimed:
        accepted = sorted(k for e in entries for k in e.options.get("properties", {}))
        raise ValueError(f"noise model {model!r} has no option {sorted(unclaimed)[0]!r}; its options: "
                         f"{', '.join(accepted) or 'none'}")
    if entries[0].kind == "weights":
        return resolve(entries[0].implementation)(**per_model[entries[0].name])
    from .crossbar import Crossbar

    return Crossbar([resolve(e.implementation)(**per_model[e.name]) for e in entries])
