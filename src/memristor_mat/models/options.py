"""The options the architectures take: their JSON schemas, the rules a schema cannot say, and
the options read off the data.

Gathered in :data:`memristor_mat.models.ARCHITECTURE_OPTIONS`,
:data:`~memristor_mat.models.ARCHITECTURE_CHECKS` and
:data:`~memristor_mat.models.ARCHITECTURE_DATA`: the config layer validates a task's ``model``
mapping (less ``arch``) against the first two when a config is loaded; a job fills in the
third's options from its prepared data. A test keeps each schema in step
with its constructor's parameters (less :data:`~memristor_mat.models.DATA_OPTIONS`). This module
imports no torch, so that the workflow can check a config when it is parsed; the networks import
the allowed values they share with it from here.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple, Sequence

__all__ = [
    "DataOptions",
    "DYNAMICS",
    "MLP_OPTIONS",
    "MOBILENET_V2_CIFAR_OPTIONS",
    "NEURONS",
    "RECURRENCES",
    "RECURRENT_SNN_OPTIONS",
    "RESNET_CIFAR_OPTIONS",
    "check_recurrent_snn_options",
    "check_resnet_cifar_options",
    "image_options_from_data",
    "mlp_options_from_data",
    "recurrent_snn_options_from_data",
]


class DataOptions(NamedTuple):
    """An architecture's options read off the data (beside ``num_classes``, which every one takes)."""

    #: the options ``fill`` sets: a config does not give them
    names: tuple[str, ...]
    #: ``fill(arch, options, input_shape)`` completes the options in place (the shape of one
    #: sample); raises ValueError for data the network cannot take
    fill: Callable[[str, dict, Sequence[int]], None]

# --------------------------------------------------------------------------- mlp

#: MLP's options as a config may give them (JSON Schema); input_size and num_classes come from the data.
MLP_OPTIONS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "hidden_sizes": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1}},
        "bias": {"type": "boolean"},
    },
}


def mlp_options_from_data(arch: str, options: dict, input_shape: Sequence[int]) -> None:
    """``input_size``: the number of values of a sample (flattened); ``hidden_sizes`` as a list."""
    size = 1
    for dim in input_shape:
        size *= int(dim)
    options.setdefault("input_size", size)
    options["hidden_sizes"] = list(options.get("hidden_sizes", [128]))


# --------------------------------------------------------------------------- cnn

# Option schemas of the two networks of memristor_mat.models.cnn, checked when a config is
# loaded; num_classes comes from the data. Both take 3-channel images (architecture_options
# insists), hence three means and three stds.
_CHANNEL_MEAN = {"type": "array", "minItems": 3, "maxItems": 3, "items": {"type": "number"}}
_CHANNEL_STD = {"type": "array", "minItems": 3, "maxItems": 3, "items": {"type": "number", "exclusiveMinimum": 0}}
_POSITIVE_INT = {"type": "integer", "minimum": 1}
MOBILENET_V2_CIFAR_OPTIONS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "width_mult": {"type": "number", "exclusiveMinimum": 0},
        "inverted_residual_setting": {
            "type": "array", "minItems": 1,
            "description": "blocks [expansion t, channels c, repeats n, first stride s]",
            "items": {"type": "array", "minItems": 4, "maxItems": 4,
                      # torchvision's InvertedResidual takes strides 1 and 2 only
                      "prefixItems": [_POSITIVE_INT, _POSITIVE_INT, _POSITIVE_INT, {"enum": [1, 2]}]},
        },
        "stem_stride": {"enum": [1, 2]},
        "dropout": {"type": "number", "minimum": 0, "maximum": 1},
        "input_mean": _CHANNEL_MEAN,
        "input_std": _CHANNEL_STD,
        "batchnorm_running_stats": {"type": "boolean"},
    },
}
RESNET_CIFAR_OPTIONS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "depth": {"type": "integer", "minimum": 8, "description": "6n + 2 (checked by check_resnet_cifar_options)"},
        "widths": {"type": "array", "minItems": 3, "maxItems": 3, "items": _POSITIVE_INT},
        "input_mean": _CHANNEL_MEAN,
        "input_std": _CHANNEL_STD,
    },
}


