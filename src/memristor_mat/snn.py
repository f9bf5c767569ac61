"""Recurrent spiking network of the ECG task (SPEC §3 ECG): 4 event channels -> H recurrent
current-based LIF neurons -> 2 leaky double-integrator readouts.

The weights are raw tensors (``w_in``, ``w_rec``, ``w_out``), the conductances a crossbar would
hold; the per-neuron time constants are buffers (a property of the neuron circuits, drawn once,
never trained and never perturbed by weight noise). The model works with the rest of the library
as any other: :class:`~memristor_mat.noise.NoisyModel` replaces its weights through
``torch.func.functional_call``, Monte-Carlo evaluation runs it under ``torch.vmap``, and the
training loop uses its own :meth:`RecurrentSNN.training_loss` (NLL plus spike regularisers).

Design choices (where the original left a choice or had one we do not copy):

* **Membrane update** ``mem = beta * mem + (1 - beta) * syn`` (a normalised low-pass filter).
  The original's ``mem = beta * mem + syn`` has a steady-state gain ``1 / (1 - beta)`` that
  depends on each neuron's drawn ``tau_mem`` (x2.4 to x28 within two sigma of the spread), so
  variability would also scale every neuron's input weights; with the normalised form the
  variability changes only the neuron's dynamics, and the membrane lives on the scale of the
  synaptic current, comparable with the threshold of 1. The synaptic current itself is
  ``syn = alpha * syn + input`` as in the original.
* **Reset** by subtraction, ``mem -= threshold * spike``, with the spike detached in the reset
  (as snntorch does by default, and as Zenke & Vogels 2021 recommend): the surrogate gradient
  flows through the spike's effect on the network, not through its own reset. Subtraction keeps
  the charge above threshold, so strong inputs map to higher rates.
* **Recurrence** ``"spikes"`` by default: the recurrent crossbar receives the hidden layer's
  binary spikes of the previous step, ``spike_{t-1} @ W_rec``, which is what a memristive
  recurrent layer physically receives (read voltages gated by spikes) and what makes weight
  noise on ``W_rec`` act as in hardware. The original recurred on the synaptic currents
  (``syn_{t-1} @ W_rec``, analogue values a crossbar never sees); ``recurrence="currents"``
  reproduces it. ``W_rec`` is always used with a zero diagonal (a buffer mask multiplied in every
  forward, so even a noise-perturbed ``W_rec`` has no self-connections).
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
  out_syn`` with the nominal constants; it is linear, so it is computed after the time loop as
  one matrix product with its (T x T) impulse-response matrix (same values up to rounding,
  fewer operations per step). The logits are ``max over time of out_mem``.
* **Two time loops, one dynamics**: training (autograd on) runs a loop that keeps what autograd
  needs anyway; evaluation (no autograd, under ``torch.vmap`` over weight draws) runs a lean loop
  whose memory is O(batch x H) instead of O(batch x T x H) per draw. The tests check that both
  give the same logits, for both neurons and both recurrences.
* **Regulariser** (SPEC; the form of the SpyTorch tutorials): ``spike_count_weight * sum of all spikes of
  the batch + spike_rate_weight * mean over neurons of (spikes per neuron in the batch)^2``; for
  the tanh twin the activity is ``|tanh(.)|``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NEURONS = ("spiking", "tanh")
RECURRENCES = ("spikes", "currents")


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


def double_integrator_kernel(alpha: float, beta: float, steps: int, **tensor_options) -> torch.Tensor:
    """(steps x steps) lower-triangular matrix K with ``out_mem = K @ u`` for the readout
    ``out_syn[t] = alpha out_syn[t-1] + u[t]``, ``out_mem[t] = beta out_mem[t-1] + out_syn[t]``
    from zero state: ``K[t, s] = sum_{j=0}^{t-s} alpha^j beta^(t-s-j)``."""
    lag = torch.arange(steps, dtype=torch.float64)
    if math.isclose(alpha, beta):
        response = (lag + 1) * alpha**lag
    else:
        response = (alpha ** (lag + 1) - beta ** (lag + 1)) / (alpha - beta)
    index = lag[:, None] - lag[None, :]
    kernel = torch.where(index >= 0, response[index.clamp(min=0).long()], 0.0)
    return kernel.to(**tensor_options)


def _check_number(name: str, value, positive: bool) -> None:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value < 0 or (positive and value == 0)):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")


class RecurrentSNN(nn.Module):
    """4 -> H recurrent LIF -> 2 spiking network on event sequences ``(batch, T, n_inputs)``;
    ``forward`` returns logits ``(batch, num_classes)`` (max over time of the readout membrane).

    See the module docstring for the dynamics and the choices made. ``time_constant_variability``
    draws each hidden neuron's ``tau_syn`` and ``tau_mem`` once, log-normal around the nominal
    values with sigma :func:`lognormal_spread`, from ``variability_seed`` alone (not from the
    global RNG, so models of different training seeds share one "chip" unless told otherwise).
    """

    def __init__(
        self,
        n_inputs: int = 4,
        hidden_size: int = 100,
        num_classes: int = 2,
        *,
        neuron: str = "spiking",
        recurrence: str = "spikes",
        dt: float = 1 / 360,
        tau_syn: float = 5e-3,
        tau_mem: float = 20e-3,
        time_constant_variability: bool = True,
        variability_seed: int = 0,
        surrogate_scale: float = 10.0,
        threshold: float = 1.0,
        input_gain: float = 3.0,
        recurrent_gain: float = 0.3,
        spike_count_weight: float = 1e-7,
        spike_rate_weight: float = 1e-7,
    ) -> None:
        super().__init__()
        if n_inputs < 1 or hidden_size < 1 or num_classes < 2:
            raise ValueError(
                f"RecurrentSNN sizes must be positive (n_inputs {n_inputs}, hidden_size {hidden_size}, "
                f"num_classes {num_classes}; at least 2 classes)"
            )
        if neuron not in NEURONS:
            raise ValueError(f"unknown neuron {neuron!r}; expected one of {list(NEURONS)}")
        if recurrence not in RECURRENCES:
            raise ValueError(f"unknown recurrence {recurrence!r}; expected one of {list(RECURRENCES)}")
        for name, value in (("dt", dt), ("tau_syn", tau_syn), ("tau_mem", tau_mem),
                            ("surrogate_scale", surrogate_scale), ("threshold", threshold),
                            ("input_gain", input_gain)):
            _check_number(name, value, positive=True)
        for name, value in (("recurrent_gain", recurrent_gain), ("spike_count_weight", spike_count_weight),
                            ("spike_rate_weight", spike_rate_weight)):
            _check_number(name, value, positive=False)
        if not isinstance(time_constant_variability, bool):
            raise ValueError(f"time_constant_variability must be true or false, got {time_constant_variability!r}")
        if isinstance(variability_seed, bool) or not isinstance(variability_seed, int):
            raise ValueError(f"variability_seed must be an int, got {variability_seed!r}")

        self.n_inputs, self.hidden_size, self.num_classes = n_inputs, hidden_size, num_classes
        self.neuron, self.recurrence = neuron, recurrence
        self.dt, self.tau_syn, self.tau_mem = float(dt), float(tau_syn), float(tau_mem)
        self.time_constant_variability, self.variability_seed = time_constant_variability, variability_seed
        self.surrogate_scale, self.threshold = float(surrogate_scale), float(threshold)
        self.spike_count_weight, self.spike_rate_weight = float(spike_count_weight), float(spike_rate_weight)

        self.readout_alpha = math.exp(-self.dt / self.tau_syn)
        self.readout_beta = math.exp(-self.dt / self.tau_mem)
        readout_gain = 1.0 / ((1.0 - self.readout_alpha) * (1.0 - self.readout_beta))
        # drawn from the global RNG in this order (seeded by the caller, like any torch module)
        self.w_in = nn.Parameter(torch.randn(n_inputs, hidden_size) * (input_gain / math.sqrt(n_inputs)))
        self.w_rec = nn.Parameter(
            torch.randn(hidden_size, hidden_size) * (recurrent_gain / math.sqrt(hidden_size)))
        self.w_out = nn.Parameter(
            torch.randn(hidden_size, num_classes) * (2.0 / (readout_gain * math.sqrt(hidden_size))))
        with torch.no_grad():
            self.w_rec.fill_diagonal_(0.0)  # masked anyway; keeps the stored matrix honest
        self.register_buffer("recurrent_mask", 1.0 - torch.eye(hidden_size))

        tau_syn_i, tau_mem_i = self._neuron_time_constants()
        self.register_buffer("tau_syn_per_neuron", tau_syn_i)
        self.register_buffer("tau_mem_per_neuron", tau_mem_i)
        self.register_buffer("alpha", torch.exp(-self.dt / tau_syn_i))
        self.register_buffer("beta", torch.exp(-self.dt / tau_mem_i))
        # hidden activity of the last training forward pass, for the regulariser (see forward)
        self._activity: torch.Tensor | None = None
        self._activity_batch: int | None = None

    def _neuron_time_constants(self) -> tuple[torch.Tensor, torch.Tensor]:
        size = self.hidden_size
        if not self.time_constant_variability:
            return torch.full((size,), self.tau_syn), torch.full((size,), self.tau_mem)
        gen = torch.Generator().manual_seed(self.variability_seed)
        z = torch.randn((2, size), generator=gen, dtype=torch.float64)
        tau_syn = self.tau_syn * torch.exp(lognormal_spread(self.tau_syn) * z[0])
        tau_mem = self.tau_mem * torch.exp(lognormal_spread(self.tau_mem) * z[1])
        return tau_syn.float(), tau_mem.float()

    def memristor_parameter_names(self) -> tuple[str, ...]:
        return ("w_in", "w_rec", "w_out")

    def extra_repr(self) -> str:
        return (f"{self.n_inputs} -> {self.hidden_size} -> {self.num_classes}, neuron={self.neuron}, "
                f"recurrence={self.recurrence}, time_constant_variability={self.time_constant_variability}")

    def forward(self, x: torch.Tensor, *, record: bool = False):
        """Logits ``(batch, num_classes)``; with ``record=True`` the dict of :meth:`record`
        instead (call it through a :class:`~memristor_mat.noise.NoisyModel` to record a noisy
        pass)."""
        if x.dim() != 3 or x.shape[-1] != self.n_inputs:
            raise ValueError(f"RecurrentSNN expects inputs (batch, time, {self.n_inputs}), got {tuple(x.shape)}")
        self._activity = self._activity_batch = None
        w_rec = self.w_rec * self.recurrent_mask  # once per pass; zero diagonal even for noisy w_rec
        membranes: list[torch.Tensor] | None = [] if record else None
        if torch.is_grad_enabled() or record:
            hidden = self._hidden_activity(x, w_rec, membranes)
            projected = hidden @ self.w_out
        else:
            hidden, projected = None, self._projected_activity(x, w_rec)
        kernel = double_integrator_kernel(self.readout_alpha, self.readout_beta, x.shape[1],
                                          dtype=projected.dtype, device=projected.device)
        readout = kernel @ projected  # (batch, T, classes): the readout membrane at every step
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
            self._activity = hidden if self.neuron == "spiking" else hidden.abs()
            self._activity_batch = x.shape[0]
        return logits

    def _constants(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # 0-dim tensors: a Python number costs a tensor conversion in every op that takes it
        return tuple(torch.tensor(value, dtype=x.dtype, device=x.device)
                     for value in (self.threshold, self.surrogate_scale))

    def _hidden_activity(self, x: torch.Tensor, w_rec: torch.Tensor,
                         membranes: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Hidden spikes (or tanh activations) ``(batch, T, H)``, differentiable: the time loop
        of training. Appends each step's membrane (before the reset) to ``membranes`` if given."""
        batch, steps, _ = x.shape
        alpha, beta = self.alpha, self.beta
        threshold, scale = self._constants(x)
        spiking, on_spikes = self.neuron == "spiking", self.recurrence == "spikes"
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

    def _projected_activity(self, x: torch.Tensor, w_rec: torch.Tensor) -> torch.Tensor:
        """``hidden @ w_out`` ``(batch, T, classes)`` without autograd: the time loop of
        evaluation, run under ``torch.vmap`` with many weight draws, so it keeps memory at
        O(batch x H) (inputs projected step by step, no (batch, T, H) tensor) and, with spike
        recurrence, gets the readout projection of step t - 1 from the recurrent product of
        step t (``out @ [W_rec | W_out]``: a two-column product alone costs half as much as the
        whole recurrent one). Same dynamics as :meth:`_hidden_activity`, which the tests check."""
        batch, steps, _ = x.shape
        size, w_in, w_out = self.hidden_size, self.w_in, self.w_out
        alpha, beta = self.alpha, self.beta
        threshold, _ = self._constants(x)
        spiking, on_spikes = self.neuron == "spiking", self.recurrence == "spikes"
        w_rec_out = torch.cat([w_rec, w_out], dim=-1) if on_spikes else None
        syn = x.new_zeros((batch, size))
        mem = torch.zeros_like(syn)
        out = torch.zeros_like(syn)
        projected = []
        for t in range(steps):
            drive = torch.addcmul(x[:, t] @ w_in, alpha, syn)
            if on_spikes:
                product = out @ w_rec_out
                syn = drive.add_(product[..., :size])
                if t > 0:
                    projected.append(product[..., size:])
            else:
                syn = drive.add_(syn @ w_rec)
            mem = torch.lerp(syn, mem, beta)
            if spiking:
                out = torch.gt(mem, threshold).to(mem.dtype)
                mem.sub_(out, alpha=self.threshold)
            else:
                out = torch.sub(mem, threshold).tanh_()
            if not on_spikes:
                projected.append(out @ w_out)
        if on_spikes:
            projected.append(out @ w_out)
        return torch.stack(projected, dim=-2)

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
