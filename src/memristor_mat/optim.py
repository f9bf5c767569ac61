"""``torch.optim.Adam``, whose default update of float32 CPU tensors the C++ library makes: the
same numbers and the same state, about 2x faster.

Why: the paper's MNIST recipe (SPEC §2.1: Adam, batches of 32) updates the MLP's 101,632 weights
after every batch, and torch's default update (``_single_tensor_adam``, the one it runs on a CPU)
makes seven passes over each tensor, each an operator call of its own: 200-230 us a step on one
thread of a 2-core AMD EPYC Zen 4, a fifth of a vanilla step and 15 % of the demo's MNIST training
job under the profiler. torch's ``fused=True`` Adam is as fast but rounds differently (see
``benchmarks/README.md``, "Fused Adam and foreach"), so the original's recipe would no longer give
its numbers.

How: ``csrc/adam.cpp`` makes the same roundings in two passes and torch's own square root (the
moments; the root, which is MKL's; the denominator and the parameter), each scalar computed as
torch computes it (here, in Python, with the same double-precision expressions). The optimiser's
state (``step``, ``exp_avg``, ``exp_avg_sq``) is torch's, so checkpoints move between this class
and ``torch.optim.Adam`` either way.

That holds where the library's arithmetic is the one torch's build compiled (its kernels fuse some
multiply-adds: which ones is the compiler's choice). The first step of a process checks it: a few
steps on tensors of several sizes (tails of vectors, a root that torch splits between threads),
gradients with exact zeros, both branches of torch's ``lerp``, against ``torch.optim.Adam`` bit
for bit; where they differ, torch's update runs, and the log says why.
torch's update also runs for what the library does not cover: amsgrad, weight decay, maximize,
``foreach``/``fused``/``capturable``/``differentiable``, a learning rate or betas held in tensors,
tensors off the CPU, not float32 or not contiguous, and under ``MEMRISTOR_MAT_NATIVE=python``.
"""

from __future__ import annotations

import functools
import logging

import torch
from torch.optim import optimizer as torch_optimizer

from memristor_mat import native

log = logging.getLogger(__name__)

#: sizes of the first-use check: a single element, tails of a vector of 16, a whole vector, larger
#: tensors, and one whose root torch splits between threads (above its grain of 32,768)
CHECK_SIZES = (1, 15, 16, 17, 33, 1000, 4099, 70001)
#: (betas, lr, eps) of the check: the default, and a beta1 below 0.5 (lerp's other branch)
CHECK_SETTINGS = (((0.9, 0.999), 1e-3, 1e-8), ((0.3, 0.5), 0.05, 1e-3))
CHECK_STEPS = 4


def _update(compiled, param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
            step_t: torch.Tensor, lr: float, beta1: float, beta2: float, eps: float) -> None:
    """One step of ``_single_tensor_adam`` (no amsgrad, no weight decay) for one tensor, by the
    library (``csrc/adam.cpp``'s ``adam_steps_``, which computes the scalars as torch.optim.adam
    does with ``capturable=False``)."""
    if not compiled.adam_steps_([param], [grad], [exp_avg], [exp_avg_sq], [step_t], [lr], [beta1], [beta2], [eps]):
        raise ValueError("the C++ library's Adam does not take these tensors (contiguous float32 CPU tensors of "
                         "one shape, a float32 step)")


def _disagreement(compiled) -> str | None:
    """Why ``compiled``'s update is not ``torch.optim.Adam``'s (None: it is, for the checked sizes
    and settings)."""
    for (beta1, beta2), lr, eps in CHECK_SETTINGS:
        for size in CHECK_SIZES:
            generator = torch.Generator().manual_seed(size)
            start = torch.randn(size, generator=generator)
            theirs = torch.nn.Parameter(start.clone())
            reference = torch.optim.Adam([theirs], lr=lr, betas=(beta1, beta2), eps=eps, foreach=False)
            ours = start.clone()
            state = {"step": torch.tensor(0.0), "exp_avg": torch.zeros(size), "exp_avg_sq": torch.zeros(size)}
            for step in range(CHECK_STEPS):
                grad = torch.randn(size, generator=generator) * 10.0 ** (step - 2)
                grad[::5] = 0  # moments that stay 0 (MKL's root takes another path there)
                theirs.grad = grad.clone()
                _unhooked_step(reference)
                _update(compiled, ours, grad, state["exp_avg"], state["exp_avg_sq"], state["step"], lr, beta1, beta2,
                        eps)
                expected = reference.state[theirs]
                for name, mine, torchs in (("the parameter", ours, theirs.detach()),
                                           ("exp_avg", state["exp_avg"], expected["exp_avg"]),
                                           ("exp_avg_sq", state["exp_avg_sq"], expected["exp_avg_sq"])):
                    if not torch.equal(mine.view(torch.int32), torchs.view(torch.int32)):
                        differ = int((mine.view(torch.int32) != torchs.view(torch.int32)).sum())
                        return (f"{differ} of {size} elements of {name} differ from torch's after step {step + 1} "
                                f"(betas {beta1}, {beta2})")
    return None


