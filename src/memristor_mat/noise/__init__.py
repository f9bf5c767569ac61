"""Weight noise of memristive crossbars: the noise models (Gaussian, SPEC §1; the device models
of SPEC §8) and their injection into any ``torch.nn.Module``.

:mod:`.base` defines the interface and :func:`make_noise_model`; the registry of names, options
and condition keys is :mod:`memristor_mat.noise_registry` (torch-free, read when a config is
parsed). Adding a noise model = one module here implementing :class:`NoiseModel` (or, for a
conductance effect, :class:`~.crossbar.ConductanceEffect`) + one registry entry + its tests.
"""

from ..noise_registry import NOISE_MODELS
from .base import NoiseModel, SampledNoise, apply_all, at_conditions, make_noise_model
from .gaussian import REFERENCES, GaussianWeightNoise, weight_reference
from .injection import (
    NORMALIZATION_LAYERS,
    NoisyModel,
    PrefetchedNormals,
    crossbar_layers,
    draw_normals,
    generated_normals,
    noisy_parameter_names,
)

__all__ = [
    "NOISE_MODELS",
    "NORMALIZATION_LAYERS",
    "REFERENCES",
    "GaussianWeightNoise",
    "NoiseModel",
    "NoisyModel",
    "PrefetchedNormals",
    "SampledNoise",
    "apply_all",
    "at_conditions",
    "crossbar_layers",
    "draw_normals",
    "generated_normals",
    "make_noise_model",
    "noisy_parameter_names",
    "weight_reference",
]
