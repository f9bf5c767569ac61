"""``qat`` and ``qat_noise``: quantisation-aware training, the original's procedure (SPEC §2.1).

Before training, a full-precision copy of every memristor tensor is kept. Each batch:

1. forward and backward with the current weights: quantised, except on the very first batch;
2. (``before_step``) the full-precision values are put back;
3. the optimiser steps with the gradients computed at the quantised weights (straight-through);
4. the weights are clipped to +-k std (if the task clips);
5. (``after_clip``) the new full-precision values are stored,
6. the weights are quantised (:func:`memristor_mat.quantization.quantize`),
7. ``qat_noise`` only: absolute noise N(0, noise_sd^2) is added (not scaled by the weights).

So the trained model's parameters are the deployed weights: quantised, and for ``qat_noise``
with the last noise sample, which is what the original reported and what the Monte-Carlo
evaluation perturbs. The full-precision copy goes into the resume checkpoint.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from .. import normals
from ..quantization import quantize
from .hooks import EpochContext, TrainingHooks


class QuantizationHooks(TrainingHooks):
    def __init__(self, model, parameters, settings, device) -> None:
        super().__init__(model, parameters, settings, device)
        options = settings.method_options
        self.levels = int(options["levels"])
        self.noise_sd = float(options.get("noise_sd", 0.0))
        # step 0: the full-precision copy is the initial weights (the first batch sees them as they are)
        self.full_precision = {name: p.detach().clone() for name, p in self.parameters.items()}

    @torch.no_grad()
    def before_step(self, index: int, context: EpochContext) -> None:
        for name, p in self.parameters.items():
            p.copy_(self.full_precision[name])

    @torch.no_grad()
    def after_clip(self, index: int, context: EpochContext) -> None:
        for name, p in self.parameters.items():
            self.full_precision[name].copy_(p)
            p.copy_(quantize(p, self.levels))
            if self.noise_sd > 0:
                p.add_(normals.randn(p.shape, generator=context.generator, device=p.device), alpha=self.noise_sd)

    def state_dict(self) -> dict[str, Any]:
        return {"full_precision": {name: w.detach().cpu() for name, w in self.full_precision.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if "full_precision" not in state:
            raise ValueError("the resume checkpoint lacks the full-precision copy of the QAT weights; "
                             "delete it to start this run over")
        stored = state["full_precision"]
        if set(stored) != set(self.full_precision):
            raise ValueError(f"the resume state holds full-precision copies of {sorted(stored)}, "
                             f"but the model's tensors are {sorted(self.full_precision)}")
        for name, w in stored.items():
            self.full_precision[name].copy_(w)
