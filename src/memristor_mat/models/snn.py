"""Recurrent spiking network of the ECG task (SPEC §3 ECG): 4 event channels -> H recurrent
current-based LIF neurons -> 2 leaky double-integrator readouts.

The weights are raw tensors (``w_in``, ``w_rec``, ``w_out``), the conductances a crossbar would
hold; the per-neuron time constants are buffers (a property of the neuron circuits, drawn once,
never trained and never perturbed by weight noise). The model works with the rest of the library
as any other: :class:`~memristor_mat.noise.NoisyModel` replaces its weights through
``torch.func.functional_call``, Monte-Carlo evaluation gives it stacked weight draws (which its
evaluation loop broadcasts over, see ``RecurrentSNN.broadcasts_weight_draws``), and the
training loop uses its own :meth:`RecurrentSNN.training_loss` (NLL plus spike regularisers).

Two dynamics, chosen with ``dynamics=``:

``"original"``: the original study's network exactly as SPEC §3.1 states it. Per step t, from
zero state, with ``V`` the recurrent matrix, its diagonal masked after any noise:

* ``h_t = x_t W_in + h_{t-1} V``: the recurrence runs on the summed input current itself (a
  linear system that spikes never enter);
* ``out_t = spike(mem_{t-1} - threshold)`` or ``tanh(mem_{t-1} - threshold)``, and in both
  variants the reset ``reset_t = 1[mem_{t-1} > threshold]`` (no gradient through it);
* ``syn_t = alpha syn_{t-1} + h_t``; ``mem_t = beta mem_{t-1} + syn_{t-1} - threshold reset_t``
  (unnormalised, and the membrane takes the previous step's current; SPEC's threshold is 1);
* readout ``y_t = out_t W_out``, ``flt_t = alpha_o flt_{t-1} + y_t``, ``o_t = beta_o o_{t-1} +
  flt_{t-1}`` (one step behind the filter), logits ``max over t of o_t``;
* per-neuron time constants drawn for the hidden **and** the output neurons;
* weights uniform in ``0.001 +- 1 / sqrt(fan_in)`` (fan-in ``n_inputs`` for ``W_in``, H for ``V``
  and ``W_out``); ``V``'s stored diagonal keeps its initial values (masked in every forward
  pass, so they never train), and they count in ``max|V|``, the noise's reference, as in the
  original;
* the tanh twin's regulariser sums its outputs ``tanh(mem - threshold)`` with their signs, as
  the original's, where the tanh replaces the spike.

``"normalised"`` (the default, which every model trained before the option existed used): a
variant that keeps the original's neuron model and readout structure but changes what made the
original depend on its drawn time constants and on analogue values a crossbar never carries:

* **Membrane update** ``mem = beta * mem + (1 - beta) * syn`` (a normalised low-pass filter of
  the current step's synaptic current ``syn = alpha * syn + input``). The original's ``mem = beta *
  mem + syn`` has a steady-state gain ``1 / (1 - beta)`` that depends on each neuron's drawn
  ``tau_mem`` (x2.4 to x28 within two sigma of the spread), so variability would also scale every
  neuron's input weights; with the normalised form the variability changes only the neuron's
  dynamics, and the membrane lives on the scale of the synaptic current, comparable with the
  threshold of 1.
* **Reset** by subtraction, ``mem -= threshold * spike``, with the spike detached in the reset
  (as snntorch does by default, and as Zenke & Vogels 2021 recommend): the surrogate gradient
  flows through the spike's effect on the network, not through its own reset. Subtraction keeps
  the charge above threshold, so strong inputs map to higher rates.
* **Recurrence** ``recurrence="spikes"`` by default: the recurrent crossbar receives the hidden
  layer's binary spikes of the previous step, ``spike_{t-1} @ W_rec``, which is what a memristive
  recurrent layer physically receives (read voltages gated by spikes) and what makes weight
  noise on ``W_rec`` act as in hardware. ``recurrence="currents"`` recurs on the synaptic
  currents, ``syn_{t-1} @ W_rec`` (the original recurred on the unfiltered current h instead:
  use ``dynamics="original"`` for that).
* **Non-spiking twin** ``neuron="tanh"``: the hidden output is ``tanh(mem - threshold)`` and there
  is no reset (subtracting a graded, possibly negative activation would not be a reset); all the
  rest, the recurrence included, is identical.
* **Initialisation** (chosen on toy temporal tasks, T = 100 and 250, so that every variant,
  spiking or tanh, either recurrence, trains at Adamax lr 1e-3 to 1e-2 from seed 0):
  ``w_in ~ N(0, (input_gain / sqrt(n_inputs))^2)`` with ``input_gain = 3``. One isolated event
  at weight w adds at most about 0.3 w to the membrane (fast synapse, normalised membrane), a
  burst of events up to 2.35 w, so at gain 3 (std 1.5) neurons answer bursts of events (a QRS
  complex) rather than single ones: about 1% of neuron-steps spike on sparse events (2% per
  channel), 5% on simulated delta-modulated ECG (12% per channel). At the SpyTorch tutorials'
  gain of 7 the spiking network fired on background events and did not learn a temporal-order
  task at T = 250 within 10 epochs (gain 2 and 3 solved it in 4).
  ``w_rec ~ N(0, (recurrent_gain / sqrt(H))^2)`` with ``recurrent_gain = 0.3``: small, because
  recurrence on currents is a linear system that diverges once the spectral radius of ``W_rec``
  exceeds about ``1 - alpha`` (0.43), and the tanh twin's gradients explode over 250 steps at
  gain 7; the spiking network trained alike at gains 0.1 to 1. Training grows the recurrence
  where it helps.
  ``w_out ~ N(0, (2 (1 - alpha_o)(1 - beta_o) / sqrt(H))^2)``: the readout integrates without
  normalisation (DC gain ``1 / ((1 - alpha_o)(1 - beta_o))``, about 18), and this scale makes a
  hidden layer active at every step give logits of order 2; ten times larger initial logits made
  the tanh twin collapse to a constant output at lr 3e-3.
* **Readout** ``out_syn = alpha_o * out_syn + spike @ W_out``, ``out_mem = beta_o * out_mem +
  out_syn`` with the nominal constants (no delay), logits ``max over time of out_mem``.

Common to both:

* **Surrogate gradient**: Heaviside forward, fast-sigmoid surrogate of scale 10 (Zenke & Ganguli
  2018; :func:`spike`).
* **Masked recurrence**: ``W_rec`` is always used with a zero diagonal (a buffer mask multiplied
  in every forward, so even a noise-perturbed ``W_rec`` has no self-connections). The normalised
  network also stores it zero (the original keeps its initial values, above).
* **Time constants**: each hidden neuron's ``tau_syn`` and ``tau_mem`` (and, for the original,
  each output neuron's) drawn log-normal around the nominal values with sigma
  :func:`lognormal_spread`, either from ``variability_seed`` alone or, with
  ``variability_seed=None``, from torch's global RNG at construction as the original did (a
  fresh draw per model, reproducible when the caller seeds the global RNG).
* **Readout**: the readout is linear, so training computes it after the time loop as one
  product with its (T x T) impulse-response matrix (per output neuron for the original; same
  values up to rounding, one autograd operation instead of a recursion of 500). Evaluation
  integrates it as the original does, step by step in float32 inside its loop, keeping only the
  running maximum over time (:class:`_ReadoutLoop`): no (T x classes) tensor per window, and
  none of the impulse-response product's slow subnormal products on a CPU.
* **Two time loops, one dynamics**: training (autograd on) runs a loop that keeps what autograd
  needs anyway; evaluation (no autograd, all weight draws at once) runs a lean loop whose memory
  is O(batch x H) instead of O(batch x T x H) per draw. The tests check that both
  give the same logits, for both dynamics, both neurons and both recurrences. For spiking
  neurons on the CPU the evaluation loop runs in C++ where it builds
  (:mod:`~memristor_mat.models.spiking_loop`: one draw at a time, the same numbers bit for
  bit). In the original dynamics nothing in the time loop depends on the spikes (the recurrence runs on h, the reset
  is detached), so the training loop makes them after it, in one surrogate call over every step:
  the same values and gradients, bit for bit, as a call per step (a test checks), at half the
  time of a training step. Training runs the loop as one autograd node whose backward pass is
  autograd's own, operation for operation (:class:`_OriginalTimeLoop`, and
  :class:`_NormalisedTimeLoop` for spike recurrence): the engine's bookkeeping for five nodes
  per step cost more than their arithmetic, and a batch now trains 24-36 % faster with the same
  gradients bit for bit (a test compares them with the recorded loop's, which recording the
  membranes still runs). On the CPU both loops, forward and backward, run as the same ATen
  operations in C++ where the extension builds (:func:`~memristor_mat.models.spiking_loop.
  training_module`): a (16, 100) step's Python calls cost as much as its arithmetic, and a
  training batch of 250 steps runs 1.2-1.5x faster, with the same numbers (the same kernels
  on the same tensors, tanh included; the tests compare both with the recorded loop). The
  original network's spikes after its loop are one C++ pass there too (:class:`_SpikeAfterLoop`).
* **Precision**: float32 also under autocast (``mixed_precision`` on CUDA): the forward pass
  turns it off, so the same weights train to the same values with and without it (bfloat16
  state would round the leaky integration and the threshold comparisons).
* **Regulariser** (SPEC; the form of the SpyTorch tutorials): ``spike_count_weight * sum of all
  spikes of the batch + spike_rate_weight * mean over neurons of (spikes per neuron in the
  batch)^2``; for the normalised tanh twin the activity is ``|tanh(.)|`` (the original's is signed,
  above).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from memristor_mat.models import spiking_loop
from memristor_mat.models.options import DYNAMICS, NEURONS, RECURRENCES


def lognormal_spread(tau: float) -> float:
    """Sigma of log(tau_i) of the "technology variability" (SPEC §3 ECG; tau in seconds)."""
    return 0.4342391 + 11.85344581 * tau


def spike(membrane: torch.Tensor, threshold, scale) -> torch.Tensor:
    """Heaviside step of ``membrane - threshold`` (strictly above -> 1.0, else 0.0) whose gradient
    is the fast-sigmoid surrogate ``1 / (scale * |membrane - threshold| + 1)^2`` (Zenke & Ganguli
    2018). ``threshold`` and ``scale``: numbers or 0-dim tensors (tensors save a conversion per
    call in the time loop).

    Written with plain tensor operations rather than a ``torch.autograd.Function``, so it works
    under ``torch.vmap`` and ``torch.func`` transforms without a vmap rule, and is faster: a
    Python ``Function`` costs a Python forward and backward call per time step (a training step
    of the ECG network took 40 ms with it, 32 ms like this). The forward value is exactly the
    step: ``step + (m - m.detach()) * slope`` adds an exact zero; only its gradient is the slope.
    """
    step = torch.gt(membrane, threshold).to(membrane.dtype)
    if not (torch.is_grad_enabled() and membrane.requires_grad):
        return step
    with torch.no_grad():  # the surrogate slope is a constant of the backward pass
        slope = torch.sub(membrane, threshold).abs_().mul_(scale).add_(1.0)
        slope = slope.mul_(slope).reciprocal_()
    return torch.addcmul(step, membrane - membrane.detach(), slope)


def _is_vmapped(tensor: torch.Tensor) -> bool:
    # torch.func has no public test for it; this is the one its own code uses
    return torch._C._functorch.is_batchedtensor(tensor)


def _is_transformed(tensor: torch.Tensor) -> bool:
    """Whether a torch.func transform (vmap, grad, ...) wraps ``tensor``: its batching rules
    cannot write into given tensors (``out=``)."""
    return torch._C._functorch.is_functorch_wrapped_tensor(tensor)


class _OriginalTimeLoop(torch.autograd.Function):
    """The original dynamics' time loop (:meth:`RecurrentSNN._original_hidden_activity`) as one
    autograd node: the per-step outputs ``(batch, T, H)`` (the membrane ``mem_{t-1}`` that the
    spike compares at step t, or ``tanh(mem_{t-1} - threshold)``) from the input drive ``x @
    w_in`` ``(batch, T, H)`` and the masked recurrent matrix.

    Autograd recorded five nodes per step, 1,250 per batch, and its engine's bookkeeping cost
    more than the arithmetic of (16, 100) tensors. The backward pass here is the one autograd
    ran, operation for operation: the same derivative formulas (``addmm``, ``addcmul``,
    ``tanh``), each step's gradient sums of two terms (order-free in floating point), and the
    recurrent matrix's gradient summed over the steps in autograd's order (last step first), so
    the gradients are the same bit for bit (a test compares them with autograd's)."""

    @staticmethod
    def forward(ctx, drive, w_rec, alpha, beta, threshold, threshold_value: float, spiking: bool):
        ctx.save_for_backward(w_rec, alpha, beta)
        ctx.spiking = spiking
        ctx.compiled = spiking_loop.training_module(drive, w_rec, alpha, beta, threshold)
        if ctx.compiled is not None:  # the same operations in C++ (spiking_loop.training_module)
            stacked, ctx.inputs, tanh_outputs = ctx.compiled.original_time_loop(
                drive, w_rec, alpha, beta, threshold, threshold_value, spiking)
            ctx.tanh_outputs = None if spiking else tanh_outputs
            return stacked
        batch, steps, size = drive.shape
        drive_at = drive.unbind(1)
        h = drive.new_zeros((batch, size))
        syn, mem = torch.zeros_like(h), torch.zeros_like(h)
        reset = torch.empty_like(h)
        inputs, outputs = [], []  # h_{t-1} of every step (the recurrent product's left factor)
        for t in range(steps):
            inputs.append(h)
            h = torch.addmm(drive_at[t], h, w_rec)  # the operations of the recorded loop
            if spiking:
                outputs.append(mem)
            else:
                outputs.append(torch.tanh(mem - threshold))
            torch.gt(mem, threshold, out=reset)
            mem = torch.sub(torch.addcmul(syn, beta, mem), reset, alpha=threshold_value)
            syn = torch.addcmul(h, alpha, syn)
        ctx.inputs = inputs
        ctx.tanh_outputs = None if spiking else outputs
        return torch.stack(outputs, dim=1)

    @staticmethod
    @once_differentiable  # a second derivative would need a graph this backward does not record
    def backward(ctx, grad_outputs):
        w_rec, alpha, beta = ctx.saved_tensors
        inputs, tanh_outputs = ctx.inputs, ctx.tanh_outputs
        ctx.inputs = ctx.tanh_outputs = None
        if ctx.compiled is not None:
            grads = ctx.compiled.original_time_loop_backward(grad_outputs, inputs, tanh_outputs or [], w_rec, alpha, beta)
            d_drive, d_w = grads if grads else (None, None)  # none: a single step's h fed nothing
            return d_drive, d_w, None, None, None, None, None
        steps = len(inputs)
        grad_at = grad_outputs.unbind(1)
        # the gradients reaching step t's mem_t, syn_t and h_t from step t + 1 (None: none; the
        # last step's mem, syn and h feed nothing, so autograd never ran their nodes)
        d_mem = d_syn = d_h = None
        d_w = None
        d_drive = [None] * steps
        for t in reversed(range(steps)):
            # output_t from mem_{t-1}: the stacked output's slice (through tanh's derivative)
            d_mem_prev = grad_at[t] if ctx.spiking else torch.ops.aten.tanh_backward(grad_at[t], tanh_outputs[t])
            d_syn_prev = None
            if d_mem is not None:  # mem_t = syn_{t-1} + beta * mem_{t-1} - threshold * reset
                d_syn_prev = d_mem
                d_mem_prev = d_mem_prev + d_mem * beta
            if d_syn is not None:  # syn_t = h_t + alpha * syn_{t-1}
                d_h = d_syn if d_h is None else d_h + d_syn
                from_syn = d_syn * alpha
                d_syn_prev = from_syn if d_syn_prev is None else d_syn_prev + from_syn
            if d_h is not None:  # h_t = drive_t + h_{t-1} @ w_rec (addmm's derivatives)
                d_drive[t] = d_h
                product = inputs[t].t().mm(d_h)
                d_w = product if d_w is None else d_w + product
                d_h = d_h.mm(w_rec.t()) if t > 0 else None
            d_mem, d_syn = d_mem_prev, d_syn_prev
        if all(d is None for d in d_drive):  # a single step: its h fed nothing
            return None, d_w, None, None, None, None, None
        zeros = grad_outputs.new_zeros(grad_at[0].shape)
        # steps whose h_t fed nothing (the last one): zeros, as autograd's unbind gives them
        d_drive = [zeros if d is None else d for d in d_drive]
        return torch.stack(d_drive, dim=1), d_w, None, None, None, None, None


class _SpikeAfterLoop(torch.autograd.Function):
    """:func:`spike` of the original network's membranes ``(batch, T, H)`` after its training loop
    (:class:`_OriginalTimeLoop`), in one pass of the C++ extension (``spike_with_slope``) instead
    of ten elementwise passes and an autograd node each: the same spikes, and the gradient
    autograd gives :func:`spike`'s expression, ``grad * slope`` (``addcmul``'s derivative with
    respect to ``m - m.detach()``, passed through the subtraction), bit for bit. ``threshold`` and
    ``scale``: the float32 values of :func:`spike`'s 0-dim tensors."""

    @staticmethod
    def forward(ctx, membrane, compiled, threshold: float, scale: float):
        spikes, slope = compiled.spike_with_slope(membrane, threshold, scale)
        ctx.save_for_backward(slope)
        return spikes

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (slope,) = ctx.saved_tensors
        return grad * slope, None, None, None


class _NormalisedTimeLoop(torch.autograd.Function):
    """The normalised dynamics' time loop with spike recurrence (:meth:`RecurrentSNN.
    _hidden_activity`) as one autograd node, as :class:`_OriginalTimeLoop` is for the original:
    the outputs ``(batch, T, H)`` (spikes, or ``tanh(mem - threshold)``) from the drive ``x @
    w_in`` and the masked recurrent matrix, with the backward pass autograd ran: the spike's
    surrogate slope, ``lerp``'s ``grad * (1 - beta)`` and ``grad * beta``, ``addmm``'s products,
    two-term sums, and the recurrent gradient summed last step first. (With current recurrence
    a synaptic current has three consumers, whose sum depends on autograd's order: that variant
    keeps the recorded loop.) A NaN membrane spikes 0 here, as in the evaluation loop."""

    @staticmethod
    def forward(ctx, drive, w_rec, alpha, beta, threshold, scale, threshold_value: float, spiking: bool):
        ctx.save_for_backward(w_rec, alpha, beta)
        ctx.spiking = spiking
        ctx.compiled = spiking_loop.training_module(drive, w_rec, alpha, beta, threshold, scale)
        if ctx.compiled is not None:  # the same operations in C++ (spiking_loop.training_module)
            stacked, ctx.inputs, saved = ctx.compiled.normalised_time_loop(
                drive, w_rec, alpha, beta, threshold, scale, threshold_value, spiking)
            ctx.outputs, ctx.slopes = (None, saved) if spiking else (saved, None)
            return stacked
        batch, steps, size = drive.shape
        drive_at = drive.unbind(1)
        syn = drive.new_zeros((batch, size))
        mem, out = torch.zeros_like(syn), torch.zeros_like(syn)
        inputs, outputs, slopes = [], [], []  # out_{t-1} of every step: the recurrent product's left factor
        for t in range(steps):
            inputs.append(out)
            syn = torch.addmm(torch.addcmul(drive_at[t], alpha, syn), out, w_rec)  # the recorded loop's operations
            mem = torch.lerp(syn, mem, beta)
            if spiking:
                out = torch.gt(mem, threshold).to(mem.dtype)  # spike(): the step, with this slope
                slope = torch.sub(mem, threshold).abs_().mul_(scale).add_(1.0)
                slopes.append(slope.mul_(slope).reciprocal_())
                mem = torch.sub(mem, out, alpha=threshold_value)
            else:
                out = torch.tanh(mem - threshold)
            outputs.append(out)
        ctx.inputs, ctx.outputs, ctx.slopes = inputs, outputs, slopes
        return torch.stack(outputs, dim=1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_outputs):
        w_rec, alpha, beta = ctx.saved_tensors
        inputs, outputs, slopes = ctx.inputs, ctx.outputs, ctx.slopes
        ctx.inputs = ctx.outputs = ctx.slopes = None
        if ctx.compiled is not None:
            d_drive, d_w = ctx.compiled.normalised_time_loop_backward(
                grad_outputs, inputs, slopes if ctx.spiking else outputs, w_rec, alpha, beta, ctx.spiking)
            return d_drive, d_w, None, None, None, None, None, None
        steps = len(inputs)
        grad_at = grad_outputs.unbind(1)
        one_minus_beta = None
        # the gradients reaching step t's out_t, mem_t (after the reset) and syn_t from step t + 1
        d_out = d_mem = d_syn = None
        d_w = None
        d_drive = [None] * steps
        for t in reversed(range(steps)):
            d_out = grad_at[t] if d_out is None else grad_at[t] + d_out
            # the membrane before the reset: the reset passes d_mem through, the spike its slope
            if ctx.spiking:
                d_m = d_out * slopes[t]
            else:
                d_m = torch.ops.aten.tanh_backward(d_out, outputs[t])
            if d_mem is not None:
                d_m = d_mem + d_m
            # mem = lerp(syn_t, mem_{t-1}, beta)
            one_minus_beta = 1 - beta if one_minus_beta is None else one_minus_beta
            from_lerp = d_m * one_minus_beta
            d_syn = from_lerp if d_syn is None else d_syn + from_lerp
            d_mem = d_m * beta if t > 0 else None
            # syn_t = addcmul(drive_t, alpha, syn_{t-1}) + out_{t-1} @ w_rec
            d_drive[t] = d_syn
            product = inputs[t].t().mm(d_syn)
            d_w = product if d_w is None else d_w + product
            d_out = d_syn.mm(w_rec.t()) if t > 0 else None
            d_syn = d_syn * alpha if t > 0 else None
        return torch.stack(d_drive, dim=1), d_w, None, None, None, None, None, None


def double_integrator_kernel(alpha: float, beta: float, steps: int, **tensor_options) -> torch.Tensor:
    """(steps x steps) lower-triangular matrix K with ``out_mem = K @ u`` for the readout
    ``out_syn[t] = alpha out_syn[t-1] + u[t]``, ``out_mem[t] = beta out_mem[t-1] + out_syn[t]``
    from zero state: ``K[t, s] = sum_{j=0}^{t-s} alpha^j beta^(t-s-j)``."""
    lag = torch.arange(steps, dtype=torch.float64)
    if math.isclose(alpha, beta):
        response = (lag + 1) * alpha**lag
    else:
        response = (alpha ** (lag + 1) - beta ** (lag + 1)) / (alpha - beta)
    return _causal_toeplitz(response, delay=0).to(**tensor_options)


def delayed_double_integrator_kernels(alpha: torch.Tensor, beta: torch.Tensor, steps: int) -> torch.Tensor:
    """(n, steps, steps) float64 lower-triangular matrices K_c, one per output neuron c of the
    per-neuron constants ``alpha``, ``beta`` (n,), with ``o[:, c] = K_c @ y[:, c]`` for the
    readout of SPEC §3.1, ``flt[t] = alpha_c flt[t-1] + y[t]``, ``o[t] = beta_c o[t-1] +
    flt[t-1]``, from zero state: ``K_c[t, s] = r_c(t - 1 - s)`` for ``s < t`` (zero diagonal: o
    reads the previous step's flt), ``r(n) = sum_{j=0}^{n} alpha^j beta^(n-j)``.

    r is symmetric in alpha and beta, so with ``m = max``, ``q = min / max`` it is ``m^n (1 + q +
    ... + q^n)``: a cumulative sum of terms <= 1, exact for ``alpha == beta`` and free of the
    cancellation of ``(alpha^(n+1) - beta^(n+1)) / (alpha - beta)`` when they are close."""
    alpha, beta = alpha.detach().double(), beta.detach().double()
    larger = torch.maximum(alpha, beta)[:, None]
    ratio = torch.minimum(alpha, beta)[:, None] / larger
    lag = torch.arange(steps, dtype=torch.float64, device=alpha.device)
    response = larger**lag * torch.cumsum(ratio**lag, dim=-1)  # (n, steps): r(0), r(1), ...
    return _causal_toeplitz(response, delay=1)  # K_c[t, s] = r_c(t - 1 - s)


def _causal_toeplitz(response: torch.Tensor, delay: int) -> torch.Tensor:
    """``(..., T, T)`` matrices ``K[t, s] = response[..., t - s - delay]`` where that index is
    >= 0, else 0, from ``response`` ``(..., T)``, ``delay`` 0 or 1: windows of the reversed,
    zero-padded response (a copy of its values; a gather with a (T, T) index took 1.6 ms at
    T = 250, as much as the readout product itself)."""
    steps = response.shape[-1]
    reversed_padded = torch.cat([response.new_zeros((*response.shape[:-1], steps)), response], dim=-1).flip(-1)
    # window i holds reversed_padded[i:i + T]; row t of K is window T - 1 - t + delay
    return reversed_padded.unfold(-1, steps, 1)[..., delay:steps + delay, :].flip(-2)


def _without_subnormals(kernel: torch.Tensor) -> torch.Tensor:
    """``kernel`` with its subnormal entries (nonzero, below the dtype's smallest normal number
    ``tiny``) set to zero, for a float32 or float64 kernel on a CPU; any other returned as is.
    An entry ``|k| < tiny`` times an input ``p`` is below ``tiny |p|``, less than half a unit in
    the last place of any sum larger than ``tiny |p| 2^(mantissa bits + 1)`` (2^-101 |p| in
    float32), so dropping it changes no sum that holds one term of ordinary size; x86 CPUs
    multiply subnormals in microcode, tens of times slower (IEEE 754's gradual underflow). GPUs
    multiply them at full speed, and float16's subnormals (below 6e-5) are too large to drop."""
    if kernel.device.type != "cpu" or kernel.dtype not in (torch.float32, torch.float64):
        return kernel
    return kernel.masked_fill(kernel.abs() < torch.finfo(kernel.dtype).tiny, 0.0)


class _ReadoutLoop:
    """The readout of the evaluation loops, one step at a time: the leaky double integrator of
    each step's projection ``y_t = out_t W_out`` and the running maximum over time of its membrane
    (the logits), in state of shape ``shape``. ``delayed`` (the original, SPEC §3.1): ``o_t =
    beta o_{t-1} + flt_{t-1}``, ``flt_t = alpha flt_{t-1} + y_t``; else ``flt_t = alpha flt_{t-1}
    + y_t``, ``o_t = beta o_{t-1} + flt_t``; each a product and a sum rounded apart, as the
    original computes ``beta * o + flt``. ``alpha``, ``beta`` ``(classes,)``.

    Training computes the same readout after its loop, as one product with the impulse-response
    matrix (:meth:`RecurrentSNN._readout`: autograd then records one operation instead of 500):
    the same values up to rounding. Evaluation integrates as the original does, step by step: a
    few operations on ``(draws, batch, classes)`` per step instead of a ``(draws, batch, T,
    classes)`` tensor and a product that took 12 % of an evaluation with the C++ loop (the
    kernels decay into float32's subnormals, where products slow down); the C++ loop
    (``csrc/spiking_loop.cpp``, ``readout_step``) does the same operations in the same order."""

    def __init__(self, alpha: torch.Tensor, beta: torch.Tensor, *, delayed: bool, shape: tuple[int, ...],
                 like: torch.Tensor) -> None:
        self.alpha, self.beta, self.delayed = alpha, beta, delayed
        self.filtered, self.membrane = like.new_zeros(shape), like.new_zeros(shape)
        self.logits = like.new_full(shape, -math.inf)

    def step(self, projection: torch.Tensor) -> None:
        if self.delayed:  # o_t takes flt_{t-1}: update o before flt
            self.membrane.mul_(self.beta).add_(self.filtered)
            self.filtered.mul_(self.alpha).add_(projection)
        else:
            self.filtered.mul_(self.alpha).add_(projection)
            self.membrane.mul_(self.beta).add_(self.filtered)
        torch.maximum(self.logits, self.membrane, out=self.logits)  # NaN propagates, as amax


def _uniform_init(rows: int, cols: int, fan_in: int) -> torch.Tensor:
    """The original's initialisation (SPEC §3.1): uniform in 0.001 +- 1 / sqrt(fan_in), from the
    global RNG."""
    bound = 1.0 / math.sqrt(fan_in)
    return torch.empty(rows, cols).uniform_(0.001 - bound, 0.001 + bound)


def _check_number(name: str, value, positive: bool) -> None:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value < 0 or (positive and value == 0)):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")


