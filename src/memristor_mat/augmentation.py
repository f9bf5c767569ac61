"""Training-set augmentation (SPEC §3 CIFAR: horizontal flip + 10 degree rotation), reproducible.

The transforms are torchvision's (``transforms.v2``), one random draw per image, in
``torch.utils.data.DataLoader`` workers. What is ours is the seeding: each batch is one item of
the loader and seeds the random state from ``(seed, epoch, batch number)`` before transforming
its images, so an epoch's augmented batches are the same whether zero, one or eight workers make
them, and a run resumed at epoch ``k`` sees exactly the batches of an uninterrupted run.

Ours too is running a batch in one pass (:func:`augment_images`): called on one 32 x 32 image,
torchvision's rotation spends about 0.2 ms building the image's sampling grid and calling
``grid_sample`` for 1,024 pixels, several times what the demo's small network spends on the
image. The batch draws every image's parameters as the per-image calls draw them, then flips and
samples all its images at once: the same random numbers drawn, the same pixels, bit for bit
(``tests/test_augmentation.py``).
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from .device import derive_seed

if TYPE_CHECKING:
    from torchvision.transforms import v2

#: accepted keys of a task's ``training.augmentation`` (the config schema mirrors them)
AUGMENTATION_KEYS = ("horizontal_flip", "rotation_degrees", "crop_padding")


def make_augmentation(spec: Mapping[str, Any] | None, image_size: Sequence[int]) -> v2.Transform | None:
    """torchvision transforms for ``{horizontal_flip, rotation_degrees, crop_padding}``; None if
    ``spec`` is None or asks for nothing. Rotation fills the corners with black (0), the crop
    pads with zeros and crops back to ``image_size`` (height, width)."""
    # imported here: every pipeline job imports this module, few augment, torchvision costs 1 s
    from torchvision.transforms import v2

    if spec is None:
        return None
    unknown = sorted(set(spec) - set(AUGMENTATION_KEYS))
    if unknown:
        raise ValueError(f"unknown augmentation option(s) {unknown}; expected {list(AUGMENTATION_KEYS)}")
    transforms: list[v2.Transform] = []
    if spec.get("horizontal_flip", False):
        transforms.append(v2.RandomHorizontalFlip())
    degrees = spec.get("rotation_degrees") or 0
    if degrees < 0:
        raise ValueError(f"rotation_degrees must be >= 0, got {degrees}")
    if degrees:
        transforms.append(v2.RandomRotation(degrees))
    padding = spec.get("crop_padding")
    if padding is not None and padding < 0:
        raise ValueError(f"crop_padding must be >= 0, got {padding}")
    if padding:
        transforms.append(v2.RandomCrop(tuple(int(d) for d in image_size), padding=int(padding)))
    return v2.Compose(transforms) if transforms else None


def augment_images(transform, images: torch.Tensor) -> torch.Tensor:
    """``torch.stack([transform(image) for image in images])`` for a batch ``(N, C, H, W)``: the
    same pixels, and the same numbers drawn from torch's global generator, in the same order.

    Where ``transform`` is what :func:`make_augmentation` builds (a ``v2.Compose`` of
    ``RandomHorizontalFlip``, ``RandomRotation`` without ``expand`` or ``center``, ``RandomCrop``
    back to the image size), each image's parameters are drawn first, image by image and transform
    by transform as the per-image calls draw them (a flip's ``torch.rand(1) >= p``, then each
    transform's ``make_params``), and the transforms then run on the whole batch: the flip as one
    ``flip``, the rotation as one ``grid_sample`` over every image's grid (:func:`_rotate_images`),
    the crop image by image through the transform's own ``transform``. Anything else is left to
    torchvision image by image.
    """
    if len(images) == 0:
        return images.clone()
    stages = _batch_stages(transform, images.shape)
    if stages is None:
        return torch.stack([transform(image) for image in images])
    drawn = [[draw(image) for draw, _ in stages] for image in images]
    for position, (_, apply) in enumerate(stages):
        images = apply(images, [params[position] for params in drawn])
    return images


def _batch_stages(transform, shape: torch.Size) -> list | None:
    """``(draw, apply)`` per transform of ``transform``, or None where one is not batched here."""
    from torchvision.transforms import v2

    if _torchvision_grid_helpers() is None:
        return None
    transforms = transform.transforms if type(transform) is v2.Compose else [transform]
    stages = []
    for step in transforms:
        # exact types: a subclass may draw or transform otherwise
        if type(step) is v2.RandomHorizontalFlip:
            stages.append((functools.partial(_draw_flip, step), _flip_images))
        elif type(step) is v2.RandomRotation and not step.expand and step.center is None:
            stages.append((functools.partial(_draw_params, step), functools.partial(_rotate_images, step)))
        elif type(step) is v2.RandomCrop and tuple(step.size) == tuple(shape[-2:]):
            stages.append((functools.partial(_draw_params, step), functools.partial(_transform_each, step)))
        else:
            return None
    return stages


@functools.cache
def _torchvision_grid_helpers() -> tuple | None:
    """The helpers of torchvision's ``rotate_image`` that :func:`_rotate_images` calls (private
    to torchvision: a release that moves them leaves every batch to torchvision, image by image)."""
    try:
        from torchvision.transforms.v2._utils import _get_fill
        from torchvision.transforms.v2.functional._geometry import (_apply_grid_transform, _check_interpolation,
                                                                    _get_inverse_affine_matrix)
    except ImportError as error:
        logging.getLogger(__name__).warning("augmenting image by image: this torchvision lacks %s", error.name or error)
        return None
    return _get_fill, _apply_grid_transform, _check_interpolation, _get_inverse_affine_matrix


def _draw_flip(flip, image: torch.Tensor) -> bool:
    # RandomHorizontalFlip.forward's own test (a float32 comparison), so the same draw decides
    return not bool(torch.rand(1) >= flip.p)


def _draw_params(step, image: torch.Tensor) -> dict:
    # the shape is all these transforms' make_params read, and every stage keeps it
    return step.make_params([image])


def _flip_images(images: torch.Tensor, flipped: list[bool]) -> torch.Tensor:
    """torchvision's horizontal flip (``image.flip(-1)``) of the images drawn to flip."""
    if not any(flipped):
        return images
    chosen = torch.tensor(flipped)
    images = images.clone()
    images[chosen] = images[chosen].flip(-1)
    return images


