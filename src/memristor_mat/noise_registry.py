"""The noise models by the name used in config files, with what a config may say about them
(no torch imported).

A noise model turns clean weights into the weights a crossbar applies. Two kinds exist:

* ``weights``: acts on the weights directly (``gaussian``, SPEC §1: the study's noise and MAT's
  training noise);
* ``conductance``: acts on the device conductances of the differential-pair mapping of SPEC §8
  (``pcm``, ``rram``, ``levels``, ``stuck_at``). Several compose into one device; they are
  applied in their physical order (:attr:`NoiseEntry.stage`: rounding to levels when
  programming, then the device's programming noise, drift and read noise, then stuck devices
  overriding all of it), whatever order a config lists them in.

Each entry names its implementation (``"module:Class"``, imported on first use by
:func:`memristor_mat.noise.make_noise_model`), the JSON schema of its options and its
*condition keys*: the quantities an evaluation sweeps (Gaussian sigma, time after programming,
stuck-at fractions ...). A condition is a small dict of them; the results table has one column
per condition key. The config layer checks options and conditions here, when the workflow is
parsed, so that a typo fails before any job runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

__all__ = [
    "COMPENSATION_PROBES",
    "COMPENSATION_SCOPES",
    "ConditionKey",
    "NoiseEntry",
    "NOISE_MODELS",
    "CONDITION_KEYS",
    "condition_column",
    "device_chain",
    "check_condition",
    "condition_grid",
]


@dataclass(frozen=True)
class ConditionKey:
    """One quantity a noise model is evaluated at."""

    name: str
    #: the results table's column for it
    column: str
    description: str
    minimum: float = 0.0
    maximum: float | None = None
    #: the only values the model is defined at (RRAM's fitted times), or None
    allowed: tuple[float, ...] | None = None
    integer: bool = False
    #: the value when a condition leaves the key out (None: the key is required)
    default: float | None = None

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not a valid value of this key, or None."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"{value!r} is not a finite number"
        if self.integer and float(value) != int(value):
            return f"{value!r} is not an integer"
        if value < self.minimum:
            return f"{value} is below the minimum {self.minimum:g}"
        if self.maximum is not None and value > self.maximum:
            return f"{value} is above the maximum {self.maximum:g}"
        if self.allowed is not None and not any(math.isclose(value, a, rel_tol=1e-12) for a in self.allowed):
            return f"{value:g} is not one of the values the model is defined at: {', '.join(f'{a:g}' for a in self.allowed)}"
        return None


@dataclass(frozen=True)
class NoiseEntry:
    name: str
    #: ``"module:Class"``; the class takes the options as keyword arguments
    implementation: str
    kind: str  # "weights" or "conductance"
    description: str
    conditions: tuple[ConditionKey, ...] = ()
    #: JSON schema of the options (``additionalProperties: false``)
    options: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "additionalProperties": False,
                                                                 "properties": {}})
    #: order of application inside one device (conductance models only): 0 rounds to levels when
    #: programming, 1 is the device physics (at most one per device), 2 overrides all of it (stuck
    #: devices); any number between places an effect accordingly (1.5: after the physics, before
    #: stuck devices)
    stage: float = 0
    #: a rule across condition keys: the full condition -> why it is invalid, or None
    condition_rule: Callable[[Mapping[str, float]], str | None] | None = None


#: the inputs PCM's drift compensation can probe a layer with, and what one factor rescales
#: (memristor_mat.noise.crossbar)
COMPENSATION_PROBES = ("ones", "one_hot")
COMPENSATION_SCOPES = ("layer", "column")

_SECONDS = "seconds after programming"
_T_INFERENCE = ConditionKey("t_inference", "t_inference", f"time of inference, {_SECONDS}")

#: Noise models by the name used in config files.
NOISE_MODELS: Mapping[str, NoiseEntry] = {
    entry.name: entry
    for entry in (
        NoiseEntry(
            "gaussian", "memristor_mat.noise.gaussian:GaussianWeightNoise", "weights",
            "W + N(0, (sigma R(W))^2) per weight (SPEC §1)",
            conditions=(ConditionKey("sigma", "sigma_inference", "standard deviation relative to R(W)"),),
            options={"type": "object", "additionalProperties": False,
                     "properties": {"reference": {
                         "enum": ["2absmax", "absmax", "range"],
                         "description": "R(W), the scale of sd = sigma R(W): 2absmax = 2 max|W| (SPEC §1), "
                                        "absmax = max|W| (the original's CIFAR axis), range = max - min"}}},
        ),
        NoiseEntry(
            "levels", "memristor_mat.noise.levels:ConductanceLevels", "conductance",
            "each conductance rounded to one of n equally spaced levels in [0, g_max] (SPEC §8)",
            conditions=(ConditionKey("n_levels", "n_levels", "conductance levels per device", minimum=2,
                                     integer=True),),
            stage=0,
        ),
        NoiseEntry(
            "pcm", "memristor_mat.noise.pcm:PCMNoise", "conductance",
            "phase-change memory: programming noise, drift, 1/f read noise (Nandakumar et al. 2019; SPEC §8)",
            conditions=(_T_INFERENCE,),
            options={"type": "object", "additionalProperties": False, "properties": {
                "drift_compensation": {"type": "boolean", "description": "global drift compensation per layer"},
                "compensation_probe": {"enum": list(COMPENSATION_PROBES),
                                       "description": "the compensation's probe: one all-ones input (default) "
                                                      "or every one-hot input"},
                "compensation_scope": {"enum": list(COMPENSATION_SCOPES),
                                       "description": "one factor per layer (default) or per output column "
                                                      "(with compensation_probe one_hot)"},
                "g_max": {"type": "number", "exclusiveMinimum": 0, "description": "uS (default 25)"},
            },
                # a column's factor needs every input line read (memristor_mat.noise.crossbar)
                "if": {"properties": {"compensation_scope": {"const": "column"}}, "required": ["compensation_scope"]},
                "then": {"properties": {"compensation_probe": {"const": "one_hot"}}, "required": ["compensation_probe"]}},
            stage=1,
        ),
        NoiseEntry(
            "rram", "memristor_mat.noise.rram:RRAMNoise", "conductance",
            "resistive RAM, the Wan et al. 2022 conductance-dependent fit (SPEC §8)",
            conditions=(ConditionKey("t_inference", "t_inference", f"time of inference, {_SECONDS}",
                                     allowed=(1.0, 86400.0, 172800.0)),),
            options={"type": "object", "additionalProperties": False, "properties": {
                "g_max": {"type": "number", "exclusiveMinimum": 0, "description": "uS (default 40)"},
            }},
            stage=1,
        ),
        NoiseEntry(
            "stuck_at", "memristor_mat.noise.stuck_at:StuckAtFaults", "conductance",
            "each device stuck at G = 0 with probability p_stuck_off, at g_max with p_stuck_on (SPEC §8)",
            conditions=(
                ConditionKey("p_stuck_off", "p_stuck_off", "fraction of devices stuck at G = 0 (SPEC's p0)",
                             maximum=1.0, default=0.0),
                ConditionKey("p_stuck_on", "p_stuck_on", "fraction of devices stuck at g_max (SPEC's p1)",
                             maximum=1.0, default=0.0),
            ),
            stage=2,
            condition_rule=lambda c: (None if c["p_stuck_off"] + c["p_stuck_on"] <= 1 else
                                      f"p_stuck_off + p_stuck_on = {c['p_stuck_off'] + c['p_stuck_on']:g} exceeds 1"),
        ),
    )
}

#: Every condition key of every model, by name (a key shared by models means the same thing).
CONDITION_KEYS: Mapping[str, ConditionKey] = {key.name: key for entry in NOISE_MODELS.values()
                                              for key in entry.conditions}


def condition_column(key: str) -> str:
    """The results column of condition key ``key``."""
    return CONDITION_KEYS[key].column


def device_chain(model: str | Sequence[str]) -> tuple[NoiseEntry, ...]:
    """The entries of a device given as one name or a list of names, in the order they act.
    Raises ValueError for unknown names, repeated names, or a weights-kind model in a chain."""
    names = [model] if isinstance(model, str) else list(model)
    if not names:
        raise ValueError("a device needs at least one noise model")
    unknown = [n for n in names if n not in NOISE_MODELS]
    if unknown:
        raise ValueError(f"unknown noise model {unknown[0]!r}; expected one of {sorted(NOISE_MODELS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"noise model listed twice in {names}")
    entries = [NOISE_MODELS[n] for n in names]
    if len(entries) > 1 and any(e.kind != "conductance" for e in entries):
        weights = [e.name for e in entries if e.kind != "conductance"]
        raise ValueError(f"{weights[0]!r} acts on weights, not conductances: it cannot be combined with "
                         f"other noise models")
    physical = [e for e in entries if e.stage == 1]
    if len(physical) > 1:
        raise ValueError(f"one device has one device physics; got {[e.name for e in physical]}")
    return tuple(sorted(entries, key=lambda e: e.stage))


def _keys(entries: Iterable[NoiseEntry]) -> dict[str, ConditionKey]:
    keys: dict[str, ConditionKey] = {}
    for entry in entries:
        for key in entry.conditions:
            keys.setdefault(key.name, key)
            if key.allowed is not None:  # the stricter definition wins (RRAM's fitted times)
                keys[key.name] = key
    return keys


def check_condition(model: str | Sequence[str], condition: Mapping[str, Any]) -> dict[str, float]:
    """The full condition of a device (defaults filled in, values as floats); ValueError names
    the first unknown, missing or invalid key."""
    keys = _keys(device_chain(model))
    unknown = sorted(set(condition) - set(keys))
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not a condition of {model!r}; its conditions: {', '.join(keys) or 'none'}")
    full = {}
    for name, key in keys.items():
        if name not in condition:
            if key.default is None:
                raise ValueError(f"condition {name!r} ({key.description}) is required for {model!r}")
            full[name] = float(key.default)
            continue
        problem = key.problem(condition[name])
        if problem is not None:
            raise ValueError(f"condition {name!r}: {problem}")
        full[name] = float(condition[name])
    for entry in device_chain(model):
        problem = entry.condition_rule(full) if entry.condition_rule is not None else None
        if problem is not None:
            raise ValueError(f"condition of {entry.name!r}: {problem}")
    return full


def condition_grid(model: str | Sequence[str],
                   conditions: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]]) -> list[dict[str, float]]:
    """The conditions of a device, each checked and completed by :func:`check_condition`:
    given as a mapping key -> values, every combination (keys in the model's order); given as a
    list of mappings, those points (e.g. equal stuck-off and stuck-on fractions)."""
    import itertools

    if not isinstance(conditions, Mapping):
        return [check_condition(model, point) for point in conditions]
    keys = [name for name in _keys(device_chain(model)) if name in conditions]
    unknown = sorted(set(conditions) - set(keys))
    if unknown:
        check_condition(model, {unknown[0]: 0})  # raises, naming the key
    values = [list(conditions[name]) for name in keys]
    return [check_condition(model, dict(zip(keys, combo))) for combo in itertools.product(*values)]
