"""Monte-Carlo evaluation of trained models under inference weight noise (SPEC §4).

One Monte-Carlo sample is one full draw of noisy weights, frozen for a whole test-set pass.
Draw ``d`` uses standard normals seeded by ``(seed, d)`` alone, so every model of one
architecture, and every noise level, sees the same device draw ``d`` (common random numbers):
differences between methods are not blurred by different luck with the devices.

Several draws are evaluated at once: their noisy weights are stacked and the model runs under
``torch.vmap``, so a layer whose input is shared across draws becomes one wide matrix multiply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import pandas as pd
import torch
from torch import nn
from torch.func import functional_call

from .device import derive_seed, generator
from .noise import draw_normals, make_noise_model, noisy_parameter_names


@dataclass(frozen=True)
class MonteCarloSettings:
    sigma_inference: Sequence[float]
    draws: int
    seed: int
    noise_model: str = "gaussian"
    noise_options: Mapping[str, Any] = field(default_factory=lambda: {"reference": "2absmax"})
    include_normalization: bool = False
    draws_per_chunk: int = 16
    batch_size: int = 1000

    def __post_init__(self) -> None:
        if self.draws < 1 or self.draws_per_chunk < 1 or self.batch_size < 1:
            raise ValueError("draws, draws_per_chunk and batch_size must be >= 1")
        if any(not s >= 0 for s in self.sigma_inference):
            raise ValueError(f"inference noise levels must be >= 0, got {list(self.sigma_inference)}")


def _test_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, device) -> Iterator[tuple]:
    for start in range(0, len(y), batch_size):
        yield x[start:start + batch_size].to(device), y[start:start + batch_size].to(device)


@torch.no_grad()
def clean_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Accuracy of the clean model (eval mode); restores the model's train/eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = sum(int((model(xb).argmax(-1) == yb).sum()) for xb, yb in _test_batches(x, y, batch_size, device))
    model.train(was_training)
    return correct / len(y)


@torch.no_grad()
def correct_with_weights(
    model: nn.Module, weights: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, batch_size: int
) -> int:
    """Correct predictions of ``model`` with some parameters replaced by ``weights`` (one draw)."""
    model.eval()
    device = next(model.parameters()).device
    return sum(
        int((functional_call(model, dict(weights), (xb,), strict=False).argmax(-1) == yb).sum())
        for xb, yb in _test_batches(x, y, batch_size, device)
    )


@torch.no_grad()
def correct_with_stacked_weights(
    model: nn.Module, stacked: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """Correct predictions per draw, for weights stacked along a leading draw dimension."""
    model.eval()
    device = next(model.parameters()).device
    stacked = dict(stacked)

    def logits(weights, inputs):
        return functional_call(model, weights, (inputs,), strict=False)

    batched = torch.vmap(logits, in_dims=(0, None), randomness="error")
    draws = next(iter(stacked.values())).shape[0]
    if draws == 1:
        # a plain call: vmap's batching rules cost twice the convolutions' and batch norms'
        # time on a CPU (measured on MobileNetV2)
        single = {name: weights[0] for name, weights in stacked.items()}
        return torch.tensor([correct_with_weights(model, single, x, y, batch_size)], device=device)
    correct = torch.zeros(draws, dtype=torch.long, device=device)
    for xb, yb in _test_batches(x, y, batch_size, device):
        correct += (batched(stacked, xb).argmax(-1) == yb).sum(-1)
    return correct


def draw_generator(seed: int, draw: int, device) -> torch.Generator:
    """The generator of Monte-Carlo draw ``draw``: independent of model, method and level."""
    return generator(derive_seed(seed, "monte-carlo", draw), device)


def standard_normal_draws(
    shapes: Mapping[str, torch.Size], normals_per_weight: int, seed: int, draws: Sequence[int], device="cpu"
) -> dict[str, torch.Tensor]:
    """Standard normals of the given draws, stacked: ``{name: (len(draws), k, *shape)}``. They
    depend only on the shapes, the seed and the draw indices (common random numbers)."""
    per_draw = [draw_normals(shapes, normals_per_weight, draw_generator(seed, d, device), device=device)
                for d in draws]
    return {name: torch.stack([draw[name] for draw in per_draw]) for name in shapes}


@torch.no_grad()
def monte_carlo_accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, settings: MonteCarloSettings
) -> pd.DataFrame:
    """Accuracy for every inference level x draw: columns sigma_inference, draw, n_correct,
    n_test, accuracy (one row per draw)."""
    model.eval()
    device = next(model.parameters()).device
    names = noisy_parameter_names(model, settings.include_normalization)
    params = dict(model.named_parameters())
    clean = {n: params[n].detach() for n in names}
    shapes = {n: w.shape for n, w in clean.items()}
    noise = make_noise_model(settings.noise_model, 0.0, **settings.noise_options)
    rows = []
    noisy_levels = [s for s in settings.sigma_inference if s > 0]
    if len(noisy_levels) < len(settings.sigma_inference):
        # sigma 0 is the clean model whatever the draw: compute it once
        n_correct = correct_with_weights(model, clean, x, y, settings.batch_size)
        rows += [(0.0, d, n_correct) for d in range(settings.draws)]
    for first in range(0, settings.draws, settings.draws_per_chunk):
        chunk = range(first, min(first + settings.draws_per_chunk, settings.draws))
        normals = standard_normal_draws(shapes, noise.normals_per_weight, settings.seed, chunk, device)
        for level in noisy_levels:
            level_noise = noise.with_sigma(level)
            stacked = {n: level_noise.perturb(clean[n], normals[n]) for n in names}
            correct = correct_with_stacked_weights(model, stacked, x, y, settings.batch_size).tolist()
            rows += [(float(level), d, c) for d, c in zip(chunk, correct)]
    table = pd.DataFrame(rows, columns=["sigma_inference", "draw", "n_correct"])
    table["n_test"] = len(y)
    table["accuracy"] = table["n_correct"] / len(y)
    return table.sort_values(["sigma_inference", "draw"], ignore_index=True)
