"""The settings of a training job and of a Monte-Carlo evaluation job, and the names they may use.

The workflow builds these when it parses the config (:mod:`memristor_mat.pipeline`), so this
module imports no torch: the optimiser and learning-rate schedule names are checked against
static tuples of the pinned torch's classes (:data:`TORCH_OPTIMIZERS`,
:data:`TORCH_LR_SCHEDULERS`; a test compares them with the installed torch), the
mixed-precision types and memory formats by name (:data:`MIXED_PRECISION_TYPES`,
:data:`MEMORY_FORMATS`; the torch types are in :data:`memristor_mat.training.MIXED_PRECISION`
and :data:`memristor_mat.device.TORCH_MEMORY_FORMATS`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from . import methods as registry
from .noise_registry import CONDITION_KEYS, condition_grid, device_chain

__all__ = [
    "INJECTION_ORDERS",
    "INJECTION_REFERENCES",
    "INJECTION_TIMINGS",
    "MEMORY_FORMATS",
    "MIXED_PRECISION_TYPES",
    "DeviceSettings",
    "MonteCarloSettings",
    "device_condition_columns",
    "NoisyUpdates",
    "TORCH_LR_SCHEDULERS",
    "TORCH_OPTIMIZERS",
    "TrainingSettings",
    "settings_dict",
]

#: The classes of ``torch.optim`` a config may name as ``optimizer.name`` (every subclass of
#: ``torch.optim.Optimizer`` there, itself excluded), for the pinned torch (envs/requirements.txt).
TORCH_OPTIMIZERS = (
    "ASGD", "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "LBFGS", "Muon", "NAdam", "RAdam",
    "RMSprop", "Rprop", "SGD", "SparseAdam",
)
#: The classes of ``torch.optim.lr_scheduler`` a config may name as ``lr_scheduler.name`` (every
#: subclass of ``LRScheduler`` there, itself excluded; ``_LRScheduler`` is torch's old alias).
TORCH_LR_SCHEDULERS = (
    "ChainedScheduler", "ConstantLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "CyclicLR",
    "ExponentialLR", "LambdaLR", "LinearLR", "MultiStepLR", "MultiplicativeLR", "OneCycleLR", "PolynomialLR",
    "ReduceLROnPlateau", "SequentialLR", "StepLR", "_LRScheduler",
)

#: the names of the reduced-precision compute types for ``mixed_precision``
MIXED_PRECISION_TYPES = ("bfloat16", "float16")
#: How batches of images (N x C x H x W) are laid out in memory for the network: ``contiguous``
#: (torch's default, N C H W) or ``channels_last`` (N H W C; :func:`memristor_mat.device.in_memory_format`)
MEMORY_FORMATS = ("contiguous", "channels_last")


def added_later(default: Any):
    """A settings field added after results existed: :func:`settings_dict` leaves it out while it
    has its default, so the params and hashes of the jobs that do not set it stay what they were
    (Snakemake reruns a job whose params change, and a resume checkpoint of other settings is
    refused)."""
    return field(default=default, metadata={"omitted_at_default": True})


def settings_dict(settings) -> dict[str, Any]:
    """``dataclasses.asdict(settings)`` without the :func:`added_later` fields at their defaults."""
    values = dataclasses.asdict(settings)
    for f in dataclasses.fields(settings):
        if f.metadata.get("omitted_at_default") and values[f.name] == f.default:
            del values[f.name]
    return values


def _check_memory_format(memory_format: str) -> None:
    if memory_format not in MEMORY_FORMATS:
        raise ValueError(f"memory_format must be one of {list(MEMORY_FORMATS)}, got {memory_format!r}")

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


@dataclass(frozen=True)
class TrainingSettings:
    """What one training job does (see :func:`memristor_mat.training.train`)."""

    method: str
    epochs: int
    batch_size: int
    optimizer: dict[str, Any]
    seed: int
    sigma_train: float = 0.0
    lr_scheduler: dict[str, Any] | None = None
    weight_clip_std: float | None = None
    noise_model: str = "gaussian"
    noise_options: dict[str, Any] = field(default_factory=lambda: {"reference": "2absmax"})
    include_normalization: bool = False
    noisy_updates: NoisyUpdates = field(default_factory=NoisyUpdates)
    eval_batch_size: int = 1000
    #: ``{horizontal_flip, rotation_degrees, crop_padding}`` (see memristor_mat.augmentation)
    augmentation: dict[str, Any] | None = None
    #: None (float32), "bfloat16" or "float16": autocast on CUDA, ignored elsewhere
    mixed_precision: str | None = None
    #: the method's settings other than sigma_train (e.g. ``{"levels": 4}`` for ``qat``)
    method_options: dict[str, Any] = field(default_factory=dict)
    #: the layout of image batches (:data:`MEMORY_FORMATS`), training and its clean test passes
    memory_format: str = added_later("contiguous")

    def __post_init__(self) -> None:
        entry = registry.method(self.method)
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1 (got {self.epochs}, {self.batch_size})")
        if entry.sweep == "sigma_train" and not self.sigma_train > 0:
            raise ValueError(f"method {self.method!r} needs sigma_train > 0, got {self.sigma_train}")
        if entry.sweep != "sigma_train" and self.sigma_train != 0:
            raise ValueError(f"method {self.method!r} trains without forward noise: sigma_train must be 0")
        wanted = {name for name in (entry.sweep, *entry.fixed) if name not in (None, "sigma_train")}
        if set(self.method_options) != wanted:
            raise ValueError(f"method {self.method!r} takes the options {sorted(wanted)}, "
                             f"got {sorted(self.method_options)}")
        for name, value in self.method_options.items():
            registry.SETTINGS[name].check(value)
        if self.mixed_precision is not None and self.mixed_precision not in MIXED_PRECISION_TYPES:
            raise ValueError(
                f"mixed_precision must be null or one of {sorted(MIXED_PRECISION_TYPES)}, got {self.mixed_precision!r}"
            )
        _check_memory_format(self.memory_format)

    def as_dict(self) -> dict[str, Any]:
        return settings_dict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainingSettings":
        values = dict(values)
        values["noisy_updates"] = NoisyUpdates(**values.get("noisy_updates", {}))
        return cls(**values)


@dataclass(frozen=True)
class DeviceSettings:
    """One device of the cross-evaluation: a noise model (one name, or conductance models that
    form one device), its options, and the conditions it is evaluated at."""

    name: str
    model: str | tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    #: the full conditions (defaults filled in), in sweep order
    conditions: tuple[Mapping[str, float], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.model, str):
            object.__setattr__(self, "model", tuple(self.model))
        object.__setattr__(self, "conditions", tuple(dict(c) for c in self.conditions))
        if not self.conditions:
            raise ValueError(f"device {self.name!r} has no conditions to evaluate")

    @property
    def noise_model_name(self) -> str:
        """The models in the order they act, joined by '+' (``levels+pcm``)."""
        return "+".join(entry.name for entry in device_chain(self.model))

    @classmethod
    def from_config(cls, name: str, device: Mapping[str, Any]) -> "DeviceSettings":
        """From a config's ``evaluation.devices.<name>`` (``model``, ``options``, ``conditions``:
        each key a list of values, evaluated at every combination)."""
        model = device["model"]
        return cls(name, model if isinstance(model, str) else tuple(model), dict(device.get("options", {})),
                   tuple(condition_grid(model, device.get("conditions", {}))))


def device_condition_columns(devices: Sequence[DeviceSettings]) -> list[str]:
    """The results columns of every condition key of ``devices``, in registry order."""
    used = {CONDITION_KEYS[key].column for device in devices for condition in device.conditions for key in condition}
    return list(dict.fromkeys(key.column for key in CONDITION_KEYS.values() if key.column in used))


@dataclass(frozen=True)
class MonteCarloSettings:
    """What one Monte-Carlo evaluation job does (see :mod:`memristor_mat.evaluation`)."""

    sigma_inference: Sequence[float]
    draws: int
    seed: int
    noise_model: str = "gaussian"
    noise_options: Mapping[str, Any] = field(default_factory=lambda: {"reference": "2absmax"})
    include_normalization: bool = False
    draws_per_chunk: int = 16
    batch_size: int = 1000
    #: the cross-evaluation's devices (:func:`memristor_mat.evaluation.device_accuracy`)
    devices: tuple[DeviceSettings, ...] = ()
    #: the layout of the test images' batches (:data:`MEMORY_FORMATS`)
    memory_format: str = added_later("contiguous")

    def __post_init__(self) -> None:
        _check_memory_format(self.memory_format)
        object.__setattr__(self, "devices", tuple(
            d if isinstance(d, DeviceSettings) else DeviceSettings(**d) for d in self.devices))
        if self.draws < 1 or self.draws_per_chunk < 1 or self.batch_size < 1:
            raise ValueError("draws, draws_per_chunk and batch_size must be >= 1")
        if any(not s >= 0 for s in self.sigma_inference):
            raise ValueError(f"inference noise levels must be >= 0, got {list(self.sigma_inference)}")
