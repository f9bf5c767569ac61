"""Choice of compute device, of the images' memory layout and of reproducible seeds."""

from __future__ import annotations

import zlib

import numpy as np
import torch


def select_device(preference: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit choice must be available."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference not in ("cpu", "cuda", "mps") and not preference.startswith("cuda:"):
        raise ValueError(f"unknown device {preference!r}; expected auto, cpu, cuda, cuda:N or mps")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {preference!r} was requested but CUDA is not available here")
    if preference == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was requested but MPS is not available here")
    return torch.device(preference)


#: :data:`memristor_mat.settings.MEMORY_FORMATS` as torch's formats
TORCH_MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def in_memory_format(x: torch.Tensor, memory_format: str) -> torch.Tensor:
    """A batch of images ``(N, C, H, W)`` laid out as ``memory_format`` (``contiguous`` or
    ``channels_last``: each pixel's channels side by side, N H W C); any other tensor as it is.
    The values stay the same; convolutions then run in that layout, and so do the layers after
    them. The model's weights keep theirs, so the noise is drawn over them as before. On a CPU,
    oneDNN's convolutions in channels_last skip the reorders that the N C H W layout costs at
    every layer (``benchmarks/bench_cnn.py`` measures it); their kernels may round otherwise (see
    benchmarks/README.md). torch's recommendation for convolutional networks on CPUs and on GPUs'
    tensor cores: https://pytorch.org/tutorials/intermediate/memory_format_tutorial.html"""
    if x.dim() != 4:
        return x
    return x.contiguous(memory_format=TORCH_MEMORY_FORMATS[memory_format])


def derive_seed(*key: int | str) -> int:
    """A 63-bit seed from a key such as (seed, "noise", epoch): independent streams per purpose."""
    words = [zlib.crc32(part.encode()) if isinstance(part, str) else int(part) for part in key]
    return int(np.random.SeedSequence(words).generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> 1)


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)
