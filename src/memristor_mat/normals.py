"""Standard normals: ``torch.randn``'s numbers and generator state, about 4x faster on the CPU.

Why: MAT draws a standard normal for every weight at every training step (SPEC §2.1), and on a CPU
drawing them is most of what MAT adds to a step: ``torch.randn`` of the MLP's 101,632 normals
takes 355 us against a vanilla step of the paper's MNIST recipe of 0.79 ms (one thread of a 2-core
AMD EPYC Zen 4), 12.2 of the 106 s of the demo's MNIST training job under the profiler.

How: torch makes a float32 tensor's normals in two passes, uniforms from its generator's Mersenne
Twister one call after another (240 of the 340 us), then the Box-Muller transform vectorised. The
package's C++ library (:mod:`memristor_mat.native`, ``csrc/normals.cpp``, which says how) makes the
same uniforms from the same twister state 11x faster and runs torch's own Box-Muller code on them,
then hands the generator back in the state torch would have left it in. So a draw here and a draw
by ``torch.randn`` are interchangeable, number for number, in any order.

That holds where the library compiles torch's transform to the same arithmetic as torch's build
did. The first draw of a process checks it: draws of several sizes (a block of 16, tails, across
the twister's state refreshes) from the library and from ``torch.randn`` with the same seed must
agree bit for bit, and so must the generators' states after them; where they do not (a build
without AVX2, another compiler's rounding, a later torch), torch draws, and the log says why.
torch also draws for what the library does not cover or would not speed up: other dtypes, other
devices, non-contiguous tensors, tensors of fewer than :data:`MIN_ELEMENTS` elements, tensors that
require a gradient, and under ``MEMRISTOR_MAT_NATIVE=python``.
"""

from __future__ import annotations

import logging
from typing import Sequence

import torch

from memristor_mat import native

log = logging.getLogger(__name__)

#: the library draws tensors of at least this many elements: below it torch's call is as fast (the
#: library's, from Python, costs about 6 us more; torch's two-pass kernel, the one the library
#: reproduces, itself starts at 16 elements)
MIN_ELEMENTS = 4096
#: sizes of the first-use check: one Box-Muller block, tails of 1 and 15, across one and several of
#: the twister's state refreshes (624 words each), starting mid-state after the previous size
CHECK_SIZES = (16, 17, 31, 623, 1249, 4099)
CHECK_SEEDS = (0, 20261206)


def _disagreement(compiled) -> str | None:
    """Why ``compiled``'s draws are not ``torch.randn``'s (None: they are, for the checked
    sizes and seeds)."""
    for seed in CHECK_SEEDS:
        ours, theirs = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        for size in CHECK_SIZES:
            expected = torch.randn(size, generator=theirs)
            drawn = torch.empty(size)
            compiled.standard_normal_(drawn, ours)
            if not torch.equal(drawn.view(torch.int32), expected.view(torch.int32)):
                differ = int((drawn.view(torch.int32) != expected.view(torch.int32)).sum())
                return f"{differ} of {size} normals differ from torch.randn's (seed {seed})"
            if not torch.equal(ours.get_state(), theirs.get_state()):
                return f"the generator's state after {size} normals differs from torch's (seed {seed})"
    return None


#: whether the library's draws are torch.randn's here (checked at the first draw)
_agreement = native.Agreement(_disagreement, "torch.randn draws the normals", log)


def _library():
    """The C++ library where its draws are torch's, else None."""
    return _agreement.library()


def drawer() -> str:
    """Who draws this process's large float32 CPU normals, and why (for ``memristor-mat
    build-native``'s report)."""
    return _agreement.report("the C++ library draws the normals: its draws are torch.randn's here, bit for bit")


def normal_(tensor: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``tensor.normal_(generator=generator)``: standard normals in place, the same numbers and the
    same generator state after it; ``tensor`` returned."""
    if (tensor.device.type == "cpu" and tensor.dtype == torch.float32 and tensor.numel() >= MIN_ELEMENTS
            and tensor.is_contiguous() and not tensor.requires_grad
            and (generator is None or generator.device.type == "cpu")):
        compiled = _library()
        if compiled is not None:
            compiled.standard_normal_(tensor, generator)
            return tensor
    return tensor.normal_(generator=generator)


def randn(shape: Sequence[int] | torch.Size, *, generator: torch.Generator | None = None,
          device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``torch.randn(shape, generator=generator, device=device, dtype=dtype)``: the same numbers and
    the same generator state after it (torch.randn is an empty tensor filled by ``normal_``)."""
    return normal_(torch.empty(tuple(shape), device=device, dtype=dtype), generator)
