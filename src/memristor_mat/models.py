"""Network architectures, built by name so that a checkpoint can rebuild its own model."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

from torch import nn

from .cnn import (
    MOBILENET_V2_CIFAR_OPTIONS,
    RESNET_CIFAR_OPTIONS,
    check_resnet_cifar_options,
    mobilenet_v2_cifar,
    resnet_cifar,
)
from .snn import RECURRENT_SNN_OPTIONS, RecurrentSNN, check_recurrent_snn_options


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


#: MLP's options as a config may give them (JSON Schema); input_size and num_classes come from the data.
MLP_OPTIONS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "hidden_sizes": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1}},
        "bias": {"type": "boolean"},
    },
}


#: Architectures by the name used in config files and checkpoints.
ARCHITECTURES: Mapping[str, Callable[..., nn.Module]] = {
    "mlp": MLP,
    "recurrent_snn": RecurrentSNN,
    "mobilenet_v2_cifar": mobilenet_v2_cifar,
    "resnet_cifar": resnet_cifar,
}

#: Constructor options that architecture_options fills in from the data, not from the config.
DATA_OPTIONS = ("input_size", "n_inputs", "num_classes")

#: The JSON schema of each architecture's options in a task's ``model`` mapping (less ``arch``),
#: by the same names as ARCHITECTURES; the config layer validates against it when a config is
#: loaded. A test keeps it in step with the constructors' parameters (less DATA_OPTIONS).
ARCHITECTURE_OPTIONS: Mapping[str, dict] = MappingProxyType({
    "mlp": MLP_OPTIONS,
    "recurrent_snn": RECURRENT_SNN_OPTIONS,
    "mobilenet_v2_cifar": MOBILENET_V2_CIFAR_OPTIONS,
    "resnet_cifar": RESNET_CIFAR_OPTIONS,
})

#: Rules across options that JSON Schema cannot express, for the architectures that have any:
#: each takes options that passed the schema and returns ``(option, why)`` or None.
ARCHITECTURE_CHECKS: Mapping[str, Callable[[Mapping[str, Any]], tuple[str, str] | None]] = MappingProxyType({
    "recurrent_snn": check_recurrent_snn_options,
    "resnet_cifar": check_resnet_cifar_options,
})


def build_model(arch: str, **options) -> nn.Module:
    try:
        factory = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {sorted(ARCHITECTURES)}") from None
    try:
        return factory(**options)
    except TypeError as error:
        raise ValueError(f"bad options {options} for architecture {arch!r}: {error}") from None


def architecture_options(arch: str, model_config: Mapping, input_shape: Sequence[int], num_classes: int) -> dict:
    """Constructor options for ``arch`` from the task's model config and the data's shape."""
    options = {k: v for k, v in model_config.items() if k != "arch"}
    if arch == "mlp":
        size = 1
        for dim in input_shape:
            size *= int(dim)
        options.setdefault("input_size", size)
        options["hidden_sizes"] = list(options.get("hidden_sizes", [128]))
    elif arch == "recurrent_snn":
        options.setdefault("n_inputs", int(input_shape[-1]))  # input_shape is (time steps, channels)
    elif arch in ("mobilenet_v2_cifar", "resnet_cifar"):
        if len(input_shape) != 3 or int(input_shape[0]) != 3:
            raise ValueError(f"{arch} takes 3-channel images (C x H x W), but the data's samples are {tuple(input_shape)}")
        # YAML gives lists; keep them lists so the options compare equal to a checkpoint's
        for key in ("inverted_residual_setting", "widths", "input_mean", "input_std"):
            if key in options:
                options[key] = [list(v) if isinstance(v, (list, tuple)) else v for v in options[key]]
    options.setdefault("num_classes", num_classes)
    return options
