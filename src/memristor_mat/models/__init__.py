"""Network architectures, built by name so that a checkpoint can rebuild its own model.

This package's ``__init__`` is the registry: the architectures by name (:data:`ARCHITECTURES`),
the JSON schema of each one's options (:data:`ARCHITECTURE_OPTIONS`, with
:data:`ARCHITECTURE_CHECKS` for rules a schema cannot say), the options each reads off the data
(:data:`ARCHITECTURE_DATA`), :func:`build_model` and :func:`architecture_options`. It imports
no torch: the workflow reads the names and schemas when it parses the config, and a constructor
is imported when it is first looked up. The networks live in the modules :mod:`~memristor_mat.models.mlp` (the MNIST MLP),
:mod:`~memristor_mat.models.cnn` (MobileNetV2 "cifar_specs", ResNet-20) and
:mod:`~memristor_mat.models.snn` (the recurrent spiking network of the ECG task); their option
schemas in :mod:`~memristor_mat.models.options`.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from memristor_mat.lazy_registry import LazyRegistry
from memristor_mat.models.options import (
    MLP_OPTIONS,
    MOBILENET_V2_CIFAR_OPTIONS,
    RECURRENT_SNN_OPTIONS,
    RESNET_CIFAR_OPTIONS,
    DataOptions,
    check_recurrent_snn_options,
    check_resnet_cifar_options,
    image_options_from_data,
    mlp_options_from_data,
    recurrent_snn_options_from_data,
)

if TYPE_CHECKING:
    from torch import nn


#: Architectures by the name used in config files and checkpoints: each a constructor,
#: ``"module:function"``, imported (with torch) when first looked up.
ARCHITECTURES: Mapping[str, Callable[..., Any]] = LazyRegistry({
    "mlp": "memristor_mat.models.mlp:MLP",
    "recurrent_snn": "memristor_mat.models.snn:RecurrentSNN",
    "mobilenet_v2_cifar": "memristor_mat.models.cnn:mobilenet_v2_cifar",
    "resnet_cifar": "memristor_mat.models.cnn:resnet_cifar",
})


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


#: The options each architecture reads off the data, for those that read any besides
#: ``num_classes`` (which every one takes): what they are and the function that fills them in.
ARCHITECTURE_DATA: Mapping[str, DataOptions] = MappingProxyType({
    "mlp": DataOptions(("input_size",), mlp_options_from_data),
    "recurrent_snn": DataOptions(("n_inputs",), recurrent_snn_options_from_data),
    "mobilenet_v2_cifar": DataOptions((), image_options_from_data),
    "resnet_cifar": DataOptions((), image_options_from_data),
})

#: Constructor options that architecture_options fills in from the data, not from the config.
DATA_OPTIONS = tuple(sorted({"num_classes", *(name for entry in ARCHITECTURE_DATA.values() for name in entry.names)}))


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
    if arch in ARCHITECTURE_DATA:
        ARCHITECTURE_DATA[arch].fill(arch, options, input_shape)
    options.setdefault("num_classes", num_classes)
    return options
