"""The study's noise model (SPEC §1): W + e, e ~ N(0, (sigma R(W))^2) i.i.d. per weight."""

from __future__ import annotations

from typing import Callable, Mapping

import torch

from .base import SampledNoise

__all__ = ["REFERENCES", "GaussianWeightNoise", "weight_reference"]


# aminmax reads the tensor once without a temporary |W| (a third faster than abs().amax())
def _absmax(w: torch.Tensor) -> torch.Tensor:
    low, high = torch.aminmax(w)
    return torch.maximum(-low, high)


def _two_absmax(w: torch.Tensor) -> torch.Tensor:
    # The conductance window of a positive/negative device pair spans -max|W| .. +max|W|.
    return 2 * _absmax(w)


def _range(w: torch.Tensor) -> torch.Tensor:
    low, high = torch.aminmax(w)
    return high - low


def _abs_of_max(w: torch.Tensor) -> torch.Tensor:
    # |max(W)|: the original's ECG noisy updates (SPEC §2.1), not max|W|
    return w.max().abs()


#: How the noise standard deviation scales with a tensor: s = sigma * R(W) (SPEC §1).
REFERENCES: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "2absmax": _two_absmax,
    "absmax": _absmax,
    "range": _range,
    "max": _abs_of_max,
}


def weight_reference(weight: torch.Tensor, reference: str) -> torch.Tensor:
    """R(W) for one tensor, as a constant (no gradient flows through the range)."""
    try:
        function = REFERENCES[reference]
    except KeyError:
        raise ValueError(
            f"unknown noise reference {reference!r}; expected one of {sorted(REFERENCES)}"
        ) from None
    return function(weight.detach())  # a detached tensor: nothing is recorded for autograd


class GaussianWeightNoise(SampledNoise):
    """W + sigma * R(W) * z at condition ``{"sigma": sigma}`` (SPEC §1). ``R`` is detached, so
    the gradient with respect to W is the identity (straight-through)."""

    registry_names = ("gaussian",)
    normals_per_weight = 1

    def __init__(self, reference: str = "2absmax") -> None:
        if reference not in REFERENCES:
            raise ValueError(f"unknown noise reference {reference!r}; expected one of {sorted(REFERENCES)}")
        self.reference = reference

    def __repr__(self) -> str:
        return f"GaussianWeightNoise(reference={self.reference!r})"

    def is_identity(self, condition: Mapping[str, float]) -> bool:
        return condition["sigma"] == 0

    def apply(self, weight: torch.Tensor, normals: torch.Tensor, condition: Mapping[str, float]) -> torch.Tensor:
        standard_normal = normals.select(normals.dim() - weight.dim() - 1, 0)
        return torch.addcmul(weight, standard_normal, condition["sigma"] * weight_reference(weight, self.reference))
