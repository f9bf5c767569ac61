"""``noisy_updates``: the original's "noisy grad" (SPEC §2, §2.1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..noise import weight_reference
from .hooks import EpochContext, TrainingHooks

#: when, within an epoch, ``noisy_updates`` injects: batch ``index`` (0-based) such that ...
INJECTION_TIMINGS = {
    # index % n == 0: batches 0, n, 2n, ... (the original's code, SPEC §2.1)
    "original": lambda index, n: index % n == 0,
    # (index + 1) % n == 0: after every n full batches, never on an epoch's first batch
    "interval_end": lambda index, n: (index + 1) % n == 0,
}
#: where the injection sits relative to the +-k std clipping of the same batch
INJECTION_ORDERS = ("noise_then_clip", "clip_then_noise")
#: the scale R(W) of an injection, sd = relative_sd * R(W) (see memristor_mat.noise.REFERENCES)
INJECTION_REFERENCES = ("range", "max", "absmax", "2absmax")


@dataclass(frozen=True)
class NoisyUpdates:
    """Permanent noise N(0, (relative_sd * R(W))^2) added in place to every memristor tensor W
    after the optimiser step of selected batches of the last ``last_epochs`` epochs, every
    ``every_n_batches`` batches.

    ``timing``, ``order`` and ``reference`` say which batches, whether the noise comes before or
    after the weight clipping, and what R(W) is. The original (SPEC §2.1): ``timing="original"``
    (index % n == 0), ``order="noise_then_clip"``, ``reference="range"`` (max - min) for MNIST and
    ``"max"`` (|max(W)|, the absolute value of the largest signed weight) with relative_sd 0.1
    for ECG. The defaults are this project's: ``interval_end``, ``clip_then_noise``, ``range``.
    """

    last_epochs: int = 3
    every_n_batches: int = 100
    relative_sd: float = 0.01
    timing: str = "interval_end"
    order: str = "clip_then_noise"
    reference: str = "range"

    def __post_init__(self) -> None:
        for name, value, allowed in (("timing", self.timing, sorted(INJECTION_TIMINGS)),
                                     ("order", self.order, list(INJECTION_ORDERS)),
                                     ("reference", self.reference, list(INJECTION_REFERENCES))):
            if value not in allowed:
                raise ValueError(f"noisy_updates.{name} must be one of {allowed}, got {value!r}")

    def injects_at(self, index: int) -> bool:
        """Whether batch ``index`` (0-based within its epoch) of a late epoch gets an injection."""
        return INJECTION_TIMINGS[self.timing](index, self.every_n_batches)


@torch.no_grad()
def add_permanent_noise(parameters: list[torch.Tensor], relative_sd: float, gen: torch.Generator,
                        reference: str = "range") -> None:
    """W += N(0, (relative_sd * R(W))^2) in place, R from :func:`memristor_mat.noise.weight_reference`."""
    for w in parameters:
        sd = relative_sd * weight_reference(w, reference)
        w.add_(torch.randn(w.shape, generator=gen, device=w.device) * sd)


class NoisyUpdateHooks(TrainingHooks):
    """Injects after the optimiser step, before or after the clipping (``order``)."""

    def _inject(self, index: int, context: EpochContext, order: str) -> None:
        injection = self.settings.noisy_updates
        if context.late and injection.order == order and injection.injects_at(index):
            add_permanent_noise(list(self.parameters.values()), injection.relative_sd, context.generator,
                                injection.reference)

    def after_step(self, index: int, context: EpochContext) -> None:
        self._inject(index, context, "noise_then_clip")

    def after_clip(self, index: int, context: EpochContext) -> None:
        self._inject(index, context, "clip_then_noise")
