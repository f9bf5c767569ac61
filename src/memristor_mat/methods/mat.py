"""``mat`` and ``mat_scratch``: fresh weight noise in every forward pass (SPEC §2).

The forward pass of every batch sees W + sigma_train * R(W) * z with new normals z; the backward
pass is straight-through, so the optimiser updates the clean weights. ``mat`` starts from the
vanilla model of the same seed, ``mat_scratch`` from random initialisation (the registry says
which); the hooks are the same.
"""

from __future__ import annotations

import torch
from torch import nn

from ..noise import NoisyModel, PrefetchedNormals, generated_normals, make_noise_model
from .hooks import EpochContext, TrainingHooks

#: cost of one standard normal in floating-point operations of a training step (measured on
#: this project's CPU: torch.randn of the MLP's 101,632 weights takes 0.35 ms, 53 % of a 0.67 ms
#: step of 19.5 MFLOP). The C++ library's draw (memristor_mat.normals) takes a third of that, which
#: decides nothing differently: the MLP stays above the threshold below, the CNNs and the spiking
#: networks far under it; the value stays torch's, which draws where the library does not.
_FLOPS_PER_NORMAL = 100


@torch.no_grad()
def noise_share(model: nn.Module, sample: torch.Tensor, batch_size: int, normals_per_step: int) -> float:
    """Estimated share of a training step spent drawing the forward noise's random numbers: the
    step's matrix-multiply and convolution FLOPs (counted by torch's FlopCounterMode on one
    sample, x 3 for the backward pass) against the normals drawn. Deterministic, unlike a
    timing: the thread layout it decides must not depend on the machine's load."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()  # no BatchNorm statistics or dropout from this probe
    counter = FlopCounterMode(display=False)
    with counter:
        model(sample.unsqueeze(0))
    model.train(was_training)
    step_flops = 3 * counter.get_total_flops() * batch_size
    noise_flops = _FLOPS_PER_NORMAL * normals_per_step
    return noise_flops / (noise_flops + step_flops)


class ForwardNoiseHooks(TrainingHooks):
    """Wraps the model in a :class:`~memristor_mat.noise.NoisyModel` for each epoch. A CPU job
    given more than one thread draws the epoch's normals on one of them, in a process of their
    own (:class:`~memristor_mat.noise.PrefetchedNormals`: the same numbers as drawing them in the
    step), where random numbers are a large share of a step."""

    def __init__(self, model, parameters, settings, device) -> None:
        super().__init__(model, parameters, settings, device)
        self.noise = make_noise_model(settings.noise_model, settings.noise_options)
        self.condition = {"sigma": settings.sigma_train}
        self._normals = None
        self._threads = None
        self._background: bool | None = None

    def _draws_in_background(self, context: EpochContext) -> bool:
        """Whether the normals are drawn ahead on one of the job's threads.

        Only with a thread to spare: a job keeps to the cores the scheduler gave it (its drawing
        would cost the neighbouring job a core). And only where the draw is worth a core: the
        MLP (a third of a step), not CNNs (0.1 %)."""
        if self._background is None:
            self._background = False
            if self.prefetch and self.device.type == "cpu" and torch.get_num_threads() > 1:
                normals_per_step = self.noise.normals_per_weight * sum(p.numel() for p in self.parameters.values())
                share = noise_share(self.model, context.sample.to(self.device), self.settings.batch_size,
                                    normals_per_step)
                self._background = share > 0.1
        return self._background

    def epoch_forward(self, context: EpochContext) -> nn.Module:
        shapes = {name: p.shape for name, p in self.parameters.items()}
        if self._draws_in_background(context):
            self._normals = PrefetchedNormals(shapes, self.noise.normals_per_weight, context.generator,
                                              context.batches)
            self._threads = torch.get_num_threads()
            torch.set_num_threads(self._threads - 1)  # the drawing takes one of the job's threads
        else:
            self._normals = generated_normals(shapes, self.noise.normals_per_weight, context.generator, self.device)
        return NoisyModel(self.model, self.noise, self.condition, normals=self._normals,
                          include_normalization=self.settings.include_normalization)

    def end_epoch(self) -> None:
        if isinstance(self._normals, PrefetchedNormals):
            self._normals.close()
        self._normals = None
        if self._threads is not None:
            torch.set_num_threads(self._threads)
            self._threads = None
