"""The device noise models by the name used in config files (no torch imported).

The config layer checks ``noise.model`` against these names when the workflow is parsed; each
model, ``"module:Class"`` implementing :class:`memristor_mat.noise.NoiseModel`, is imported when
first looked up (by :func:`memristor_mat.noise.make_noise_model`). :mod:`memristor_mat.noise`
re-exports the registry as ``NOISE_MODELS``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from memristor_mat.lazy_registry import LazyRegistry

__all__ = ["NOISE_MODELS"]

#: Noise models by the name used in config files.
NOISE_MODELS: Mapping[str, Callable[..., Any]] = LazyRegistry({"gaussian": "memristor_mat.noise:GaussianWeightNoise"})
