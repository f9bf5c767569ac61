"""Fully connected network of the MNIST task (SPEC §3 MNIST: 784-128-10, no biases)."""

from __future__ import annotations

from typing import Sequence

from torch import nn

__all__ = ["MLP"]


class MLP(nn.Module):
    """Fully connected ReLU network on flattened inputs (SPEC §3 MNIST: 784-128-10, no biases)."""

    def __init__(
        self,
        input_size: int = 784,
        hidden_sizes: Sequence[int] = (128,),
        num_classes: int = 10,
        bias: bool = False,
    ) -> None:
        super().__init__()
        if input_size < 1 or num_classes < 2 or any(h < 1 for h in hidden_sizes):
            raise ValueError(
                f"MLP sizes must be positive (input {input_size}, hidden {list(hidden_sizes)}, "
                f"classes {num_classes}; at least 2 classes)"
            )
        sizes = [input_size, *hidden_sizes]
        layers: list[nn.Module] = [nn.Flatten()]
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(fan_in, fan_out, bias=bias), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], num_classes, bias=bias))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)
