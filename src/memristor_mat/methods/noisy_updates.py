"""``noisy_updates``: the original's "noisy grad" (SPEC §2, §2.1); its settings are
:class:`memristor_mat.settings.NoisyUpdates`."""

from __future__ import annotations

import torch

from .. import normals
from ..noise import weight_reference
from .hooks import EpochContext, TrainingHooks


@torch.no_grad()
def add_permanent_noise(parameters: list[torch.Tensor], relative_sd: float, gen: torch.Generator,
                        reference: str = "range") -> None:
    """W += N(0, (relative_sd * R(W))^2) in place, R from :func:`memristor_mat.noise.weight_reference`."""
    for w in parameters:
        sd = relative_sd * weight_reference(w, reference)
        w.add_(normals.randn(w.shape, generator=gen, device=w.device) * sd)


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
