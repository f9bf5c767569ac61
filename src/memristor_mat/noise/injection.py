"""Weight noise injected into any ``torch.nn.Module``: which parameters a crossbar holds, the
standard normals of each draw, and :class:`NoisyModel`, which perturbs them in every forward pass
(MAT's training). Nothing here is global: each :class:`NoisyModel` holds its own noise model,
condition, switch and draws.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import sys
import threading
import time
import traceback
from typing import Any, Iterable, Iterator, Mapping, Sequence

import torch
from torch import nn
from torch.func import functional_call

from .. import normals
from .base import NoiseModel, apply_all

NORMALIZATION_LAYERS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


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
    names, seen = [], set()
    for module_name, module in model.named_modules():
        if isinstance(module, NORMALIZATION_LAYERS) and not include_normalization:
            continue
        for param_name, param in module.named_parameters(recurse=False):
            if id(param) not in seen:  # a tied weight is one tensor on the crossbar, under its first name
                seen.add(id(param))
                names.append(f"{module_name}.{param_name}" if module_name else param_name)
    return tuple(names)


def crossbar_layers(model: nn.Module, names: Sequence[str]) -> list[dict[str, int]]:
    """The noisy parameters ``names`` (:func:`noisy_parameter_names`) grouped into the crossbar's
    layers, the tensors that feed the same outputs, each with its axis of those outputs: what the
    drift compensation rescales as one (:mod:`memristor_mat.noise.crossbar`). By default each
    module's parameters form one layer (a ``nn.Linear``'s or a convolution's weight and bias, a
    normalisation layer's scale and shift), outputs along dimension 0; a model whose tensors are
    laid out otherwise defines ``crossbar_layers()``, a sequence of ``{name: output axis}`` (the
    spiking network's ``x @ w_in`` matrices are (in, out))."""
    params = dict(model.named_parameters())
    if hasattr(model, "crossbar_layers"):
        layers = [dict(layer) for layer in model.crossbar_layers()]
        listed = [name for layer in layers for name in layer]
        if sorted(listed) != sorted(names):
            raise ValueError(f"crossbar_layers() of {type(model).__name__} lists {sorted(listed)}, "
                             f"but its noisy parameters are {sorted(names)}")
    else:
        grouped: dict[str, dict[str, int]] = {}
        for name in names:
            grouped.setdefault(name.rpartition(".")[0], {})[name] = 0
        layers = list(grouped.values())
    for layer in layers:
        outputs = {name: params[name].shape[axis] if params[name].dim() else 1 for name, axis in layer.items()}
        if len(set(outputs.values())) > 1:
            raise ValueError(f"the tensors of one crossbar layer must feed the same outputs; their numbers "
                             f"of outputs differ: {outputs}")
    return layers


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
        name: normals.randn((*lead, normals_per_weight, *shape), generator=generator, device=device)
        for name, shape in shapes.items()
    }


#: bytes the ring of :class:`PrefetchedNormals` spans at least: more than a core's private cache
#: (2 MiB of L2 per core on the Xeon measured), so the slot the trainer reads has left the drawing
#: core's cache by then. Reading lines that another core holds modified costs a cross-core
#: transfer per line: with 3 slots of the MLP's 0.4 MB an epoch of MAT with the background draw took
#: 2-4 % longer than with 11 (alternated epochs, benchmarks/README.md).
RING_BYTES = 4 << 20
#: the most slots a ring takes (tiny models: the draws are cheap, the ring need not be deeper)
MAX_DEPTH = 16


