"""Pipeline configuration: schema validation (with defaults) and the checks a schema cannot express.

The JSON schema ``config.schema.json`` (package data) is the single definition of what a config
may hold; Snakemake validates against the same file when the workflow is parsed.
"""

from __future__ import annotations

import copy
import json
import math
import os
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import yaml

from . import methods as registry
from .datasets import DATASET_OPTIONS, DATASETS
from .datasets.raw import raw_data
from .models import ARCHITECTURE_CHECKS, ARCHITECTURE_OPTIONS, ARCHITECTURES, DATA_OPTIONS
from .noise_registry import NOISE_MODELS, condition_grid, device_chain
from .settings import LR_SCHEDULERS_NOT_CONFIGURABLE, LR_SCHEDULERS_ON_LOSS, TORCH_LR_SCHEDULERS, TORCH_OPTIMIZERS


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names the key."""


SCHEMA_RESOURCE = "config.schema.json"


def schema_path() -> str:
    return str(resources.files("memristor_mat") / SCHEMA_RESOURCE)


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads((resources.files("memristor_mat") / SCHEMA_RESOURCE).read_text())


# jsonschema is imported where a validator is first built, not here: a training or evaluation job
# imports this module for format_sigma only, and jsonschema costs 0.2 s of its start-up.


def _strict_integers(validator_class):
    """Unlike plain JSON Schema, do not take 2.0 for an integer (epochs: 2.0 would pass)."""
    checker = validator_class.TYPE_CHECKER.redefine(
        "integer", lambda checker, value: isinstance(value, int) and not isinstance(value, bool)
    )
    import jsonschema

    return jsonschema.validators.extend(validator_class, type_checker=checker)


def _with_defaults(validator_class):
    """A validator that also fills in schema defaults (the jsonschema FAQ recipe, as Snakemake does)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    import jsonschema

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _finite_numbers(validator_class):
    """Take no NaN or infinity (YAML's .nan, .inf) for a number: ranges cannot reject NaN."""
    checker = validator_class.TYPE_CHECKER.redefine(
        "number",
        lambda checker, value: (isinstance(value, (int, float)) and not isinstance(value, bool)
                                and (isinstance(value, int) or math.isfinite(value))),
    )
    import jsonschema

    return jsonschema.validators.extend(validator_class, type_checker=checker)


@lru_cache(maxsize=1)
def config_validator():
    """The config's validator class: strict integers, schema defaults filled in."""
    import jsonschema

    return _with_defaults(_strict_integers(jsonschema.Draft202012Validator))


@lru_cache(maxsize=1)
def options_validator():
    """The components' option schemas' validator class (DATASET_OPTIONS, ARCHITECTURE_OPTIONS):
    they hold no defaults on purpose (the builders own theirs), and a number there is a real,
    finite number."""
    import jsonschema

    return _finite_numbers(_strict_integers(jsonschema.Draft202012Validator))


def _best_error(validator, instance):
    import jsonschema

    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    return jsonschema.exceptions.best_match(errors) if errors else None


def key_path(parts) -> str:
    return ".".join(str(p) for p in parts) or "<top level>"


def format_sigma(value: float) -> str:
    """Canonical text of a noise level for paths and tables: '0.05', '0.2', '0' (no float noise)."""
    return np.format_float_positional(float(value), trim="-", precision=8)