def _transform_each(step, images: torch.Tensor, params: list[dict]) -> torch.Tensor:
    return torch.stack([step.transform(image, drawn) for image, drawn in zip(images, params)])


@functools.lru_cache(maxsize=8)
def _base_grid(height: int, width: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The pixel centres ``(x, y, 1)`` relative to the image centre, ``(1, H * W, 3)``, and the
    half sizes that normalise a grid to ``[-1, 1]``: the parts of torchvision's ``_affine_grid``
    (``transforms/v2/functional/_geometry.py``) that do not depend on the angle, built the same way."""
    grid = torch.empty(1, height, width, 3, dtype=dtype, device=device)
    grid[..., 0].copy_(torch.linspace((1.0 - width) * 0.5, (width - 1.0) * 0.5, steps=width, device=device))
    grid[..., 1].copy_(torch.linspace((1.0 - height) * 0.5, (height - 1.0) * 0.5, steps=height, device=device).unsqueeze_(-1))
    grid[..., 2].fill_(1)
    return grid.view(1, height * width, 3), torch.tensor([0.5 * width, 0.5 * height], dtype=dtype, device=device)


def _rotate_images(rotation, images: torch.Tensor, params: list[dict]) -> torch.Tensor:
    """torchvision's ``rotate_image`` (v2) of each image by its drawn angle, with one
    ``grid_sample`` for the batch: each image's grid is torchvision's (the inverse rotation from
    its ``_get_inverse_affine_matrix``, times the pixel centres, one matrix product per image as
    ``_affine_grid`` makes it), and torchvision's ``_apply_grid_transform`` samples and fills them
    all; ``grid_sample`` computes every output pixel from its own grid point alone, so sampling
    the batch gives each image's pixels. The angles for which ``rotate_image`` takes a shortcut
    (0 and 180 degrees, 90 and 270 on square images) go through ``rotate_image`` itself."""
    from torchvision.transforms.v2 import functional as F

    _get_fill, _apply_grid_transform, _check_interpolation, _get_inverse_affine_matrix = _torchvision_grid_helpers()
    height, width = images.shape[-2:]
    dtype = images.dtype if torch.is_floating_point(images) else torch.float32
    base, half_size = _base_grid(height, width, dtype, images.device)
    interpolation = _check_interpolation(rotation.interpolation)
    fill = _get_fill(rotation._fill, torch.Tensor)  # what RandomRotation.transform passes for a plain tensor
    grids, sampled, shortcut = [], [], []
    for number, drawn in enumerate(params):
        angle = drawn["angle"] % 360  # rotate_image's own reduction, before its shortcuts and its matrix
        if angle in (0, 180) or (angle in (90, 270) and height == width):
            shortcut.append(number)
            continue
        matrix = _get_inverse_affine_matrix([0.0, 0.0], -angle, [0.0, 0.0], 1.0, [0.0, 0.0])
        theta = torch.tensor(matrix, dtype=dtype, device=images.device).reshape(1, 2, 3)
        grids.append(base.bmm(theta.transpose(1, 2).div_(half_size)))
        sampled.append(number)
    grid = torch.cat(grids).view(len(sampled), height, width, 2) if grids else None
    if not shortcut:
        return _apply_grid_transform(images, grid, interpolation.value, fill=fill)
    rotated = torch.empty_like(images)
    for number in shortcut:
        rotated[number] = F.rotate_image(images[number], params[number]["angle"], interpolation=interpolation, fill=fill)
    if sampled:
        chosen = torch.tensor(sampled)
        rotated[chosen] = _apply_grid_transform(images[chosen], grid, interpolation.value, fill=fill)
    return rotated


class _AugmentedBatches(Dataset):
    """Item ``k``: batch ``k`` of the epoch's order, each image augmented by ``transform``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batches: Sequence[torch.Tensor], transform,
                 seed: int, epoch: int) -> None:
        self.x, self.y, self.batches, self.transform = x, y, batches, transform
        self.seed, self.epoch = seed, epoch

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, number: int) -> tuple[torch.Tensor, torch.Tensor]:
        indices = self.batches[number]
        # torchvision's random transforms draw from the global generator: fork it so that
        # the batch's numbers depend only on its key, not on what ran before in this process
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.seed, "augment", self.epoch, number))
            images = augment_images(self.transform, self.x[indices])
        return images, self.y[indices]


def augmented_batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batches: Sequence[torch.Tensor],
    transform,
    *,
    seed: int,
    epoch: int,
    workers: int = 0,
    pin_memory: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The epoch's batches (index tensors into ``x``), augmented, in order, made by ``workers``
    DataLoader processes (0: in this process)."""
    dataset = _AugmentedBatches(x, y, batches, transform, seed, epoch)
    # batch_size=None: the dataset's items already are batches; order is the given one
    # an own generator, so that starting the loader leaves the global random state alone
    loader = DataLoader(dataset, batch_size=None, shuffle=False, num_workers=workers,
                        pin_memory=pin_memory, prefetch_factor=4 if workers else None,
                        generator=torch.Generator().manual_seed(derive_seed(seed, "loader", epoch)))
    return iter(loader)
