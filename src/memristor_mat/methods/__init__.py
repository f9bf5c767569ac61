"""The training methods of the study (SPEC §2), one registry entry each.

This module is the single place that says which methods exist. It imports no torch, so the
workflow can read it when it parses the config. Everything else reads this registry:

* the config checks (the method's name and its own keys, at parse time),
* the workflow's ``method`` wildcard and the paths of the models (its setting names a folder),
* training (``train()`` calls the method's hooks; it never tests a method's name),
* the results tables (one column per setting of :data:`SETTINGS`),
* plotting (label, colour, marker) and the figures notebooks (the method's own figures).

Adding a method means one :class:`Method` entry in :data:`METHODS`, a hook class (see
:mod:`memristor_mat.methods.hooks` for the interface and :mod:`memristor_mat.methods.qat` for a
worked example) and a test.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

__all__ = [
    "Setting", "SETTINGS", "SETTING_COLUMNS", "Method", "METHODS", "method", "method_names",
    "run_settings", "unapplied_settings", "setting_value", "curve_setting",
]


@dataclass(frozen=True)
class Setting:
    """A number that tells models of one method apart, e.g. MAT's training noise level.

    ``name`` is the config key and the results table's column; ``path_key`` names the model's
    folder (``sigma~0.2``, ``levels~4``); ``integer``: whole numbers only; 0 means "not applied"
    (a model trained without forward noise has sigma_train 0, a full-precision one levels 0).
    """

    name: str
    path_key: str
    integer: bool
    #: JSON schema of one value in a config
    value_schema: Mapping[str, Any]

    def check(self, value) -> None:
        """Raise ValueError unless ``value`` is a valid value of this setting (as the config
        schema would say, for runs built without a config)."""
        schema = self.value_schema
        whole = isinstance(value, int) and not isinstance(value, bool)
        if self.integer and not whole:
            raise ValueError(f"{self.name} must be a whole number, got {value!r}")
        if not (whole or isinstance(value, float)) or value != value:
            raise ValueError(f"{self.name} must be a number, got {value!r}")
        low, high = schema.get("minimum", schema.get("exclusiveMinimum")), schema.get("maximum")
        if (low is not None and (value < low or ("exclusiveMinimum" in schema and value == low))) or (
                high is not None and value > high):
            raise ValueError(f"{self.name} = {value!r} is outside its range {dict(schema)}")

    def label(self, value: float) -> str:
        """The value as a legend shows it."""
        if self.name == "sigma_train":
            return f"σ_train = {100 * float(value):g}%"
        if self.name == "levels":
            return f"{int(value)} levels"
        return f"{self.name} = {float(value):g}"


#: Every setting a method can have, in the order of the results table's columns.
SETTINGS: Mapping[str, Setting] = MappingProxyType({
    "sigma_train": Setting("sigma_train", "sigma", False,
                           {"type": "number", "exclusiveMinimum": 0, "maximum": 10}),
    "levels": Setting("levels", "levels", True, {"type": "integer", "minimum": 2, "maximum": 65536}),
    "noise_sd": Setting("noise_sd", "noise_sd", False, {"type": "number", "minimum": 0, "maximum": 100}),
})
SETTING_COLUMNS: tuple[str, ...] = tuple(SETTINGS)


@dataclass(frozen=True)
class Method:
    """One training method.

    ``sweep``: the setting whose values, listed in the config, make one model each (None: one
    model per seed). ``fixed``: settings given once per method in the config (``qat_noise``'s
    number of levels). ``starts_from``: the method whose model of the same seed this one
    fine-tunes (None: random initialisation). ``hooks``: ``"module:Class"`` of its training
    hooks, imported when a model trains (None: plain training). ``figures``: figure stems the
    method adds to its task, each ``stem -> "module:function"`` (see notebooks/method_figure.ipynb).
    """

    name: str
    label: str
    description: str
    color: str
    marker: str
    hooks: str | None = None
    sweep: str | None = None
    fixed: tuple[str, ...] = ()
    starts_from: str | None = None
    figures: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in (self.sweep, *self.fixed):
            if name is not None and name not in SETTINGS:
                raise ValueError(f"method {self.name!r}: unknown setting {name!r}; known: {list(SETTINGS)}")

    def config_schema(self) -> dict[str, Any]:
        """JSON schema of the method's entry under ``tasks.<task>.methods`` (beside ``training``,
        which the config schema defines for every method)."""
        # training and seeds: the same for every method, defined by the config schema
        properties: dict[str, Any] = {"training": {"type": "object"}, "seeds": {"type": "array"}}
        required = []
        if self.sweep is not None:
            properties[self.sweep] = {"type": "array", "minItems": 1, "uniqueItems": True,
                                      "items": dict(SETTINGS[self.sweep].value_schema)}
            required.append(self.sweep)
        for name in self.fixed:
            properties[name] = dict(SETTINGS[name].value_schema)
            required.append(name)
        return {"type": "object", "additionalProperties": False, "properties": properties, "required": required}

    def hook_class(self):
        """The hooks class (imports torch); None for plain training."""
        if self.hooks is None:
            return None
        module, name = self.hooks.split(":")
        return getattr(importlib.import_module(module), name)


_PALETTE = {  # seaborn's "colorblind" palette, by index
    0: "#0173b2", 1: "#de8f05", 2: "#029e73", 3: "#d55e00", 4: "#cc78bc", 5: "#ca9161",
    6: "#fbafe4", 7: "#949494", 8: "#ece133", 9: "#56b4e9",
}

METHODS: Mapping[str, Method] = MappingProxyType({m.name: m for m in (
    Method("vanilla", "Vanilla", "plain training, no noise (the original's 'normal')",
           color=_PALETTE[7], marker="o"),
    Method("noisy_updates", "Noisy updates",
           "permanent noise added to the weights every n-th batch of the last epochs (the original's 'noisy grad')",
           color=_PALETTE[1], marker="D", hooks="memristor_mat.methods.noisy_updates:NoisyUpdateHooks"),
    Method("mat", "MAT (fine-tuned)",
           "fine-tunes the vanilla model of the same seed with fresh weight noise in every forward pass",
           color=_PALETTE[0], marker="s", hooks="memristor_mat.methods.mat:ForwardNoiseHooks",
           sweep="sigma_train", starts_from="vanilla"),
    Method("mat_scratch", "MAT (from scratch)",
           "the same forward noise from random initialisation (the original's MAT for MNIST and ECG)",
           color=_PALETTE[2], marker="^", hooks="memristor_mat.methods.mat:ForwardNoiseHooks",
           sweep="sigma_train"),
    Method("qat", "QAT",
           "quantisation-aware training: uniform levels between the 1st and 99th percentiles, "
           "straight-through updates of full-precision copies (SPEC §2.1)",
           color=_PALETTE[4], marker="v", hooks="memristor_mat.methods.qat:QuantizationHooks",
           sweep="levels", figures={"accuracy_vs_levels": "memristor_mat.reporting.quantization:plot_accuracy_vs_levels"}),
    Method("qat_noise", "QAT + noise",
           "QAT plus absolute Gaussian noise N(0, noise_sd^2) added after quantising (SPEC §2.1)",
           color=_PALETTE[3], marker="P", hooks="memristor_mat.methods.qat:QuantizationHooks",
           sweep="noise_sd", fixed=("levels",),
           figures={"accuracy_vs_qat_noise": "memristor_mat.reporting.quantization:plot_accuracy_vs_qat_noise"}),
)})


def method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown training method {name!r}; expected one of {list(METHODS)}") from None


def method_names() -> tuple[str, ...]:
    return tuple(METHODS)


def run_settings(method_name: str, value: float, spec: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Every setting of one model, 0 where it does not apply: the swept one at ``value`` and
    the fixed ones from the method's config entry ``spec``."""
    entry = method(method_name)
    values = unapplied_settings()
    for name in entry.fixed:
        values[name] = (spec or {})[name]
    if entry.sweep is not None:
        values[entry.sweep] = value
    return {name: int(v) if SETTINGS[name].integer else float(v) for name, v in values.items()}


def unapplied_settings() -> dict[str, float]:
    """Every setting at 0, "not applied"."""
    return {name: 0 if s.integer else 0.0 for name, s in SETTINGS.items()}


def setting_value(method_name: str, row: Mapping[str, Any]) -> float:
    """The value of the method's swept setting in a table row (0 if it sweeps none)."""
    sweep = method(method_name).sweep
    return 0.0 if sweep is None else float(row[sweep])


def curve_setting(method_name: str) -> Setting | None:
    """The setting that tells one method's curves apart (None: one curve)."""
    sweep = METHODS[method_name].sweep if method_name in METHODS else "sigma_train"
    return None if sweep is None else SETTINGS[sweep]
