"""The study's noise model (SPEC §1): W + e, e ~ N(0, (sigma R(W))^2) i.i.d. per weight.

On the CPU the C++ library applies it (``csrc/gaussian_noise.cpp``): one operator call for all of a
model's tensors, two passes over each float32 tensor, the gradient the identity, where torch's
expression (:func:`torch_noisy`) is six operator calls and an autograd node per tensor. The numbers
are the expression's, bit for bit, where torch's build fuses the multiply-add of ``addcmul`` as the
library does: the first use in a process checks that (every reference, several sizes and noise
levels, with and without a leading axis of draws), and torch's expression runs where they differ,
off the CPU, and under ``MEMRISTOR_MAT_NATIVE=python``; the library itself gives to torch's
expression the tensors its passes do not take (not float32, not contiguous, empty, normals that
require a gradient) and those whose reference is 0 or NaN.
"""

from __future__ import annotations

import logging
from typing import Callable, Mapping, Sequence

import torch

from .. import native
from .base import SampledNoise

__all__ = ["REFERENCES", "GaussianWeightNoise", "applier", "torch_noisy", "weight_reference"]

log = logging.getLogger(__name__)


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


def torch_noisy(weight: torch.Tensor, standard_normal: torch.Tensor, sigma: float, reference: str) -> torch.Tensor:
    """``W + sigma * R(W) * z`` in torch's operators: the definition whose numbers the C++ library's
    operator gives. ``standard_normal``: ``(*draws, *weight.shape)``."""
    return torch.addcmul(weight, standard_normal, sigma * weight_reference(weight, reference))


#: the first-use check: (weight shape, leading draws) pairs (a single element, tails of the library's
#: vectors of 4, 8 or 16 floats, the MLP's layers, a size that torch splits between threads, draws
#: over a broadcast weight), all given to the library in one call as a model's tensors are
CHECK_SHAPES = (((1,), ()), ((15,), ()), ((17,), (3,)), ((10, 128), (2,)), ((128, 784), ()), ((70001,), ()),
                ((33,), (2, 7)))
#: noise levels of the check (0: the product of a zero)
CHECK_SIGMAS = (0.0, 0.05, 0.2, 0.37, 1.0)


def _disagreement(compiled) -> str | None:
    """Why ``compiled``'s noisy weights are not :func:`torch_noisy`'s (None: they are, for the
    checked references, shapes and levels)."""
    weights, normals = [], []
    for index, (shape, draws) in enumerate(CHECK_SHAPES):
        generator = torch.Generator().manual_seed(index)
        weights.append(torch.randn(shape, generator=generator) * 0.05)
        normals.append(torch.randn((*draws, 1, *shape), generator=generator))
    for reference in REFERENCES:
        for sigma in CHECK_SIGMAS:
            ours = compiled.gaussian_weight_noise(weights, normals, sigma, reference)
            for (shape, draws), weight, z, mine in zip(CHECK_SHAPES, weights, normals, ours):
                theirs = torch_noisy(weight, z.select(len(draws), 0), sigma, reference)
                where = f"reference {reference}, shape {tuple(shape)}, draws {draws}, sigma {sigma}"
                if mine.shape != theirs.shape:
                    return f"noisy weights of shape {tuple(mine.shape)}, torch's {tuple(theirs.shape)} ({where})"
                if not torch.equal(mine.view(torch.int32), theirs.view(torch.int32)):
                    differ = int((mine.view(torch.int32) != theirs.view(torch.int32)).sum())
                    return f"{differ} of {theirs.numel()} noisy weights differ from torch's ({where})"
    return None


#: whether the library's noisy weights are torch's here (checked at the first use)
_agreement = native.Agreement(_disagreement, "torch's operators apply the Gaussian weight noise", log)


def applier() -> str:
    """Who applies the Gaussian weight noise to CPU tensors in this process, and why (for
    ``memristor-mat build-native``'s report)."""
    return _agreement.report("the C++ library applies the Gaussian weight noise: torch's numbers here, bit for bit")


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
        return self.apply_all((weight,), (normals,), condition)[0]

    def apply_all(self, weights: Sequence[torch.Tensor], normals: Sequence[torch.Tensor],
                  condition: Mapping[str, float]) -> list[torch.Tensor]:
        """:meth:`apply` to each weight with its normals: on the CPU one call of the C++ library for
        them all (the module docstring says where it runs), where torch's expression makes six
        operator calls and an autograd node per tensor, each dearer in a training step, whose other
        passes have pushed the code they run through out of the caches."""
        sigma = condition["sigma"]
        if type(sigma) in (float, int) and all(t.is_cpu for t in weights) and all(t.is_cpu for t in normals):
            compiled = _agreement.library()
            if compiled is not None:
                return compiled.gaussian_weight_noise(list(weights), list(normals), sigma, self.reference)
        return [torch_noisy(w, z.select(z.dim() - w.dim() - 1, 0), sigma, self.reference)
                for w, z in zip(weights, normals)]