def _non_finite_number(value: Any, path: tuple = ()) -> tuple[tuple, float] | None:
    """The key path and value of the first NaN or infinity (YAML's .nan, .inf) in ``value``, or
    None. No number of a config means either, and options passed to torch untyped (an
    optimiser's lr) would otherwise train to NaN weights without a word."""
    if isinstance(value, float) and not math.isfinite(value):
        return path, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _non_finite_number(item, (*path, key))
        if found is not None:
            return found
    return None


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Validate (and fill defaults in) ``config`` in place; raise ConfigError naming the key."""
    found = _non_finite_number(config)
    if found is not None:
        raise ConfigError(f"config key {key_path(found[0])}: {found[1]!r} is not a finite number")
    error = _best_error(config_validator()(schema()), config)
    if error is not None:
        raise ConfigError(f"config key {key_path(error.absolute_path)}: {error.message}")
    check_semantics(config)
    return config


def _check_name(value: str, known, key: str) -> None:
    if value not in known:
        raise ConfigError(f"config key {key}: unknown name {value!r}; expected one of {sorted(known)}")


def _check_torch_class(spec: dict[str, Any], module: str, classes: dict, key: str, ours=(),
                       not_configurable: dict[str, str] | None = None) -> None:
    """``spec["name"]`` must be one of ``classes``, the classes of torch module ``module`` that fit,
    and the other keys of ``spec`` (but ``ours``, read by this project) its keyword arguments, each
    required one given (:data:`memristor_mat.settings.TORCH_OPTIMIZERS`): checked without importing
    torch, so a misspelt keyword fails at ``snakemake -n`` with its key, not when the job starts."""
    name = spec["name"]
    if name not in classes:
        raise ConfigError(f"config key {key}.name: {name!r} is not a {module} class")
    why = (not_configurable or {}).get(name)
    if why is not None:
        raise ConfigError(f"config key {key}.name: {module}.{name} cannot be set in a config: {why}")
    keywords = classes[name]
    accepted = (*keywords.required, *keywords.optional)
    unknown = sorted(set(spec) - {"name", *ours} - set(accepted))
    if unknown:
        raise ConfigError(f"config key {key}.{unknown[0]}: {module}.{name} takes no argument {unknown[0]!r}; "
                          f"its arguments: {', '.join(accepted)}")
    missing = [keyword for keyword in keywords.required if keyword not in spec]
    if missing:
        raise ConfigError(f"config key {key}.{missing[0]}: required by {module}.{name}")


def _check_levels(levels, key: str) -> None:
    """Noise levels name files (sigma~0.05): each must have one exact, distinct text."""
    texts = [format_sigma(level) for level in levels]
    for level, text in zip(levels, texts):
        if float(text) != float(level):
            raise ConfigError(f"config key {key}: {level} has more than 8 decimals")
    if len(set(texts)) != len(texts):
        raise ConfigError(f"config key {key}: levels {list(levels)} are not distinct")


def _check_options(options, option_schema: dict, prefix: str, owner: str, from_data=()) -> None:
    """Validate a component's ``options`` against its JSON schema, naming the key at ``prefix``."""
    error = _best_error(options_validator()(option_schema), options)
    if error is None:
        return
    path = [prefix, *error.absolute_path]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        # name the unknown key itself and list the accepted ones (typos are the usual cause)
        accepted = error.schema.get("properties", {})
        unknown = sorted((name for name in error.instance if name not in accepted), key=str)
        note = " (it is set from the data)" if unknown[0] in from_data else ""
        raise ConfigError(
            f"config key {key_path([*path, unknown[0]])}: {owner} has no option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(name) for name in unknown)}{note}; its options: {', '.join(sorted(accepted)) or 'none'}"
        )
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        raise ConfigError(f"config key {key_path([*path, missing[0]])}: required for {owner}")
    message = error.message
    if error.validator == "type" and isinstance(error.instance, float) and not math.isfinite(error.instance):
        message = f"{error.instance} is not a finite number"
    raise ConfigError(f"config key {key_path(path)}: {message}")


def _check_component_options(task: dict[str, Any], prefix: str) -> None:
    """Each dataset's and architecture's own options, by the schemas of their registries."""
    name = task["dataset"]["name"]
    _check_options(task["dataset"].get("options", {}), DATASET_OPTIONS[name], f"{prefix}.dataset.options",
                   f"dataset {name!r}")
    arch = task["model"]["arch"]
    options = {key: value for key, value in task["model"].items() if key != "arch"}
    _check_options(options, ARCHITECTURE_OPTIONS[arch], f"{prefix}.model", f"architecture {arch!r}",
                   from_data=DATA_OPTIONS)
    check = ARCHITECTURE_CHECKS.get(arch)
    problem = None if check is None else check(options)
    if problem is not None:
        option, why = problem
        raise ConfigError(f"config key {prefix}.model.{option}: {why}")


def _check_training_noise(noise: dict[str, Any], key: str, inherited: tuple[str, ...] = ()) -> None:
    """MAT's noise acts on weights and is swept by one sigma (sigma_train, sigma_inference).
    ``inherited``: the keys of ``noise`` a task takes from the top-level noise (a task's jobs get
    the two merged, key by key: :func:`memristor_mat.pipeline.task_noise`)."""
    _check_name(noise["model"], NOISE_MODELS, f"{key}.model")
    entry = NOISE_MODELS[noise["model"]]
    if entry.kind != "weights" or [c.name for c in entry.conditions] != ["sigma"]:
        raise ConfigError(f"config key {key}.model: {noise['model']!r} is a device model; the training and "
                          f"sigma_inference noise is a weight noise with one sigma (list devices under "
                          f"evaluation.devices)")
    if "options" in noise:
        try:
            _check_options(noise["options"], entry.options, f"{key}.options", f"noise model {noise['model']!r}")
        except ConfigError as error:
            if "options" not in inherited:
                raise
            raise ConfigError(f"{error} (the options are the top-level noise.options, since {key} gives none: "
                              f"give {key}.options)") from None


