"""Training-set augmentation (SPEC §3 CIFAR: horizontal flip + 10 degree rotation), reproducible.

The transforms are torchvision's (``transforms.v2``), applied image by image, in
``torch.utils.data.DataLoader`` workers. What is ours is the seeding: each batch is one item of
the loader and seeds the random state from ``(seed, epoch, batch number)`` before transforming
its images, so an epoch's augmented batches are the same whether zero, one or eight workers make
them, and a run resumed at epoch ``k`` sees exactly the batches of an uninterrupted run.
"""

from __future__ import annotations

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
            images = torch.stack([self.transform(self.x[i]) for i in indices.tolist()])
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
