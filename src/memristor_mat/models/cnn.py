"""Convolutional networks for 32 x 32 colour images (SPEC §3 CIFAR, SPEC §7 PCM study).

* ``mobilenet_v2_cifar``: torchvision's own :class:`~torchvision.models.MobileNetV2`, configured
  through its options (``width_mult``, ``inverted_residual_setting``, ``dropout``, standard
  BatchNorm with running statistics) as the original's "cifar_specs": width 0.4, the block table
  of :data:`CIFAR_SPECS`, a 1280-channel last convolution, dropout 0.2. The one change
  torchvision has no option for is the stem's stride, set to 1 on the built convolution so that
  32 x 32 inputs are not halved before the first block. 502,538 parameters for 10 classes,
  617,828 for 100.
* ``resnet_cifar``: the CIFAR ResNet of He et al. (depth 6n + 2: a 3 x 3 stem, three stages of n
  basic blocks at 16/32/64 channels, global average pooling, one linear layer), built from
  torchvision's :class:`~torchvision.models.resnet.BasicBlock`; depth 20 is ResNet-20
  (272,474 parameters for 10 classes, with 1 x 1 projection shortcuts where the shape changes),
  the family of the PCM study. torchvision's ResNet class cannot be configured to this
  ImageNet-free layout (7 x 7 stem, max pooling, 64-512 channels are fixed).

torchvision is imported when a network is built, not with this module: every pipeline job
imports a model, and torchvision costs a second to import.

Both take pixels in [0, 1] and standardise them per channel themselves (mean and std are
architecture options, CIFAR's by default): the model owns its input normalisation, so training,
Monte-Carlo evaluation and a checkpoint reloaded elsewhere all feed it the same pixels. Every
convolution and linear layer is a crossbar: weight noise reaches all of their weights and the
classifier's bias; the BatchNorm affine parameters only when asked (``include_normalization``).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from memristor_mat.models.options import _resnet_depth_problem

#: per-channel mean and standard deviation of the CIFAR-10 training images (SPEC §3)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.247, 0.243, 0.261)
#: MobileNetV2 blocks (expansion t, channels c, repeats n, first stride s) of "cifar_specs"
CIFAR_SPECS = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 1), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
               (6, 320, 1, 1))


class ImageClassifier(nn.Module):
    """Per-channel standardisation of [0, 1] pixels, then ``network``."""

    def __init__(self, network: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f"input_mean {list(mean)} and input_std {list(std)} need one entry per channel, std > 0")
        from torchvision.transforms.v2.functional import normalize

        self.network = network
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]
        self._normalize = normalize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-3] != len(self.mean):
            raise ValueError(f"expected images with {len(self.mean)} channels, got shape {tuple(x.shape)}")
        return self.network(self._normalize(x, self.mean, self.std))


def mobilenet_v2_cifar(
    num_classes: int = 10,
    width_mult: float = 0.4,
    inverted_residual_setting: Sequence[Sequence[int]] = CIFAR_SPECS,
    stem_stride: int = 1,
    dropout: float = 0.2,
    input_mean: Sequence[float] = CIFAR_MEAN,
    input_std: Sequence[float] = CIFAR_STD,
    batchnorm_running_stats: bool = True,
) -> ImageClassifier:
    """MobileNetV2 "cifar_specs" (SPEC §3) by default; other widths and block tables for demos.

    ``batchnorm_running_stats=False`` builds BatchNorm layers that keep no running statistics
    (``track_running_stats=False``), as the original's did (SPEC §3 CIFAR): they normalise with
    the statistics of the batch at hand in evaluation too, so test accuracy then depends on the
    test batch size (the original's was 128)."""
    from functools import partial

    from torchvision.models import MobileNetV2

    if stem_stride not in (1, 2):
        raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride}")
    if not isinstance(batchnorm_running_stats, bool):
        raise ValueError(f"batchnorm_running_stats must be true or false, got {batchnorm_running_stats!r}")
    network = MobileNetV2(
        num_classes=num_classes,
        width_mult=width_mult,
        inverted_residual_setting=[list(block) for block in inverted_residual_setting],
        dropout=dropout,
        norm_layer=None if batchnorm_running_stats else partial(nn.BatchNorm2d, track_running_stats=False),
    )
    stem = network.features[0][0]
    stem.stride = (stem_stride, stem_stride)
    return ImageClassifier(network, input_mean, input_std)


class CifarResNet(nn.Module):
    """ResNet for 32 x 32 images (He et al. 2016, §4.2): 6n + 2 layers."""

    def __init__(self, depth: int = 20, num_classes: int = 10, widths: Sequence[int] = (16, 32, 64)) -> None:
        from torchvision.models.resnet import BasicBlock, conv1x1, conv3x3

        super().__init__()
        problem = _resnet_depth_problem(depth)
        if problem is not None:
            raise ValueError(problem)
        if len(widths) != 3 or any(w < 1 for w in widths):
            raise ValueError(f"widths must be three positive channel counts, got {list(widths)}")
        blocks = (depth - 2) // 6
        self.stem = nn.Sequential(conv3x3(3, widths[0]), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        stages, channels = [], widths[0]
        for index, width in enumerate(widths):
            stride = 1 if index == 0 else 2
            downsample = None
            if stride != 1 or channels != width:
                downsample = nn.Sequential(conv1x1(channels, width, stride), nn.BatchNorm2d(width))
            stage = [BasicBlock(channels, width, stride, downsample)]
            stage += [BasicBlock(width, width) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        # torchvision's ResNet initialisation (He et al.)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def resnet_cifar(
    depth: int = 20,
    num_classes: int = 10,
    widths: Sequence[int] = (16, 32, 64),
    input_mean: Sequence[float] = CIFAR_MEAN,
    input_std: Sequence[float] = CIFAR_STD,
) -> ImageClassifier:
    return ImageClassifier(CifarResNet(depth, num_classes, widths), input_mean, input_std)
