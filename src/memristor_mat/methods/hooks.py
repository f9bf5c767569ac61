"""The interface between :func:`memristor_mat.training.train` and a training method.

``train()`` runs one loop for every method; at fixed points of each batch it calls the method's
hooks, in this order::

    forward = hooks.epoch_forward(epoch)        # once per epoch: the module the batches go through
    per batch:  forward + backward
                hooks.before_step(index)          # gradients exist, weights not yet updated
                optimiser step (and a per-batch lr schedule)
                hooks.after_step(index, epoch)    # before the +-k std weight clipping
                clipping (if configured)
                hooks.after_clip(index, epoch)
    hooks.end_epoch()                             # also when the epoch fails
    state = hooks.state_dict()                    # stored in the resume checkpoint

A method that needs none of these is plain training (``vanilla``). Each hook gets the epoch's
random generator (:attr:`EpochContext.generator`), seeded from (seed, epoch) alone, so a run
resumed after a kill draws the same numbers as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn


@dataclass
class EpochContext:
    """What a hook may use during one epoch."""

    epoch: int
    #: the epoch's training-noise generator (seeded from the run's seed and the epoch)
    generator: torch.Generator
    #: batches in this epoch
    batches: int
    #: whether this is one of the last ``noisy_updates.last_epochs`` epochs
    late: bool
    #: a training sample, for hooks that size their work by the model's cost
    sample: torch.Tensor


class TrainingHooks:
    """Plain training. A method subclasses this and overrides the hooks it needs.

    ``model``: the network being trained; ``parameters``: its memristor tensors by name (what a
    crossbar holds, :func:`memristor_mat.noise.noisy_parameter_names`); ``settings``: the run's
    :class:`memristor_mat.settings.TrainingSettings`.
    """

    #: whether the hooks may draw random numbers ahead on one of the job's threads (on a CPU,
    #: with more than one; the same numbers either way): ``train(prefetch_noise=...)`` sets it
    prefetch = True

    def __init__(self, model: nn.Module, parameters: Mapping[str, nn.Parameter], settings, device) -> None:
        self.model = model
        self.parameters = dict(parameters)
        self.settings = settings
        self.device = device

    def epoch_forward(self, context: EpochContext) -> nn.Module:
        return self.model

    def end_epoch(self) -> None:
        pass

    def before_step(self, index: int, context: EpochContext) -> None:
        pass

    def after_step(self, index: int, context: EpochContext) -> None:
        pass

    def after_clip(self, index: int, context: EpochContext) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass
