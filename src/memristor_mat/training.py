"""One training loop for every method of the registry (:mod:`memristor_mat.methods`).

The loop never tests a method's name: it calls the method's hooks (forward wrapper, before and
after the optimiser step, after the weight clipping). Every epoch ends with an atomic resume
checkpoint (with the hooks' own state), and the randomness of epoch ``k`` (data order, weight
noise, dropout) is seeded from ``(seed, k)``, so a run killed after epoch ``k`` and resumed ends
with exactly the weights of an uninterrupted run.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import methods as registry
from . import native, optim, statistics
from .augmentation import augmented_batches, make_augmentation
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .datasets.splits import DatasetSplits
from .device import derive_seed, generator, in_memory_format
from .evaluation import clean_accuracy
from .methods.hooks import EpochContext, TrainingHooks
from .noise import noisy_parameter_names
from .provenance import config_hash
from .settings import LR_SCHEDULERS_ON_LOSS, TrainingSettings

log = logging.getLogger(__name__)

#: reduced-precision compute types for ``mixed_precision`` (CUDA only; float16 uses loss scaling),
#: by the names of :data:`memristor_mat.settings.MIXED_PRECISION_TYPES`
MIXED_PRECISION = {"bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class TrainingResult:
    model: nn.Module
    history: list[dict[str, float]]
    resumed_from_epoch: int


def make_optimizer(spec: dict[str, Any], parameters) -> torch.optim.Optimizer:
    """The torch.optim optimizer ``spec["name"]`` with the other keys as options; Adam is
    :class:`memristor_mat.optim.Adam` (torch's, its CPU update faster, the same numbers)."""
    options = dict(spec)
    name = options.pop("name")
    factory = optim.OPTIMIZERS.get(name) or getattr(torch.optim, name, None)
    if not (isinstance(factory, type) and issubclass(factory, torch.optim.Optimizer)):
        raise ValueError(f"optimizer {name!r} is not a torch.optim optimizer")
    try:
        return factory(parameters, **options)
    except TypeError as error:
        raise ValueError(f"bad options {options} for optimizer {name}: {error}") from None


#: when a learning-rate schedule steps: once per epoch, or after every optimiser step
LR_INTERVALS = ("epoch", "batch")


def lr_interval(spec: dict[str, Any] | None) -> str:
    """``spec["interval"]``: ``"epoch"`` (default) or ``"batch"``."""
    interval = (spec or {}).get("interval", "epoch")
    if interval not in LR_INTERVALS:
        raise ValueError(f"lr_scheduler.interval must be one of {list(LR_INTERVALS)}, got {interval!r}")
    return interval


def make_lr_scheduler(spec: dict[str, Any] | None, optimizer):
    """A torch.optim.lr_scheduler built from ``{name, interval, **options}``. ``interval``
    ``"epoch"`` (default) steps it once per epoch; ``"batch"`` after every optimiser step,
    counting batches across epochs, which is how the original stepped its
    ``MultiStepLR([100, 150, 200], 0.5)`` (SPEC §2.1: lr 1e-3, 5e-4 from batch 100, 2.5e-4 from
    150, 1.25e-4 from 200 on). A schedule of :data:`~memristor_mat.settings.LR_SCHEDULERS_ON_LOSS`
    (``ReduceLROnPlateau``) steps per epoch on the epoch's mean training loss."""
    if spec is None:
        return None
    if lr_interval(spec) == "batch" and spec["name"] in LR_SCHEDULERS_ON_LOSS:
        raise ValueError(f"lr_scheduler {spec['name']} steps on the epoch's training loss: interval must be 'epoch'")
    options = {k: v for k, v in spec.items() if k != "interval"}
    name = options.pop("name")
    factory = getattr(torch.optim.lr_scheduler, name, None)
    if not (isinstance(factory, type) and issubclass(factory, torch.optim.lr_scheduler.LRScheduler)):
        raise ValueError(f"lr_scheduler {name!r} is not a torch.optim.lr_scheduler class")
    try:
        return factory(optimizer, **options)
    except TypeError as error:
        raise ValueError(f"bad options {options} for lr_scheduler {name}: {error}") from None


def loss_function(model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Cross-entropy on logits unless the model defines its own ``training_loss``."""
    return getattr(model, "training_loss", F.cross_entropy)


@torch.no_grad()
def clip_weights(parameters: list[torch.Tensor], k_std: float) -> None:
    """Clamps each tensor to +-k_std of its own standard deviation (SPEC §2.1)."""
    parameters = list(parameters)
    compiled = native.cpu_module()
    if compiled is not None and all(_clipped_by_library(w) for w in parameters):
        # the whole clipping in one call (csrc/statistics.cpp): the same bound and clamp as below
        compiled.clip_to_std_(parameters, k_std, statistics.WELFORD_CONSTANT, statistics.MIN_ELEMENTS)
        return
    for w in parameters:
        if w.numel() > 1:
            if w.device.type != "cpu":  # on a GPU .item() would wait for the device
                bound = k_std * w.std()
            elif w.dtype == torch.float32:
                # the same float32 bound as a number: clamping to numbers is 2x faster on a CPU than
                # to tensors (5 % of an MLP step); float32_std is torch's std, 4x faster, and the
                # float32 product is torch's k_std * w.std() (tests/test_statistics.py)
                bound = float(np.float32(k_std) * np.float32(statistics.float32_std(w)))
            else:
                bound = (k_std * w.std()).item()
            w.clamp_(-bound, bound)


def _clipped_by_library(w: torch.Tensor) -> bool:
    return w.dtype is torch.float32 and w.device.type == "cpu" and w.layout is torch.strided and w.is_contiguous()


def autocast_dtype(mixed_precision: str | None, device: torch.device) -> torch.dtype | None:
    """The autocast type for ``mixed_precision`` on ``device``: None (float32) off CUDA."""
    if mixed_precision is None:
        return None
    if device.type != "cuda":
        log.warning("mixed_precision %r applies on CUDA only; training in float32 on %s", mixed_precision, device)
        return None
    return MIXED_PRECISION[mixed_precision]


def split_threads(threads: int, device: torch.device, augmenting: bool) -> tuple[int, int]:
    """(compute threads, DataLoader workers) for a job granted ``threads``. Augmenting an image
    costs about 0.2 ms: on a CPU the network is far slower (MobileNetV2 cifar_specs: 14 ms per
    image), so the main process augments in passing and every thread computes (a worker of its
    own halved training speed on 2 cores); on a GPU the network is fast and every thread but the
    one feeding it augments."""
    threads = max(1, int(threads))
    if not augmenting or device.type == "cpu":
        return threads, 0
    return 1, threads - 1


def train(
    model: nn.Module,
    data: DatasetSplits,
    settings: TrainingSettings,
    *,
    device: torch.device,
    resume_path: str | os.PathLike | None = None,
    resume_extra: dict[str, Any] | None = None,
    progress: bool | None = None,
    prefetch_noise: bool = True,
    data_workers: int = 0,
) -> TrainingResult:
    """Train ``model`` (already initialised, or loaded from its pretrained checkpoint for ``mat``).

    ``resume_path``: where the end-of-epoch state is written; if it exists, training continues
    from it. ``resume_extra``: entries stored with that state (e.g. the model's architecture).
    ``progress=None`` shows a progress bar only on a terminal. ``prefetch_noise``: on CPU, with
    more than one thread, MAT may draw its noise on one of them (the same numbers as drawing it
    in the step).
    ``data_workers``: DataLoader processes that augment the training images (0: this process;
    the numbers do not depend on it).
    """
    model.to(device)
    settings_hash = config_hash(settings.as_dict())
    named = dict(model.named_parameters())
    memristor_params = {n: named[n] for n in noisy_parameter_names(model, settings.include_normalization)}
    optimizer = make_optimizer(settings.optimizer, model.parameters())
    scheduler = make_lr_scheduler(settings.lr_scheduler, optimizer)
    per_batch_schedule = lr_interval(settings.lr_scheduler) == "batch"
    amp_dtype = autocast_dtype(settings.mixed_precision, device)
    # loss scaling keeps float16 gradients from underflowing; a no-op otherwise
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    hooks = method_hooks(model, memristor_params, settings, device, prefetch_noise=prefetch_noise)
    history: list[dict[str, float]] = []
    start_epoch = 0

    if resume_path is not None and Path(resume_path).exists():
        state = load_checkpoint(resume_path, map_location=device)
        if state.get("settings_hash") != settings_hash:
            raise CheckpointError(
                f"resume checkpoint {resume_path} was written with other training settings; "
                "delete it to start this run over"
            )
        # the settings' hash does not cover the model or the data (a config edit of the network's
        # options keeps the resume path): the entries stored with the state must match too
        changed = sorted(key for key, value in (resume_extra or {}).items() if state.get(key) != value)
        if changed:
            raise CheckpointError(
                f"resume checkpoint {resume_path} was written for another {', '.join(changed)} "
                f"({', '.join(f'{key} {state.get(key)!r}' for key in changed)}); delete it to start this run over"
            )
        try:
            model.load_state_dict(state["state_dict"])
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(state["lr_scheduler"])
            scaler.load_state_dict(state.get("grad_scaler") or {})
            hooks.load_state_dict(state.get("method_state") or {})
            history = list(state["history"])
            start_epoch = int(state["epochs_done"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(f"resume checkpoint {resume_path} does not fit this run ({error}); "
                                  "delete it to start this run over") from None
        log.info("resuming %s from epoch %d of %d", resume_path, start_epoch, settings.epochs)

    loss_fn = loss_function(model)
    augmentation = None
    if settings.augmentation is not None:
        if data.x_train.ndim != 4:
            raise ValueError(f"augmentation needs images (N x C x H x W), but {data.name} holds "
                             f"samples of shape {data.input_shape}")
        augmentation = make_augmentation(settings.augmentation, data.input_shape[-2:])
    # without augmentation the whole training set lives on the device and batches are slices
    if augmentation is None:
        x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    else:
        x_train, y_train = data.x_train, data.y_train
    n_train = len(y_train)
    clip = settings.weight_clip_std
    x_test = in_memory_format(data.x_test, settings.memory_format)

    for epoch in range(start_epoch, settings.epochs):
        started = time.perf_counter()
        torch.manual_seed(derive_seed(settings.seed, "torch", epoch))  # dropout etc.
        if settings.shuffle:
            order = torch.randperm(n_train, generator=generator(derive_seed(settings.seed, "order", epoch)))
        else:
            order = torch.arange(n_train)
        batches = EpochBatches(x_train, y_train, order.split(settings.batch_size), augmentation, settings.seed,
                               epoch, data_workers, device, settings.memory_format)
        context = EpochContext(
            epoch=epoch, generator=generator(derive_seed(settings.seed, "noise", epoch), device),
            batches=len(batches), late=epoch >= settings.epochs - settings.noisy_updates.last_epochs,
            sample=data.x_train[0],
        )
        model.train()
        tally = EpochTally()
        try:
            forward = hooks.epoch_forward(context)
            bar = tqdm(batches, total=len(batches), desc=f"epoch {epoch + 1}/{settings.epochs}", leave=False,
                       disable=None if progress is None else not progress)
            for index, (xb, yb) in enumerate(bar):
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    logits = forward(xb)
                    loss = loss_fn(logits, yb)
                scaler.scale(loss).backward()
                hooks.before_step(index, context)
                scaler.step(optimizer)
                scaler.update()
                lr = optimizer.param_groups[0]["lr"]  # the rate this batch was trained with
                if per_batch_schedule:
                    scheduler.step()
                hooks.after_step(index, context)
                if clip is not None:
                    clip_weights(memristor_params.values(), clip)
                hooks.after_clip(index, context)
                tally.add(loss, logits, yb)
        finally:
            hooks.end_epoch()
        loss_sum = tally.loss_sum()
        if scheduler is not None and not per_batch_schedule:
            if settings.lr_scheduler["name"] in LR_SCHEDULERS_ON_LOSS:
                scheduler.step(loss_sum / n_train)
            else:
                scheduler.step()
        test_accuracy = clean_accuracy(model, x_test, data.y_test, batch_size=settings.eval_batch_size)
        history.append({
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": loss_sum / n_train,
            "train_accuracy": tally.correct() / n_train,
            "test_accuracy_clean": test_accuracy,
            "seconds": time.perf_counter() - started,
        })
        log.info("epoch %d/%d %s", epoch + 1, settings.epochs, history[-1])
        if resume_path is not None:
            save_checkpoint(resume_path, {
                **(resume_extra or {}),
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer": optimizer.state_dict(),
                "lr_scheduler": scheduler.state_dict() if scheduler is not None else None,
                "grad_scaler": scaler.state_dict(),
                "method_state": hooks.state_dict(),
                "history": history,
                "epochs_done": epoch + 1,
                "settings_hash": settings_hash,
            })
    return TrainingResult(model=model, history=history, resumed_from_epoch=start_epoch)


#: the loss types whose sequential sum numpy makes exactly as torch's tensor additions (IEEE, no contraction)
_NUMPY_TYPES = {torch.float32: np.float32, torch.float64: np.float64}


class EpochTally:
    """An epoch's training loss (the sum of each batch's mean loss times its size) and correct
    predictions, added up at the epoch's end: the same float32 sum, in the same order, as adding
    each batch's to a tensor after its step, without the five operator calls a step (40-70 us, 5 % of
    a step of the paper's MNIST recipe on one thread of a 2-core AMD EPYC Zen 3)."""

    def __init__(self) -> None:
        self.losses: list[torch.Tensor] = []
        self.outputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.losses.append(loss.detach())
        self.outputs.append((logits.detach(), labels))

    def loss_sum(self) -> float:
        """float(s) for s = 0 (a tensor of torch's default type) to which each batch's
        ``loss * len(labels)`` was added in turn."""
        total = torch.zeros((), device=self.losses[0].device if self.losses else None)
        sizes = [len(labels) for _, labels in self.outputs]
        exact = _NUMPY_TYPES.get(total.dtype)
        if self.losses and exact is not None and all(loss.dtype == total.dtype and loss.dim() == 0
                                                     for loss in self.losses):
            # each product rounded to the type, then added one after the other: numpy's accumulate
            # is that sequential sum (its reductions are pairwise, its accumulate is not)
            products = torch.stack(self.losses).cpu().numpy() * np.asarray(sizes, dtype=exact)
            return float(np.add.accumulate(np.concatenate([np.zeros(1, dtype=exact), products]))[-1])
        for loss, size in zip(self.losses, sizes):
            total += loss * size
        return float(total)

    def correct(self) -> int:
        """How many of the epoch's samples the network's largest logit classified correctly."""
        if not self.outputs:
            return 0
        try:
            logits = torch.cat([logits for logits, _ in self.outputs])
            labels = torch.cat([labels for _, labels in self.outputs])
        except RuntimeError:  # batches of other trailing shapes: one by one
            return sum(int((logits.argmax(-1) == labels).sum()) for logits, labels in self.outputs)
        return int((logits.argmax(-1) == labels).sum())


def method_hooks(model: nn.Module, parameters: dict[str, nn.Parameter], settings: TrainingSettings,
                 device: torch.device, *, prefetch_noise: bool = True) -> TrainingHooks:
    """The hooks of ``settings.method`` from the registry (plain training if it has none)."""
    hook_class = registry.method(settings.method).hook_class() or TrainingHooks
    hooks = hook_class(model, parameters, settings, device)
    hooks.prefetch = prefetch_noise
    return hooks


class EpochBatches:
    """One epoch's (inputs, labels) on ``device``, in the order of ``index_batches``: slices of
    the device-resident training set, or augmented copies made by DataLoader workers; images laid
    out as ``memory_format`` (:func:`~memristor_mat.device.in_memory_format`; a gathered batch
    comes out contiguous whatever its source's layout, so each batch is laid out in turn)."""

    def __init__(self, x, y, index_batches, augmentation, seed, epoch, workers, device,
                 memory_format: str = "contiguous") -> None:
        self._length = len(index_batches)
        if augmentation is None:
            # index_select: the rows x[b] would gather, at a third of the indexing's cost per batch
            self._iterator = ((in_memory_format(x.index_select(0, b), memory_format), y.index_select(0, b))
                              for b in (b.to(device) for b in index_batches))
        else:
            # started here, before any noise-prefetching thread exists: workers are forked
            loader = augmented_batches(x, y, index_batches, augmentation, seed=seed, epoch=epoch,
                                       workers=workers, pin_memory=device.type == "cuda")
            self._iterator = ((in_memory_format(xb.to(device, non_blocking=True), memory_format),
                               yb.to(device, non_blocking=True))
                              for xb, yb in loader)

    def __len__(self) -> int:
        return self._length

    def __iter__(self):
        return self._iterator