#: whether the library's update is torch's here (checked at the first step)
_agreement = native.Agreement(_disagreement, "torch makes Adam's update", log)


def _library():
    """The C++ library where its update is torch's, else None."""
    return _agreement.library()


def updater() -> str:
    """Who makes Adam's default update of float32 CPU tensors in this process, and why (for
    ``memristor-mat build-native``'s report)."""
    return _agreement.report("the C++ library makes Adam's update: torch.optim.Adam's numbers here, bit for bit")


def _unhooked_step(optimizer: torch.optim.Adam, closure=None):
    """``torch.optim.Adam.step`` without the hooks torch wraps around a class's ``step`` once an
    instance of it exists (``Optimizer._patch_step_function``): this class's own ``step`` is
    wrapped and has run them."""
    step = torch.optim.Adam.step
    if getattr(step, "hooked", False):
        step = step.__wrapped__
    return step(optimizer, closure)


#: the types of a learning rate, betas and eps that torch's update uses as Python numbers (not tensors)
_NUMBERS = (float, int)


def _fusable(optimizer: torch.optim.Adam) -> bool:
    """Whether every parameter group of ``optimizer`` asks for the update the library makes (module
    docstring); its tensors are checked by the library, which updates none of them unless it
    takes them all."""
    for group in optimizer.param_groups:
        if (group["amsgrad"] or group["maximize"] or group["weight_decay"] != 0 or group["foreach"]
                or group["fused"] or group["capturable"] or group["differentiable"]
                or group.get("decoupled_weight_decay", False) or type(group["lr"]) not in _NUMBERS
                or type(group["eps"]) not in _NUMBERS or any(type(beta) not in _NUMBERS for beta in group["betas"])):
            return False
    return True


class Adam(torch.optim.Adam):
    """``torch.optim.Adam``: the same options, numbers and state; its default update of float32 CPU
    tensors made by the C++ library where it gives torch's numbers (module docstring)."""

    @staticmethod
    def profile_hook_step(func):
        """torch's wrapper of ``step`` (its profiler range and the step hooks) where a profiler
        records or a hook is registered; otherwise ``step`` alone: the wrapper cost 31 us a call on
        one thread of a 2-core AMD EPYC Zen 3 (3 % of a step of the paper's MNIST recipe), its
        profiler range 8 of them."""
        hooked = torch.optim.Optimizer.profile_hook_step(func)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            self = args[0]
            if (torch.autograd._profiler_enabled() or self._optimizer_step_pre_hooks
                    or self._optimizer_step_post_hooks or torch_optimizer._global_optimizer_pre_hooks
                    or torch_optimizer._global_optimizer_post_hooks):
                return hooked(*args, **kwargs)
            return func(*args, **kwargs)

        return wrapper

    def step(self, closure=None):
        compiled = _library()
        if compiled is None or not _fusable(self):
            return _unhooked_step(self, closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            # every tensor of every group in one call: the library updates them all, or none
            params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
            lrs, beta1s, beta2s, epss = [], [], [], []
            for group in self.param_groups:
                before = len(params)
                self._init_group(group, params, grads, exp_avgs, exp_avg_sqs, [], steps)  # torch's state
                added = len(params) - before
                beta1, beta2 = group["betas"]
                lrs += [group["lr"]] * added
                beta1s += [beta1] * added
                beta2s += [beta2] * added
                epss += [group["eps"]] * added
            if not compiled.adam_steps_(params, grads, exp_avgs, exp_avg_sqs, steps, lrs, beta1s, beta2s, epss):
                _unhooked_step(self)  # a tensor the library does not take: torch's update (closure evaluated)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """torch's ``zero_grad``; the gradients set to None directly where no profiler records its
        range (torch's opens one every call: 14 of its 17 us on one thread of a 2-core AMD EPYC
        Zen 3, about 1.5 % of a step of the paper's MNIST recipe)."""
        if not set_to_none or torch.autograd._profiler_enabled():
            return super().zero_grad(set_to_none)
        for group in self.param_groups:
            for param in group["params"]:
                param.grad = None


#: the torch.optim classes that ``training.make_optimizer`` replaces by these, by name
OPTIMIZERS = {"Adam": Adam}