class RecurrentSNN(nn.Module):
    """4 -> H recurrent LIF -> 2 spiking network on event sequences ``(batch, T, n_inputs)``;
    ``forward`` returns logits ``(batch, num_classes)`` (max over time of the readout membrane).

    See the module docstring for the two ``dynamics`` and the choices made. ``recurrence``
    (``"spikes"``, the default, or ``"currents"``), ``input_gain`` (default 3) and
    ``recurrent_gain`` (default 0.3) belong to the normalised dynamics; the original has its own
    recurrence and initialisation, so giving them with ``dynamics="original"`` is an error.
    ``time_constant_variability`` draws each hidden neuron's ``tau_syn`` and ``tau_mem`` once
    (and each output neuron's, for the original), log-normal around the nominal values with
    sigma :func:`lognormal_spread`: from ``variability_seed`` alone if it is an int (models of
    different training seeds then share one "chip"), or from torch's global RNG at construction,
    after the weights, if it is None (a fresh draw per model, as the original did).
    """

    #: ``forward`` without autograd also takes ``w_in``, ``w_rec`` and ``w_out`` with leading draw
    #: dimensions (through ``torch.func.functional_call``) and returns logits ``(*draws, batch,
    #: classes)``: Monte-Carlo evaluation calls it so instead of through ``torch.vmap``, whose
    #: batching rules cannot write into given tensors and run ``addmm`` as three operations (the
    #: evaluation loop runs 1.4-1.5x faster so, with the same values; ``benchmarks/bench_snn.py``).
    broadcasts_weight_draws = True

    def __init__(
        self,
        n_inputs: int = 4,
        hidden_size: int = 100,
        num_classes: int = 2,
        *,
        dynamics: str = "normalised",
        neuron: str = "spiking",
        recurrence: str | None = None,
        dt: float = 1 / 360,
        tau_syn: float = 5e-3,
        tau_mem: float = 20e-3,
        time_constant_variability: bool = True,
        variability_seed: int | None = 0,
        surrogate_scale: float = 10.0,
        threshold: float = 1.0,
        input_gain: float | None = None,
        recurrent_gain: float | None = None,
        spike_count_weight: float = 1e-7,
        spike_rate_weight: float = 1e-7,
    ) -> None:
        super().__init__()
        if n_inputs < 1 or hidden_size < 1 or num_classes < 2:
            raise ValueError(
                f"RecurrentSNN sizes must be positive (n_inputs {n_inputs}, hidden_size {hidden_size}, "
                f"num_classes {num_classes}; at least 2 classes)"
            )
        if dynamics not in DYNAMICS:
            raise ValueError(f"unknown dynamics {dynamics!r}; expected one of {list(DYNAMICS)}")
        if neuron not in NEURONS:
            raise ValueError(f"unknown neuron {neuron!r}; expected one of {list(NEURONS)}")
        original = dynamics == "original"
        if original:
            given = [f"{name}={value!r}" for name, value in (("recurrence", recurrence), ("input_gain", input_gain),
                                                              ("recurrent_gain", recurrent_gain)) if value is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)}: recurrence, input_gain and recurrent_gain are options of "
                    "dynamics='normalised'; dynamics='original' recurs on the summed input current h and "
                    "initialises uniformly (SPEC §3.1), so leave them unset"
                )
        else:
            recurrence = "spikes" if recurrence is None else recurrence
            input_gain = 3.0 if input_gain is None else input_gain
            recurrent_gain = 0.3 if recurrent_gain is None else recurrent_gain
            if recurrence not in RECURRENCES:
                raise ValueError(f"unknown recurrence {recurrence!r}; expected one of {list(RECURRENCES)}")
            _check_number("input_gain", input_gain, positive=True)
            _check_number("recurrent_gain", recurrent_gain, positive=False)
        for name, value in (("dt", dt), ("tau_syn", tau_syn), ("tau_mem", tau_mem),
                            ("surrogate_scale", surrogate_scale), ("threshold", threshold)):
            _check_number(name, value, positive=True)
        for name, value in (("spike_count_weight", spike_count_weight), ("spike_rate_weight", spike_rate_weight)):
            _check_number(name, value, positive=False)
        if not isinstance(time_constant_variability, bool):
            raise ValueError(f"time_constant_variability must be true or false, got {time_constant_variability!r}")
        if variability_seed is not None and (isinstance(variability_seed, bool)
                                             or not isinstance(variability_seed, int)):
            raise ValueError(f"variability_seed must be an int or None (global RNG), got {variability_seed!r}")

        self.n_inputs, self.hidden_size, self.num_classes = n_inputs, hidden_size, num_classes
        self.dynamics, self.neuron, self.recurrence = dynamics, neuron, recurrence  # recurrence None: original
        self.dt, self.tau_syn, self.tau_mem = float(dt), float(tau_syn), float(tau_mem)
        self.time_constant_variability, self.variability_seed = time_constant_variability, variability_seed
        self.surrogate_scale, self.threshold = float(surrogate_scale), float(threshold)
        self.spike_count_weight, self.spike_rate_weight = float(spike_count_weight), float(spike_rate_weight)

        # the nominal readout constants (the normalised readout's; the original draws per output neuron)
        self.readout_alpha = math.exp(-self.dt / self.tau_syn)
        self.readout_beta = math.exp(-self.dt / self.tau_mem)
        # drawn from the global RNG in this order (seeded by the caller, like any torch module)
        if original:
            self.w_in = nn.Parameter(_uniform_init(n_inputs, hidden_size, fan_in=n_inputs))
            self.w_rec = nn.Parameter(_uniform_init(hidden_size, hidden_size, fan_in=hidden_size))
            self.w_out = nn.Parameter(_uniform_init(hidden_size, num_classes, fan_in=hidden_size))
        else:
            readout_gain = 1.0 / ((1.0 - self.readout_alpha) * (1.0 - self.readout_beta))
            self.w_in = nn.Parameter(torch.randn(n_inputs, hidden_size) * (input_gain / math.sqrt(n_inputs)))
            self.w_rec = nn.Parameter(
                torch.randn(hidden_size, hidden_size) * (recurrent_gain / math.sqrt(hidden_size)))
            self.w_out = nn.Parameter(
                torch.randn(hidden_size, num_classes) * (2.0 / (readout_gain * math.sqrt(hidden_size))))
        if not original:  # the original's diagonal keeps its draw: masked, but part of max|V| (SPEC §3.1)
            with torch.no_grad():
                self.w_rec.fill_diagonal_(0.0)
        self.register_buffer("recurrent_mask", 1.0 - torch.eye(hidden_size))

        taus = self._neuron_time_constants()
        self.register_buffer("tau_syn_per_neuron", taus[0])
        self.register_buffer("tau_mem_per_neuron", taus[1])
        self.register_buffer("alpha", torch.exp(-self.dt / taus[0]))
        self.register_buffer("beta", torch.exp(-self.dt / taus[1]))
        if original:
            # only here, so that the state dict of a normalised model keeps the keys it always had
            self.register_buffer("readout_tau_syn_per_neuron", taus[2])
            self.register_buffer("readout_tau_mem_per_neuron", taus[3])
            self.register_buffer("readout_alpha_per_neuron", torch.exp(-self.dt / taus[2]))
            self.register_buffer("readout_beta_per_neuron", torch.exp(-self.dt / taus[3]))
        # hidden activity of the last training forward pass, for the regulariser (see forward)
        self._activity: torch.Tensor | None = None
        self._activity_batch: int | None = None

    def _neuron_time_constants(self) -> tuple[torch.Tensor, ...]:
        """``(tau_syn, tau_mem)`` of the hidden neurons (H,), followed for the original dynamics
        by those of the output neurons (num_classes,), drawn in that order."""
        sizes = (self.hidden_size, self.num_classes) if self.dynamics == "original" else (self.hidden_size,)
        if not self.time_constant_variability:
            return tuple(torch.full((size,), tau) for size in sizes for tau in (self.tau_syn, self.tau_mem))
        # None: the global RNG, which the caller seeds per model (the original's fresh draw per model)
        gen = None if self.variability_seed is None else torch.Generator().manual_seed(self.variability_seed)
        taus = []
        for size in sizes:  # hidden first: an int seed gives the hidden neurons the same draw in both dynamics
            z = torch.randn((2, size), generator=gen, dtype=torch.float64)
            taus.append((self.tau_syn * torch.exp(lognormal_spread(self.tau_syn) * z[0])).float())
            taus.append((self.tau_mem * torch.exp(lognormal_spread(self.tau_mem) * z[1])).float())
        return tuple(taus)

    def memristor_parameter_names(self) -> tuple[str, ...]:
        return ("w_in", "w_rec", "w_out")

    def crossbar_layers(self) -> tuple[dict[str, int], ...]:
        """The crossbar's layers (:func:`memristor_mat.noise.crossbar_layers`): the input and the
        recurrent matrix feed the hidden neurons' input current together, the readout matrix the
        readout; all are (in, out), the network computing ``x @ w``."""
        return ({"w_in": 1, "w_rec": 1}, {"w_out": 1})

    def extra_repr(self) -> str:
        recurrence = "input current h" if self.recurrence is None else self.recurrence
        return (f"{self.n_inputs} -> {self.hidden_size} -> {self.num_classes}, dynamics={self.dynamics}, "
                f"neuron={self.neuron}, recurrence={recurrence}, "
                f"time_constant_variability={self.time_constant_variability}")

    def forward(self, x: torch.Tensor, *, record: bool = False):
        """Logits ``(batch, num_classes)``; with ``record=True`` the dict of :meth:`record`
        instead (call it through a :class:`~memristor_mat.noise.NoisyModel` to record a noisy
        pass)."""
        if x.dim() != 3 or x.shape[-1] != self.n_inputs or x.shape[1] == 0:
            raise ValueError(f"RecurrentSNN expects inputs (batch, time, {self.n_inputs}) with at least one time "
                             f"step, got {tuple(x.shape)}")
        if torch.is_autocast_enabled(x.device.type):
            # mixed precision: the network runs in its weights' type. In bfloat16 (8 significant
            # bits) 250 steps of leaky integration lose the small increments and a membrane near
            # the threshold spikes or not by rounding; the products of a 100-neuron network gain
            # nothing from it either (a GPU runs them at launch speed)
            with torch.autocast(x.device.type, enabled=False):
                return self.forward(x, record=record)
        self._activity = self._activity_batch = None
        if (torch.is_grad_enabled() or record) and any(w.dim() > 2 for w in (self.w_in, self.w_rec, self.w_out)):
            raise ValueError(
                "RecurrentSNN takes weights with a leading draw dimension only for evaluation without "
                f"autograd (under torch.no_grad(), record=False); got w_in {tuple(self.w_in.shape)}, "
                f"w_rec {tuple(self.w_rec.shape)}, w_out {tuple(self.w_out.shape)}"
            )
        w_rec = self.w_rec * self.recurrent_mask  # once per pass; zero diagonal even for noisy w_rec
        membranes: list[torch.Tensor] | None = [] if record else None
        if not (torch.is_grad_enabled() or record):
            if any(_is_vmapped(t) for t in (x, self.w_in, w_rec, self.w_out)):
                raise ValueError(
                    "RecurrentSNN's evaluation loop (no autograd) does not run under torch.vmap: it writes "
                    "into preallocated tensors, which vmap cannot batch. It evaluates stacked weight draws "
                    "itself: call it with w_in, w_rec, w_out of shapes (draws, ...) through "
                    "torch.func.functional_call, under torch.no_grad()"
                )
            return self._evaluation_logits(x, w_rec)
        hidden = self._hidden_activity(x, w_rec, membranes)
        readout = self._readout(hidden @ self.w_out)  # (batch, T, classes): the readout membrane at every step
        logits = readout.amax(dim=-2)
        if record:
            return {
                "input": x,
                "hidden": hidden,
                "membrane": torch.stack(membranes, dim=-2),
                "readout": readout,
                "logits": logits,
                "recurrent_weights": w_rec,
            }
        if torch.is_grad_enabled() and self.training:  # never under no_grad, hence never in evaluation
            # the regulariser's activity: spikes, or tanh outputs, signed as the original sums
            # them (SPEC §3: tanh replaces the spike); the normalised tanh twin's magnitudes
            normalised_tanh = self.neuron == "tanh" and self.dynamics != "original"
            self._activity = hidden.abs() if normalised_tanh else hidden
            self._activity_batch = x.shape[0]
        return logits

    def _readout(self, projected: torch.Tensor) -> torch.Tensor:
        """The readout membrane ``(..., T, classes)`` from ``hidden @ w_out`` ``(..., T,
        classes)`` for training and :meth:`record` (evaluation integrates step by step,
        :class:`_ReadoutLoop`): linear, so one product with its impulse-response matrix (one per
        output neuron for the original). Two things once made it a fifth of an evaluation pass (9 ms of
        50 at 5 draws x 100 windows, one Xeon thread): ``kernel @ projected`` broadcast the
        normalised kernel over the windows, one two-column product per window (the einsum folds
        them into one product: 1.3 ms); and the original's fastest output neurons have kernels
        that decay into float32's subnormal range within 60 steps, where every multiply-add takes
        a slow path on x86 CPUs (zeroed by :func:`_without_subnormals`: 2-5 ms). Both give the
        values and gradients of the products they replace, bit for bit, at every batch size
        tried (1 to 1,519 windows; the tests check them to rounding, as another BLAS may differ)."""
        steps, options = projected.shape[-2], dict(dtype=projected.dtype, device=projected.device)
        if self.dynamics == "normalised":
            kernel = double_integrator_kernel(self.readout_alpha, self.readout_beta, steps, **options)
            return torch.einsum("ts,...sc->...tc", _without_subnormals(kernel), projected)
        kernels = delayed_double_integrator_kernels(self.readout_alpha_per_neuron, self.readout_beta_per_neuron,
                                                    steps).to(**options)
        return torch.einsum("cts,...sc->...tc", _without_subnormals(kernels), projected)

    def _readout_constants(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The output neurons' ``alpha`` and ``beta`` ``(classes,)`` in ``x``'s type, for the
        evaluation loops' readout (:class:`_ReadoutLoop`): the original's drawn per neuron, the
        normalised network's nominal ones."""
        if self.dynamics == "original":
            return tuple(c.to(dtype=x.dtype, device=x.device)
                         for c in (self.readout_alpha_per_neuron, self.readout_beta_per_neuron))
        return tuple(torch.full((self.num_classes,), value, dtype=x.dtype, device=x.device)
                     for value in (self.readout_alpha, self.readout_beta))

    def _constants(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # 0-dim tensors: a Python number costs a tensor conversion in every op that takes it
        return tuple(torch.tensor(value, dtype=x.dtype, device=x.device)
                     for value in (self.threshold, self.surrogate_scale))

    def _loop_as_one_node(self, x: torch.Tensor, w_rec: torch.Tensor) -> bool:
        """Whether training runs its time loop as one autograd node (:class:`_OriginalTimeLoop`,
        :class:`_NormalisedTimeLoop`): with gradients, outside torch.func's transforms (which
        need the recorded operations)."""
        return torch.is_grad_enabled() and not any(_is_transformed(t) for t in (x, self.w_in, w_rec))

    def _hidden_activity(self, x: torch.Tensor, w_rec: torch.Tensor,
                         membranes: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Hidden spikes (or tanh activations) ``(batch, T, H)``, differentiable: the time loop
        of training. Appends each step's membrane (before the reset) to ``membranes`` if given."""
        if self.dynamics == "original":
            return self._original_hidden_activity(x, w_rec, membranes)
        batch, steps, _ = x.shape
        alpha, beta = self.alpha, self.beta
        threshold, scale = self._constants(x)
        spiking, on_spikes = self.neuron == "spiking", self.recurrence == "spikes"
        if membranes is None and on_spikes and self._loop_as_one_node(x, w_rec):
            # training: the same loop as one autograd node, the same values and gradients
            return _NormalisedTimeLoop.apply(x @ self.w_in, w_rec, alpha, beta, threshold, scale,
                                             self.threshold, spiking)
        # (batch, H) per step: the input crossbar for all steps in one product, unbound once
        # (indexing it per step would make autograd build a (batch, T, H) gradient per step)
        drive = (x @ self.w_in).unbind(dim=-2)
        syn = x.new_zeros((batch, self.hidden_size))
        mem = torch.zeros_like(syn)
        out = torch.zeros_like(syn)
        outputs = []
        for t in range(steps):
            # syn = alpha * syn + x_t @ W_in + (spike_{t-1} or syn_{t-1}) @ W_rec
            syn = torch.addmm(torch.addcmul(drive[t], alpha, syn), out if on_spikes else syn, w_rec)
            mem = torch.lerp(syn, mem, beta)  # beta * mem + (1 - beta) * syn
            if membranes is not None:
                membranes.append(mem)
            if spiking:
                out = spike(mem, threshold, scale)
                # subtractive reset, no gradient through it
                mem = torch.sub(mem, out.detach(), alpha=self.threshold)
            else:
                out = torch.tanh(mem - threshold)
            outputs.append(out)
        return torch.stack(outputs, dim=-2)

    def _weight_draws(self, w_rec: torch.Tensor) -> torch.Size:
        """The draw dimensions of the weights, broadcast (``()`` for weights without draws).

        numpy's ``broadcast_shapes``, the same rule: ``torch.broadcast_shapes`` imports sympy at
        its first call (0.35 s of every evaluation job of a spiking network)."""
        return torch.Size(np.broadcast_shapes(self.w_in.shape[:-2], w_rec.shape[:-2], self.w_out.shape[:-2]))

    def _lean_buffers(self, x: torch.Tensor, w_rec: torch.Tensor) -> SimpleNamespace:
        """The evaluation loops' tensors, allocated once per pass, and their products. The draws
        (the weights' leading dimensions broadcast, of shape ``draws``) are flattened into one:
        ``zeros()`` makes a state ``(draws, batch, H)`` (``(batch, H)`` without draws);
        ``drive(t)`` writes ``x_t @ w_in`` into a buffer and returns it; ``projection``
        ``(draws, batch, classes)`` takes a step's ``out @ w_out``, ``readout`` (a
        :class:`_ReadoutLoop`) integrates it, and ``logits()`` gives its maximum over time as
        ``(*draws, batch, classes)``. ``product(weight)`` makes the
        function ``(a, out)`` that writes ``a @ weight`` into ``out`` as ``torch.matmul``
        computes it (``torch.mm`` over the rows of every draw for a weight without draws, else
        ``torch.bmm``) without matmul's shape logic at each of its 750 calls per pass (8 % of a
        pass). Allocating the tensors per step cost more than the
        elementwise updates: each fresh multi-megabyte tensor is new memory to map in."""
        batch, _, inputs = x.shape
        draws = self._weight_draws(w_rec)
        flat = (math.prod(draws),) if draws else ()

        def product(weight: torch.Tensor):
            rows, columns = weight.shape[-2:]
            if weight.dim() == 2:
                return lambda a, out: torch.mm(a.view(-1, rows), weight, out=out.view(-1, columns))
            weight = weight.expand(*draws, rows, columns).reshape(*flat, rows, columns)
            return lambda a, out: torch.bmm(a, weight, out=out)

        input_product = product(self.w_in)
        input_draws = flat if self.w_in.dim() > 2 else ()
        drive = x.new_empty((*input_draws, batch, self.hidden_size))
        readout = _ReadoutLoop(*self._readout_constants(x), delayed=self.dynamics == "original",
                               shape=(*flat, batch, self.num_classes), like=x)
        # every step's x_t (broadcast over w_in's draws, so the product writes into drive) as
        # views made once: indexing them at every step cost 5 % of a pass
        inputs_at = [x_t.expand(*input_draws, batch, inputs) for x_t in x.unbind(1)]

        def drive_at(t: int) -> torch.Tensor:
            input_product(inputs_at[t], drive)
            return drive

        return SimpleNamespace(
            draws=draws,
            shape=(*flat, batch, self.hidden_size),
            zeros=lambda: x.new_zeros((*flat, batch, self.hidden_size)),
            product=product,
            drive=drive_at,
            projection=x.new_empty((*flat, batch, self.num_classes)),
            readout=readout,
            logits=lambda: readout.logits.view(*draws, batch, self.num_classes),
        )

    def _evaluation_logits(self, x: torch.Tensor, w_rec: torch.Tensor) -> torch.Tensor:
        """The logits ``(*draws, batch, classes)`` without autograd: the time loop of evaluation.
        Same dynamics as :meth:`_hidden_activity`, which the tests check, computed for speed:
        every draw at once (weights with leading draw dimensions broadcast, see
        :attr:`broadcasts_weight_draws`), in O(batch x H) state per draw updated in place
        (``out=``; :meth:`_lean_buffers`), the readout integrated step by step with its running
        maximum (:class:`_ReadoutLoop`). With spike recurrence it gets the readout projection
        of step t - 1 from the recurrent product of step t (``out @ [W_rec | W_out]``: a
        two-column product alone costs half as much as the whole recurrent one).

        On the CPU the same loop runs in C++ where it applies
        (:mod:`~memristor_mat.models.spiking_loop`: one draw at a time, the same numbers)."""
        draws = self._weight_draws(w_rec)
        # the C++ loop makes each draw's products as this loop makes them (torch.bmm for a weight
        # with draws, torch.mm for one without), which it can only where they are each draw's
        # own: not for a W_rec or W_out shared by draws (one torch.mm of all their rows here)
        own_products = not draws or (w_rec.dim() > 2 and self.w_out.dim() > 2)
        if own_products and spiking_loop.applies(x, (self.w_in, w_rec, self.w_out), math.prod(draws)):
            compiled = spiking_loop.evaluation_module(self.neuron == "spiking")
            if compiled is not None:
                return self._compiled_logits(compiled, x, w_rec, draws)
        if self.dynamics == "original":
            return self._original_evaluation_logits(x, w_rec)
        size, alpha, beta, threshold = self.hidden_size, self.alpha, self.beta, self.threshold
        spiking, on_spikes = self.neuron == "spiking", self.recurrence == "spikes"
        buffers = self._lean_buffers(x, w_rec)
        projection, readout = buffers.projection, buffers.readout
        syn, mem, out = buffers.zeros(), buffers.zeros(), buffers.zeros()
        readout_product = buffers.product(self.w_out)
        if on_spikes:
            draws = buffers.draws
            w_rec_out = torch.cat([w_rec.expand(*draws, -1, -1), self.w_out.expand(*draws, -1, -1)], dim=-1)
            recurrent_and_readout = buffers.product(w_rec_out)
            product = x.new_empty((*buffers.shape[:-1], w_rec_out.shape[-1]))
            recurrent = product[..., :size]
        else:
            recurrent_product = buffers.product(w_rec)
            recurrent = buffers.zeros()
        for t in range(x.shape[1]):
            # syn = alpha * syn + x_t @ W_in + (spike_{t-1} or syn_{t-1}) @ W_rec
            drive = buffers.drive(t)
            if on_spikes:
                recurrent_and_readout(out, product)  # out: still the previous step's
                if t > 0:
                    readout.step(product[..., size:])  # step t - 1's projection
            else:
                recurrent_product(syn, recurrent)
            torch.addcmul(drive, alpha, syn, out=syn).add_(recurrent)
            torch.lerp(syn, mem, beta, out=mem)  # beta * mem + (1 - beta) * syn
            if spiking:
                torch.gt(mem, threshold, out=out)  # 1.0 strictly above, else 0.0 (NaN too)
                mem.sub_(out, alpha=threshold)
            else:
                torch.sub(mem, threshold, out=out).tanh_()
            if not on_spikes:
                readout_product(out, projection)
                readout.step(projection)
        if on_spikes:
            readout_product(out, projection)
            readout.step(projection)
        return buffers.logits()

    def _compiled_logits(self, compiled, x: torch.Tensor, w_rec: torch.Tensor, draws: torch.Size) -> torch.Tensor:
        """:meth:`_evaluation_logits` through the C++ loop ``compiled``
        (:mod:`~memristor_mat.models.spiking_loop`), for either dynamics."""
        batch = x.shape[0]
        flat = math.prod(draws)

        def stacked(weight: torch.Tensor) -> torch.Tensor:  # (flat draws, rows, columns)
            return weight.expand(*draws, *weight.shape[-2:]).reshape(flat, *weight.shape[-2:])

        # binary events, at most two per window and step (delta-modulated ECG: UP or DN per lead):
        # the input current is then a sum of at most two rows of W_in, the product's own values
        # (the C++ file says why) without computing it
        sparse_events = bool(((x == 0) | (x == 1)).all()) and bool((x.sum(dim=-1) <= 2).all())
        spiking, on_spikes = self.neuron == "spiking", self.recurrence == "spikes"
        original = self.dynamics == "original"
        size, classes = self.hidden_size, self.num_classes
        # the products of spikes as sums of the spiking rows, where torch's give those bits here
        summed_readout = spiking and spiking_loop.sums_spike_product(compiled, batch, size, classes, flat)
        summed_recurrent = (spiking and on_spikes and not original
                            and spiking_loop.sums_spike_product(compiled, batch, size, size + classes, flat))
        logits = compiled.spiking_logits(
            x, stacked(self.w_in), stacked(w_rec), stacked(self.w_out), self.alpha, self.beta,
            *self._readout_constants(x), self.threshold, spiking, original, on_spikes, self.w_in.dim() > 2,
            bool(draws), summed_readout, summed_recurrent, sparse_events)
        return logits.view(*draws, batch, self.num_classes)

    def _original_hidden_activity(self, x: torch.Tensor, w_rec: torch.Tensor,
                                  membranes: list[torch.Tensor] | None) -> torch.Tensor:
        """:meth:`_hidden_activity` of the original dynamics (SPEC §3.1, module docstring)."""
        batch, steps, _ = x.shape
        alpha, beta = self.alpha, self.beta
        threshold, scale = self._constants(x)
        spiking = self.neuron == "spiking"
        if membranes is None and self._loop_as_one_node(x, w_rec):
            # training: the same loop as one autograd node, the same values and gradients
            outputs = _OriginalTimeLoop.apply(x @ self.w_in, w_rec, alpha, beta, threshold, self.threshold, spiking)
            if not spiking:
                return outputs
            compiled = spiking_loop.training_module(outputs)
            if compiled is not None and outputs.dtype == torch.float32:
                return _SpikeAfterLoop.apply(outputs, compiled, threshold.item(), scale.item())
            return spike(outputs, threshold, scale)
        drive = (x @ self.w_in).unbind(dim=-2)  # as in _hidden_activity: one product, unbound once
        h = x.new_zeros((batch, self.hidden_size))
        syn = torch.zeros_like(h)
        mem = torch.zeros_like(h)
        states, outputs = [], []
        # the reset is the spike's forward value without gradient, in both variants: one buffer
        # written in place each step (no autograd node keeps it), a comparison straight into
        # floats; under torch.func's transforms, which cannot write into given tensors, a new one
        in_place = not any(_is_transformed(t) for t in (x, self.w_in, w_rec))
        reset = torch.empty_like(h) if in_place else None
        for t in range(steps):
            h = torch.addmm(drive[t], h, w_rec)  # h_t = x_t W_in + h_{t-1} V: spikes never enter
            states.append(mem)  # mem_{t-1}, the value compared with the threshold at step t
            if in_place:
                torch.gt(mem, threshold, out=reset)  # 1.0 strictly above, else 0.0 (NaN too)
            else:
                reset = torch.gt(mem, threshold).to(mem.dtype)
            if not spiking:
                outputs.append(torch.tanh(mem - threshold))
            # mem_t takes syn_{t-1}: update mem before syn
            mem = torch.sub(torch.addcmul(syn, beta, mem), reset, alpha=self.threshold)
            syn = torch.addcmul(h, alpha, syn)
        if membranes is not None:
            membranes.extend(states)
        if spiking:
            # Nothing in the loop depends on the spikes (the recurrence runs on h, the reset is
            # detached), so they are made after it, in one call over every step: the same
            # elementwise values and the same gradients as a call per step, and 6 operations per
            # step instead of 16. (The tanh stays in the loop: a vectorised tanh may round its
            # last elements differently with another tensor length.)
            return spike(torch.stack(states, dim=-2), threshold, scale)
        return torch.stack(outputs, dim=-2)

    def _original_evaluation_logits(self, x: torch.Tensor, w_rec: torch.Tensor) -> torch.Tensor:
        """:meth:`_evaluation_logits` of the original dynamics: the same lean loop."""
        alpha, beta, threshold = self.alpha, self.beta, self.threshold
        spiking = self.neuron == "spiking"
        buffers = self._lean_buffers(x, w_rec)
        recurrent_product, readout_product = buffers.product(w_rec), buffers.product(self.w_out)
        projection, readout = buffers.projection, buffers.readout
        h, h_next, syn, mem, out = (buffers.zeros() for _ in range(5))
        reset = out if spiking else buffers.zeros()  # spiking: the reset is the output
        for t in range(x.shape[1]):
            # h_t = x_t W_in + h_{t-1} V as a product and a sum: the values of the addmm it replaces
            drive = buffers.drive(t)
            recurrent_product(h, h_next)
            h, h_next = h_next.add_(drive), h
            torch.gt(mem, threshold, out=reset)  # 1.0 strictly above, else 0.0 (NaN too)
            if not spiking:
                torch.sub(mem, threshold, out=out).tanh_()
            readout_product(out, projection)  # the output feeds nothing back
            readout.step(projection)
            # mem_t takes syn_{t-1}: update mem before syn
            torch.addcmul(syn, beta, mem, out=mem).sub_(reset, alpha=threshold)
            torch.addcmul(h, alpha, syn, out=syn)
        return buffers.logits()

    @torch.no_grad()
    def record(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """One forward pass, step by step: ``input`` (batch, T, n_inputs), ``hidden`` spikes or
        tanh activations (batch, T, H), ``membrane`` (batch, T, H; before the reset, the value
        compared with the threshold), ``readout`` membrane (batch, T, classes), ``logits``
        (batch, classes) and the ``recurrent_weights`` actually applied (H, H, zero diagonal)."""
        return self(x, record=True)

    def training_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """NLL of ``log_softmax(logits)`` plus the spike regularisers on the hidden activity of
        the forward pass that produced ``logits`` (which must have run in training mode with
        gradients enabled). Each forward pass's activity serves one call: it is released here,
        so the module holds no piece of an autograd graph afterwards (and can be deep-copied)."""
        if self._activity is None:
            raise RuntimeError(
                "RecurrentSNN.training_loss needs the spike counts of a forward pass in training mode "
                "with gradients enabled (call model.train() and run the forward pass outside no_grad/vmap; "
                "one training_loss call per forward pass)"
            )
        if self._activity_batch != logits.shape[0]:
            raise RuntimeError(
                f"RecurrentSNN.training_loss got logits for {logits.shape[0]} samples but the last "
                f"forward pass saw {self._activity_batch}"
            )
        activity, self._activity, self._activity_batch = self._activity, None, None
        loss = F.nll_loss(F.log_softmax(logits, dim=-1), targets)
        per_neuron = activity.sum(dim=(0, 1))
        return (loss + self.spike_count_weight * per_neuron.sum()
                + self.spike_rate_weight * per_neuron.square().mean())