def image_options_from_data(arch: str, options: dict, input_shape: Sequence[int]) -> None:
    """Nothing read off the data but the check that its samples are 3-channel images (C x H x W);
    the lists of the options kept lists, so that they compare equal to a checkpoint's."""
    if len(input_shape) != 3 or int(input_shape[0]) != 3:
        raise ValueError(f"{arch} takes 3-channel images (C x H x W), but the data's samples are {tuple(input_shape)}")
    # YAML gives lists; keep them lists so the options compare equal to a checkpoint's
    for key in ("inverted_residual_setting", "widths", "input_mean", "input_std"):
        if key in options:
            options[key] = [list(v) if isinstance(v, (list, tuple)) else v for v in options[key]]


def _resnet_depth_problem(depth: int) -> str | None:
    if depth < 8 or (depth - 2) % 6:
        return f"a CIFAR ResNet has depth 6n + 2 (20, 32, 44, 56, ...), got {depth}"
    return None


def check_resnet_cifar_options(options: Mapping[str, Any]) -> tuple[str, str] | None:
    """What JSON Schema cannot say about the options (depth 6n + 2), as ``(option, why)``, or None."""
    problem = _resnet_depth_problem(options["depth"]) if "depth" in options else None
    return None if problem is None else ("depth", problem)

# --------------------------------------------------------------------------- snn

DYNAMICS = ("normalised", "original")
NEURONS = ("spiking", "tanh")
RECURRENCES = ("spikes", "currents")  # of the normalised dynamics; the original recurs on h
_NORMALISED_ONLY = ("recurrence", "input_gain", "recurrent_gain")

_POSITIVE = {"type": "number", "exclusiveMinimum": 0}
_NON_NEGATIVE = {"type": "number", "minimum": 0}
#: RecurrentSNN's options as a config may give them, checked when the config is loaded.
#: n_inputs and num_classes come from the data. null stands for the constructor's None.
RECURRENT_SNN_OPTIONS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "hidden_size": {"type": "integer", "minimum": 1},
        "dynamics": {"enum": list(DYNAMICS)},
        "neuron": {"enum": list(NEURONS)},
        "recurrence": {"enum": [*RECURRENCES, None], "description": "null: the dynamics' own (spikes for normalised)"},
        "dt": _POSITIVE,
        "tau_syn": _POSITIVE,
        "tau_mem": _POSITIVE,
        "time_constant_variability": {"type": "boolean"},
        # torch.Generator.manual_seed takes at most 64 bits
        "variability_seed": {"type": ["integer", "null"], "minimum": 0, "maximum": 2**64 - 1,
                             "description": "null: a fresh draw from torch's global RNG per model"},
        "surrogate_scale": _POSITIVE,
        "threshold": _POSITIVE,
        "input_gain": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "recurrent_gain": {"type": ["number", "null"], "minimum": 0},
        "spike_count_weight": _NON_NEGATIVE,
        "spike_rate_weight": _NON_NEGATIVE,
    },
}


def recurrent_snn_options_from_data(arch: str, options: dict, input_shape: Sequence[int]) -> None:
    """``n_inputs``: the channels of a sample of (time steps, channels)."""
    options.setdefault("n_inputs", int(input_shape[-1]))


def check_recurrent_snn_options(options: Mapping[str, Any]) -> tuple[str, str] | None:
    """The rule across options that the schema leaves out, for the config layer: ``(option,
    why)`` of the first option that contradicts ``dynamics``, or None. The constructor enforces
    the same rule; this reports it when the config is loaded, naming the key."""
    if options.get("dynamics", "normalised") != "original":
        return None
    for name in _NORMALISED_ONLY:
        if options.get(name) is not None:
            return name, (
                f"{options[name]!r} given with dynamics 'original', which recurs on the summed input current "
                f"h and initialises uniformly (SPEC §3.1); {', '.join(_NORMALISED_ONLY)} are options of "
                "dynamics 'normalised': leave it unset (or null)"
            )
    return None
