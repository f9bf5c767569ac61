"""Weight noise of memristive crossbars, injected into any ``torch.nn.Module``.

A noise model turns a clean weight tensor ``W`` and standard-normal draws ``z`` of the same shape
into the weights a crossbar actually applies. Drawing ``z`` separately from the perturbation is
what gives the rest of the library its properties:

* training (MAT): the perturbation is ``W + scale * z`` with ``scale`` detached, so the gradient
  with respect to the clean weights is the identity (straight-through);
* Monte-Carlo evaluation: draw ``(index)`` means the same ``z`` for every model of an architecture
  (common random numbers), whatever the level, so methods are compared on the same device draws;
* speed: ``z`` does not depend on the weights, so it can be generated ahead of time on another core.

Nothing here is global: each :class:`NoisyModel` holds its own noise model, switch and draws.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping, Protocol

import torch
from torch import nn
from torch.func import functional_call

from .noise_registry import NOISE_MODELS

NORMALIZATION_LAYERS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


# aminmax reads the tensor once without a temporary |W| (a third faster than abs().amax())
def _absmax(w: torch.Tensor) -> torch.Tensor:
    low, high = torch.aminmax(w)
    return torch.maximum(-low, high)


def _two_absmax(w: torch.Tensor) -> torch.Tensor:
    # The conductance window of a positive/negative device pair spans -max|W| .. +max|W|.
    return 2 * _absmax(w)


def _range(w: torch.Tensor) -> torch.Tensor:
    low, high = torch.aminmax(w)
    return high - low


def _abs_of_max(w: torch.Tensor) -> torch.Tensor:
    # |max(W)|: the original's ECG noisy updates (SPEC §2.1), not max|W|
    return w.max().abs()


#: How the noise standard deviation scales with a tensor: s = sigma * R(W) (SPEC §1).
REFERENCES: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "2absmax": _two_absmax,
    "absmax": _absmax,
    "range": _range,
    "max": _abs_of_max,
}


def weight_reference(weight: torch.Tensor, reference: str) -> torch.Tensor:
    """R(W) for one tensor, as a constant (no gradient flows through the range)."""
    try:
        function = REFERENCES[reference]
    except KeyError:
        raise ValueError(
            f"unknown noise reference {reference!r}; expected one of {sorted(REFERENCES)}"
        ) from None
    with torch.no_grad():
        return function(weight.detach())


class NoiseModel(Protocol):
    """What a device noise model provides. Add one by implementing this and registering it in
    :data:`NOISE_MODELS` (:mod:`memristor_mat.noise_registry`); training, Monte-Carlo evaluation and the pipeline then accept its name."""

    sigma: float
    #: standard normals needed per weight element (a device model with several independent
    #: effects, e.g. programming and read noise, needs several)
    normals_per_weight: int

    def perturb(self, weight: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
        """Noisy weights. ``normals`` has shape ``(*draws, normals_per_weight, *weight.shape)``;
        the result has shape ``(*draws, *weight.shape)``. Must be differentiable with gradient
        identity with respect to ``weight`` (straight-through)."""

    def with_sigma(self, sigma: float) -> "NoiseModel":
        """The same model at another noise level."""


@dataclass(frozen=True)
class GaussianWeightNoise:
    """W + e, e ~ N(0, (sigma * R(W))^2) i.i.d. per element (SPEC §1)."""

    sigma: float
    reference: str = "2absmax"
    normals_per_weight: int = dataclasses.field(default=1, init=False)

    def __post_init__(self) -> None:
        if not (self.sigma >= 0 and self.sigma == self.sigma):
            raise ValueError(f"noise sigma must be a number >= 0, got {self.sigma!r}")
        if self.reference not in REFERENCES:
            raise ValueError(
                f"unknown noise reference {self.reference!r}; expected one of {sorted(REFERENCES)}"
            )

    def scale(self, weight: torch.Tensor) -> torch.Tensor:
        return self.sigma * weight_reference(weight, self.reference)

    def perturb(self, weight: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
        standard_normal = normals.select(normals.dim() - weight.dim() - 1, 0)
        return torch.addcmul(weight, standard_normal, self.scale(weight))

    def with_sigma(self, sigma: float) -> "GaussianWeightNoise":
        return dataclasses.replace(self, sigma=sigma)


def make_noise_model(name: str, sigma: float, **options) -> NoiseModel:
    try:
        factory = NOISE_MODELS[name]
    except KeyError:
        raise ValueError(f"unknown noise model {name!r}; expected one of {sorted(NOISE_MODELS)}") from None
    return factory(sigma=sigma, **options)


def noisy_parameter_names(model: nn.Module, include_normalization: bool = False) -> tuple[str, ...]:
    """Names of the parameters a crossbar would hold: every parameter that exists (weights,
    biases, raw recurrent matrices), except normalisation layers' affine parameters unless asked.

    A model can narrow this by defining ``memristor_parameter_names()`` (e.g. to leave out
    learned time constants that are not conductances).
    """
    if hasattr(model, "memristor_parameter_names"):
        names = tuple(model.memristor_parameter_names())
        known = dict(model.named_parameters())
        missing = [n for n in names if n not in known]
        if missing:
            raise ValueError(f"memristor_parameter_names() names unknown parameters {missing}")
        return names
    names = []
    for module_name, module in model.named_modules():
        if isinstance(module, NORMALIZATION_LAYERS) and not include_normalization:
            continue
        for param_name, _ in module.named_parameters(recurse=False):
            names.append(f"{module_name}.{param_name}" if module_name else param_name)
    return tuple(names)


def draw_normals(
    shapes: Mapping[str, torch.Size],
    normals_per_weight: int,
    generator: torch.Generator,
    *,
    draws: int | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """Standard normals for each named tensor, in the order of ``shapes`` (a fixed order is what
    makes draws reproducible and common across models of one architecture)."""
    lead = () if draws is None else (draws,)
    return {
        name: torch.randn(
            (*lead, normals_per_weight, *shape), generator=generator, device=device
        )
        for name, shape in shapes.items()
    }


class PrefetchedNormals:
    """Iterator over ``count`` draws of standard normals, generated by a background thread.

    Random-number generation costs about as much as a small model's training step; it does not
    depend on the weights, so on CPU it runs on another core while the step computes. Draws come
    out in the same order as a plain loop over :func:`draw_normals` with the same generator.
    """

    def __init__(
        self,
        shapes: Mapping[str, torch.Size],
        normals_per_weight: int,
        generator: torch.Generator,
        count: int,
        depth: int = 2,
    ) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._remaining = count
        self._thread = threading.Thread(
            target=self._produce,
            args=(dict(shapes), normals_per_weight, generator, count),
            daemon=True,
        )
        self._thread.start()

    def _produce(self, shapes, normals_per_weight, generator, count) -> None:
        try:
            for _ in range(count):
                item = draw_normals(shapes, normals_per_weight, generator)
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except BaseException as error:  # surface the failure in the consuming thread
            self._queue.put(error)

    def __iter__(self) -> "PrefetchedNormals":
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        if self._remaining == 0:
            raise StopIteration
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        self._remaining -= 1
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> "PrefetchedNormals":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def generated_normals(
    shapes: Mapping[str, torch.Size],
    normals_per_weight: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> Iterator[dict[str, torch.Tensor]]:
    """Endless synchronous draws (used where prefetching brings nothing, e.g. on a GPU)."""
    while True:
        yield draw_normals(shapes, normals_per_weight, generator, device=device)


class NoisyModel(nn.Module):
    """``model`` whose forward pass sees freshly perturbed weights (one draw per tensor per call).

    The backward pass is straight-through: gradients reach the clean parameters of ``model``,
    which the optimiser updates. With ``enabled = False`` or ``sigma == 0`` the forward pass is the
    plain model's, bit for bit. The wrapped model's ``state_dict`` stays the clean one.
    """

    def __init__(
        self,
        model: nn.Module,
        noise: NoiseModel,
        *,
        generator: torch.Generator | None = None,
        include_normalization: bool = False,
        normals: Iterable[dict[str, torch.Tensor]] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.noise = noise
        self.enabled = True
        self.parameter_names = noisy_parameter_names(model, include_normalization)
        if normals is None:
            generator = generator if generator is not None else torch.Generator()
            device = next(model.parameters()).device
            if generator.device != device:
                raise ValueError(
                    f"the noise generator is on {generator.device} but the model is on {device}"
                )
            normals = generated_normals(self.shapes(), noise.normals_per_weight, generator, device)
        self.normals = iter(normals)

    def shapes(self) -> dict[str, torch.Size]:
        params = dict(self.model.named_parameters())
        return {name: params[name].shape for name in self.parameter_names}

    def forward(self, *args, **kwargs):
        if not self.enabled or self.noise.sigma == 0:
            return self.model(*args, **kwargs)
        params = dict(self.model.named_parameters())
        draw = next(self.normals)
        noisy = {
            name: self.noise.perturb(params[name], draw[name].to(params[name].device, non_blocking=True))
            for name in self.parameter_names
        }
        return functional_call(self.model, noisy, args, kwargs, strict=False)