def ring_depth(draw_bytes: int) -> int:
    """Slots of a :class:`PrefetchedNormals` ring for draws of ``draw_bytes``: enough to span
    :data:`RING_BYTES`, at least 3 (one in use, one ready, one being drawn), at most
    :data:`MAX_DEPTH`."""
    return max(3, min(MAX_DEPTH, -(-RING_BYTES // max(draw_bytes, 1))))


#: how long the drawing process sleeps when it is ahead by a full ring (seconds), doubling up to
#: the second value while it waits: it never waits on a semaphore, so freeing a slot never wakes a
#: process (a system call in the training step); each poll costs it about 25 us of CPU in a VM
_POLL_SECONDS = (1e-4, 2e-3)


def _draw_into_slots(slots, state, count, filled, free, stop, failed, errors, parent) -> None:
    """The drawing process of :class:`PrefetchedNormals`: ``count`` draws into the ring of
    shared ``slots``, in the order of :func:`draw_normals` with a generator of this ``state``."""
    try:
        torch.set_num_threads(1)
        generator = torch.Generator()
        generator.set_state(state)
        shortest, longest = _POLL_SECONDS
        for index in range(count):
            delay = shortest
            while not free.acquire(block=False):
                if stop.is_set() or os.getppid() != parent:  # closed early, or the trainer died
                    return
                time.sleep(delay)
                delay = min(2 * delay, longest)
            for slot in slots[index % len(slots)].values():
                normals.normal_(slot, generator)
            filled.release()
    except BaseException:  # surface the failure in the consuming process
        errors.put(traceback.format_exc())
        failed.value = 1
        filled.release()


class PrefetchedNormals:
    """Iterator over ``count`` draws of standard normals, generated ahead on another core.

    Random-number generation costs about as much as a small model's training step; it does not
    depend on the weights, so on a CPU it runs on another core while the step computes. Draws come
    out in the same order and with the same values as a plain loop over :func:`draw_normals`
    with the same generator (whose state is read, not advanced).

    On Linux a forked process draws into a ring of ``depth`` shared-memory slots, up to
    ``depth - 1`` draws ahead; each draw handed out is a view of its slot, valid until the next
    draw is taken. ``depth=None`` sizes the ring with :func:`ring_depth` (3 slots, or more for
    small draws, so the ring outgrows the drawing core's cache). A thread in this process would
    be simpler, but it costs the training thread Python's GIL at every small operation: measured
    with ``benchmarks/bench_mlp.py``, it saved less than the draw it took over. Elsewhere (where forking a process that runs torch is
    unsafe, e.g. macOS) a thread draws fresh tensors.
    """

    def __init__(
        self,
        shapes: Mapping[str, torch.Size],
        normals_per_weight: int,
        generator: torch.Generator,
        count: int,
        depth: int | None = None,
        process: bool | None = None,
    ) -> None:
        if depth is None:
            numel = sum(torch.Size(shape).numel() for shape in shapes.values())
            draw_bytes = torch.get_default_dtype().itemsize * normals_per_weight * numel
            depth = ring_depth(draw_bytes)
        if depth < 2:
            raise ValueError(f"depth must be at least 2 (one slot in use, one being drawn), got {depth}")
        self.depth = depth
        self._remaining = count
        self._taken = 0
        self.process = sys.platform.startswith("linux") if process is None else process
        shapes = dict(shapes)
        if self.process:
            self._start_process(shapes, normals_per_weight, generator, count, depth)
        else:
            self._start_thread(shapes, normals_per_weight, generator, count, depth)

    def _start_process(self, shapes, normals_per_weight, generator, count, depth) -> None:
        context = multiprocessing.get_context("fork")
        # each slot one shared buffer (one file descriptor, however many tensors), viewed as
        # draw_normals shapes a draw: (normals_per_weight, *shape) per tensor
        sizes = {name: torch.Size((normals_per_weight, *shape)) for name, shape in shapes.items()}
        self._slots = []
        for _ in range(depth):
            buffer = torch.empty(sum(size.numel() for size in sizes.values())).share_memory_()
            self._slots.append({name: part.view(size) for (name, size), part
                                in zip(sizes.items(), buffer.split([size.numel() for size in sizes.values()]))})
        self._filled, self._free = context.Semaphore(0), context.Semaphore(depth - 1)
        self._stop, self._failed, self._errors = context.Event(), context.RawValue("i", 0), context.SimpleQueue()
        self._worker = context.Process(
            target=_draw_into_slots,
            args=(self._slots, generator.get_state(), count, self._filled, self._free,
                  self._stop, self._failed, self._errors, os.getpid()),
            daemon=True, name="memristor-mat normals",
        )
        self._worker.start()

    def _start_thread(self, shapes, normals_per_weight, generator, count, depth) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth - 1)
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._produce, args=(shapes, normals_per_weight, generator, count),
                                        daemon=True)
        self._worker.start()

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
        item = self._next_from_process() if self.process else self._queue.get()
        if isinstance(item, BaseException):
            raise item
        self._remaining -= 1
        self._taken += 1
        return item

    def _next_from_process(self) -> dict[str, torch.Tensor]:
        if self._taken:
            self._free.release()  # the previous draw's slot: its step is over
        while not self._filled.acquire(timeout=1.0):
            if not self._worker.is_alive():
                return RuntimeError(f"the process drawing the noise's normals ended early "
                                    f"(exit code {self._worker.exitcode})")
        if self._failed.value:
            return RuntimeError(f"drawing the noise's normals failed:\n{self._errors.get()}")
        return self._slots[self._taken % len(self._slots)]

    def is_alive(self) -> bool:
        """Whether the drawing process (or thread) still runs."""
        return self._worker.is_alive()

    def close(self) -> None:
        self._stop.set()
        self._worker.join(timeout=10)
        if self.process and self._worker.is_alive():
            self._worker.terminate()
            self._worker.join()

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


def parameter_owners(model: nn.Module, names: Iterable[str]) -> list[tuple[nn.Module, str]] | None:
    """``(module, attribute)`` holding each named parameter, for swapping other tensors in place of
    the parameters during a forward pass; ``None`` where a module's class overrides
    ``__setattr__``: such a class may keep its own record of its parameters (torch's RNNs keep a
    list of their flat weights), which only a swap through ``setattr`` (``functional_call``)
    would update.

    Why not always ``functional_call``: its generic swap (attribute deletion and assignment with
    checks, four times a step) cost 120-170 us more per forward and backward pass of the MLP
    than this swap (one thread of a 2-core EPYC where a MAT step takes 3-4 ms, the two
    alternated); a dictionary entry takes well under a microsecond.
    """
    owners = []
    for name in names:
        owner, _, attribute = name.rpartition(".")
        module = model.get_submodule(owner)
        if type(module).__setattr__ is not nn.Module.__setattr__ or attribute not in module._parameters:
            return None
        owners.append((module, attribute))
    return owners


def has_tied_parameters(model: nn.Module) -> bool:
    """Whether one parameter of ``model`` is reachable under several names (tied weights)."""
    return sum(1 for _ in model.named_parameters(remove_duplicate=False)) != sum(1 for _ in model.parameters())


class NoisyModel(nn.Module):
    """``model`` whose forward pass sees freshly perturbed weights (one draw per tensor per call).

    The backward pass is straight-through: gradients reach the clean parameters of ``model``,
    which the optimiser updates. With ``enabled = False`` or a condition at which the noise model
    is the identity (e.g. Gaussian sigma 0) the forward pass is the plain model's, bit for bit.
    The wrapped model's ``state_dict`` stays the clean one.
    """

    def __init__(
        self,
        model: nn.Module,
        noise: NoiseModel,
        condition: Mapping[str, Any],
        *,
        generator: torch.Generator | None = None,
        include_normalization: bool = False,
        normals: Iterable[dict[str, torch.Tensor]] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.noise = noise
        self.condition = noise.check_condition(condition)
        self.enabled = True
        self.parameter_names = noisy_parameter_names(model, include_normalization)
        # functional_call (whose tied-weight handling walks every module on each call, about 15 us
        # on the MLP) only where one parameter has several names or the owners cannot be swapped
        self._tied = has_tied_parameters(model)
        self._owners = parameter_owners(model, self.parameter_names) if not self._tied else None
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
        if not self.enabled or self.noise.is_identity(self.condition):
            return self.model(*args, **kwargs)
        draw = next(self.normals)
        if self._owners is None:
            noisy = self._noisy([self.model.get_parameter(name) for name in self.parameter_names], draw)
            return functional_call(self.model, dict(zip(self.parameter_names, noisy)), args, kwargs, strict=False,
                                   tie_weights=self._tied)
        clean = [module._parameters[attribute] for module, attribute in self._owners]
        noisy = self._noisy(clean, draw)
        try:
            for (module, attribute), tensor in zip(self._owners, noisy):
                module._parameters[attribute] = tensor
            return self.model(*args, **kwargs)
        finally:
            for (module, attribute), tensor in zip(self._owners, clean):
                module._parameters[attribute] = tensor

    def _noisy(self, weights: list[torch.Tensor], draw: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        normals = [draw[name].to(weight.device, non_blocking=True)
                   for weight, name in zip(weights, self.parameter_names)]
        return apply_all(self.noise, weights, normals, self.condition)