def _check_devices(devices: dict[str, Any], key: str) -> None:
    """Each device of the cross-evaluation against the noise registry: its models, their options
    (one flat mapping, each key owned by a model of the device) and its conditions."""
    for name, device in devices.items():
        prefix = f"{key}.{name}"
        try:
            entries = device_chain(device["model"])
        except ValueError as error:
            raise ConfigError(f"config key {prefix}.model: {error}") from None
        options = device.get("options", {})
        for entry in entries:
            own = {k: v for k, v in options.items() if k in entry.options.get("properties", {})}
            _check_options(own, entry.options, f"{prefix}.options", f"noise model {entry.name!r}")
        known = {k for entry in entries for k in entry.options.get("properties", {})}
        unknown = sorted(set(options) - known, key=str)
        if unknown:
            raise ConfigError(f"config key {prefix}.options.{unknown[0]}: device {name!r} ({'+'.join(e.name for e in entries)}) "
                              f"has no such option; its options: {', '.join(sorted(known)) or 'none'}")
        conditions = device["conditions"]
        if isinstance(conditions, dict):
            for where, values in conditions.items():
                try:
                    condition_grid(device["model"], [{where: value} for value in values])
                except ValueError as error:
                    if "required" not in str(error):  # a missing other key is reported below
                        raise ConfigError(f"config key {prefix}.conditions.{where}: {error}") from None
        else:
            for where, point in enumerate(conditions):
                try:
                    condition_grid(device["model"], [point])
                except ValueError as error:
                    raise ConfigError(f"config key {prefix}.conditions.{where}: {error}") from None
        try:
            condition_grid(device["model"], device["conditions"])
        except ValueError as error:
            raise ConfigError(f"config key {prefix}.conditions: {error}") from None


def check_semantics(config: dict[str, Any]) -> None:
    """Checks across keys and against the library's registries."""
    _check_training_noise(config["noise"], "noise")
    _check_levels(config["evaluation"]["sigma_inference"], "evaluation.sigma_inference")
    _check_devices(config["evaluation"].get("devices", {}), "evaluation.devices")
    _check_comparisons(config)
    for task_name, task in config["tasks"].items():
        prefix = f"tasks.{task_name}"
        _check_name(task["dataset"]["name"], DATASETS, f"{prefix}.dataset.name")
        try:  # the raw files it reads (fetched by the workflow), or none
            raw_data(task["dataset"])
        except ValueError as error:
            raise ConfigError(f"config key {prefix}.dataset.name: {error}") from None
        if task.get("noise"):  # checked as the task's jobs get it: merged into the top-level noise
            _check_training_noise({**config["noise"], **task["noise"]}, f"{prefix}.noise",
                                  inherited=tuple(k for k in config["noise"] if k not in task["noise"]))
        if "sigma_inference" in task.get("evaluation", {}):
            _check_levels(task["evaluation"]["sigma_inference"], f"{prefix}.evaluation.sigma_inference")
        _check_devices(task.get("evaluation", {}).get("devices", {}), f"{prefix}.evaluation.devices")
        _check_name(task["model"]["arch"], ARCHITECTURES, f"{prefix}.model.arch")
        _check_component_options(task, prefix)
        methods = task["methods"]
        _check_methods(methods, task["seeds"], prefix)
        trainings = [(f"{prefix}.training", task["training"])] + [
            (f"{prefix}.methods.{m}.training", s["training"]) for m, s in methods.items() if "training" in s
        ]
        for key, training in trainings:
            if "optimizer" in training:
                _check_torch_class(training["optimizer"], "torch.optim", TORCH_OPTIMIZERS, f"{key}.optimizer")
            schedule = training.get("lr_scheduler")
            if schedule:
                _check_torch_class(schedule, "torch.optim.lr_scheduler", TORCH_LR_SCHEDULERS,
                                   f"{key}.lr_scheduler", ours=("interval",),
                                   not_configurable=LR_SCHEDULERS_NOT_CONFIGURABLE)
                if schedule["name"] in LR_SCHEDULERS_ON_LOSS and schedule.get("interval") == "batch":
                    raise ConfigError(f"config key {key}.lr_scheduler.interval: {schedule['name']} steps on "
                                      "the epoch's training loss, once per epoch (interval: epoch)")
        figures = task["figures"]
        if figures["traces"] and task["model"]["arch"] != "recurrent_snn":
            raise ConfigError(f"config key {prefix}.figures.traces: only recurrent networks record traces")
        baseline = figures["baseline_method"]
        if baseline not in methods:
            raise ConfigError(
                f"config key {prefix}.figures.baseline_method: {baseline!r} is not among the methods "
                f"{sorted(methods)}; every figure compares with it: train it, or name a trained method "
                "that sweeps no setting")
        if registry.method(baseline).sweep is not None:
            raise ConfigError(
                f"config key {prefix}.figures.baseline_method: the baseline is one model per seed; "
                f"{baseline!r} sweeps {registry.method(baseline).sweep}")
        headline = figures["headline_method"]
        if headline not in methods:
            raise ConfigError(f"config key {prefix}.figures.headline_method: {headline!r} is not among the methods")
        if registry.method(headline).sweep not in (None, "sigma_train"):
            raise ConfigError(
                f"config key {prefix}.figures.headline_method: the headline is a curve against inference "
                f"noise of vanilla or a method that sweeps sigma_train; {headline!r} sweeps "
                f"{registry.method(headline).sweep}"
            )
        if registry.method(headline).sweep == "sigma_train" and figures["headline_sigma_train"] not in methods[headline]["sigma_train"]:
            raise ConfigError(
                f"config key {prefix}.figures.headline_sigma_train: {figures['headline_sigma_train']} "
                f"is not among {headline}'s sigma_train {methods[headline]['sigma_train']}"
            )


