"""The settings of a training job and of a Monte-Carlo evaluation job, and the names they may use.

The workflow builds these when it parses the config (:mod:`memristor_mat.pipeline`), so this
module imports no torch: the optimiser and learning-rate schedule names and keyword arguments are
checked against static tables of the pinned torch's classes (:data:`TORCH_OPTIMIZERS`,
:data:`TORCH_LR_SCHEDULERS`; a test compares them with the installed torch), the
mixed-precision types and memory formats by name (:data:`MIXED_PRECISION_TYPES`,
:data:`MEMORY_FORMATS`; the torch types are in :data:`memristor_mat.training.MIXED_PRECISION`
and :data:`memristor_mat.device.TORCH_MEMORY_FORMATS`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple, Sequence

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
    "LR_SCHEDULERS_NOT_CONFIGURABLE",
    "LR_SCHEDULERS_ON_LOSS",
    "TORCH_LR_SCHEDULERS",
    "TORCH_OPTIMIZERS",
    "TorchKeywords",
    "TrainingSettings",
    "settings_dict",
]


class TorchKeywords(NamedTuple):
    """The keyword arguments of a torch class's constructor, beside its first argument (the
    parameters of an optimiser, the optimiser of a schedule): those without a default, the rest."""

    required: tuple[str, ...]
    optional: tuple[str, ...]


#: The classes of ``torch.optim`` a config may name as ``optimizer.name`` (every subclass of
#: ``torch.optim.Optimizer`` there, itself excluded) with their keyword arguments, for the pinned
#: torch (envs/requirements.txt): the config names a misspelt or missing one at ``snakemake -n``
#: without importing torch; a test compares them with the installed torch's signatures.
TORCH_OPTIMIZERS: dict[str, TorchKeywords] = {
    "ASGD": TorchKeywords((), (
        "lr", "lambd", "alpha", "t0", "weight_decay", "foreach", "maximize", "differentiable", "capturable")),
    "Adadelta": TorchKeywords((), (
        "lr", "rho", "eps", "weight_decay", "foreach", "capturable", "maximize", "differentiable")),
    "Adafactor": TorchKeywords((), ("lr", "beta2_decay", "eps", "d", "weight_decay", "foreach", "maximize")),
    "Adagrad": TorchKeywords((), (
        "lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps", "foreach", "maximize",
        "differentiable", "fused")),
    "Adam": TorchKeywords((), (
        "lr", "betas", "eps", "weight_decay", "amsgrad", "foreach", "maximize", "capturable",
        "differentiable", "fused", "decoupled_weight_decay")),
    "AdamW": TorchKeywords((), (
        "lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach", "capturable",
        "differentiable", "fused")),
    "Adamax": TorchKeywords((), (
        "lr", "betas", "eps", "weight_decay", "foreach", "maximize", "differentiable", "capturable")),
    "LBFGS": TorchKeywords((), (
        "lr", "max_iter", "max_eval", "tolerance_grad", "tolerance_change", "history_size", "line_search_fn",
        "maximize")),
    "Muon": TorchKeywords((), (
        "lr", "weight_decay", "momentum", "nesterov", "ns_coefficients", "eps", "ns_steps", "adjust_lr_fn")),
    "NAdam": TorchKeywords((), (
        "lr", "betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay", "foreach",
        "maximize", "capturable", "differentiable")),
    "RAdam": TorchKeywords((), (
        "lr", "betas", "eps", "weight_decay", "decoupled_weight_decay", "foreach", "maximize", "capturable",
        "differentiable")),
    "RMSprop": TorchKeywords((), (
        "lr", "alpha", "eps", "weight_decay", "momentum", "centered", "capturable", "foreach", "maximize",
        "differentiable")),
    "Rprop": TorchKeywords((), (
        "lr", "etas", "step_sizes", "capturable", "foreach", "maximize", "differentiable")),
    "SGD": TorchKeywords((), (
        "lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize", "foreach", "differentiable",
        "fused")),
    "SparseAdam": TorchKeywords((), ("lr", "betas", "eps", "maximize")),
}
#: The classes of ``torch.optim.lr_scheduler`` (every subclass of ``LRScheduler`` there, itself
#: excluded; ``_LRScheduler`` is torch"s old alias) with their keyword arguments, as above.
TORCH_LR_SCHEDULERS: dict[str, TorchKeywords] = {
    "ChainedScheduler": TorchKeywords(("schedulers",), ()),
    "ConstantLR": TorchKeywords((), ("factor", "total_iters", "last_epoch")),
    "CosineAnnealingLR": TorchKeywords(("T_max",), ("eta_min", "last_epoch")),
    "CosineAnnealingWarmRestarts": TorchKeywords(("T_0",), ("T_mult", "eta_min", "last_epoch")),
    "CyclicLR": TorchKeywords(("base_lr", "max_lr"), (
        "step_size_up", "step_size_down", "mode", "gamma", "scale_fn", "scale_mode", "cycle_momentum",
        "base_momentum", "max_momentum", "last_epoch")),
    "ExponentialLR": TorchKeywords(("gamma",), ("last_epoch",)),
    "LambdaLR": TorchKeywords(("lr_lambda",), ("last_epoch",)),
    "LinearLR": TorchKeywords((), ("start_factor", "end_factor", "total_iters", "last_epoch")),
    "MultiStepLR": TorchKeywords(("milestones",), ("gamma", "last_epoch")),
    "MultiplicativeLR": TorchKeywords(("lr_lambda",), ("last_epoch",)),
    "OneCycleLR": TorchKeywords(("max_lr",), (
        "total_steps", "epochs", "steps_per_epoch", "pct_start", "anneal_strategy", "cycle_momentum",
        "base_momentum", "max_momentum", "div_factor", "final_div_factor", "three_phase", "last_epoch")),
    "PolynomialLR": TorchKeywords((), ("total_iters", "power", "last_epoch")),
    "ReduceLROnPlateau": TorchKeywords((), (
        "mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps")),
    "SequentialLR": TorchKeywords(("schedulers", "milestones"), ("last_epoch",)),
    "StepLR": TorchKeywords(("step_size",), ("gamma", "last_epoch")),
    "_LRScheduler": TorchKeywords((), ("last_epoch",)),
}
#: The schedules of :data:`TORCH_LR_SCHEDULERS` that a config cannot build, and why.
LR_SCHEDULERS_NOT_CONFIGURABLE = {
    "ChainedScheduler": "it chains schedule objects, which a config cannot hold",
    "SequentialLR": "it chains schedule objects, which a config cannot hold",
    "LambdaLR": "its factor is a Python function, which a config cannot hold",
    "MultiplicativeLR": "its factor is a Python function, which a config cannot hold",
    "_LRScheduler": "it is torch's abstract base class",
}
#: The schedules that step on a measured loss: training steps them once per epoch with the epoch's
#: mean training loss (the pipeline holds out no validation set; the test set must not steer training).
LR_SCHEDULERS_ON_LOSS = ("ReduceLROnPlateau",)

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
    #: a new order of the training samples every epoch; False: the split's order every epoch (the
    #: original's ECG loader, SPEC §3)
    shuffle: bool = added_later(True)

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
        if not isinstance(self.shuffle, bool):
            raise ValueError(f"shuffle must be true or false, got {self.shuffle!r}")

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