def _check_methods(methods: dict[str, Any], task_seeds: list[int], prefix: str) -> None:
    """Each method against its registry entry: its name, its own keys, what it starts from."""
    for name, spec in methods.items():
        key = f"{prefix}.methods.{name}"
        _check_name(name, registry.METHODS, f"{prefix}.methods")
        entry = registry.method(name)
        _check_options(spec, entry.config_schema(), key, f"method {name!r}")
        if entry.sweep is not None and not registry.SETTINGS[entry.sweep].integer:
            _check_levels(spec[entry.sweep], f"{key}.{entry.sweep}")
        if entry.starts_from is not None and entry.starts_from not in methods:
            raise ConfigError(
                f"config key {prefix}.methods: {name!r} fine-tunes the trained {entry.starts_from!r} models, "
                f"so {entry.starts_from!r} must be listed too"
            )
        if entry.starts_from is not None:
            own = spec.get("seeds", task_seeds)
            start = methods[entry.starts_from].get("seeds", task_seeds)
            if not set(own) <= set(start):
                raise ConfigError(
                    f"config key {key}.seeds: {name!r} fine-tunes the {entry.starts_from!r} model of the same "
                    f"seed, but {entry.starts_from!r} has no seed(s) {sorted(set(own) - set(start))}"
                )


def _check_comparisons(config: dict[str, Any]) -> None:
    for name, comparison in config["comparisons"].items():
        key = f"comparisons.{name}"
        for task in comparison["tasks"]:
            if task not in config["tasks"]:
                raise ConfigError(f"config key {key}.tasks: {task!r} is not a task; tasks: {sorted(config['tasks'])}")
        titles = comparison.get("panel_titles")
        if titles is not None and len(titles) != len(comparison["tasks"]):
            raise ConfigError(f"config key {key}.panel_titles: one title per task ({len(comparison['tasks'])})")
        for curve in comparison["curves"]:
            if not any(curve["method"] in config["tasks"][t]["methods"] for t in comparison["tasks"]):
                raise ConfigError(f"config key {key}.curves: method {curve['method']!r} is in none of its tasks")


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    try:
        # bytes: yaml reads UTF-8/16 whatever the locale, and names a byte it cannot decode
        with open(path, "rb") as handle:
            config = yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as error:  # a directory, no permission
        raise ConfigError(f"config file {path} cannot be read: {error.strerror or error}") from None
    except yaml.reader.ReaderError as error:
        if error.encoding == "unicode":  # decoded, but a control character YAML forbids
            raise ConfigError(f"config file {path} holds the control character {chr(error.character)!r} at "
                              f"character {error.position}, which YAML does not allow") from None
        raise ConfigError(f"config file {path} is not {error.encoding.upper()} text: byte {error.character:#04x} "
                          f"at byte {error.position} ({error.reason}); save it as UTF-8") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return validate_config(config)
