"""The spiking networks' evaluation loop in C++ (memristor_mat.models.spiking_loop): the Python
loop's numbers bit for bit, where it applies (the tanh twin's where torch's tanh passes its check
here), and a clear choice and failure otherwise.

The first test builds the extension (20-25 s on 2 cores, then cached by torch); CI has a
compiler and ninja, so a failed build fails here rather than skipping."""

import logging
import os
import warnings

import pytest
import torch

from memristor_mat import native
from memristor_mat.models import spiking_loop
from memristor_mat.models.snn import RecurrentSNN

SPIKING = [dict(dynamics="original"), dict(recurrence="spikes"), dict(recurrence="currents")]
TANH = [dict(options, neuron="tanh") for options in SPIKING]


def events(batch, steps, rate, seed):
    """Delta-modulated two-lead input: per lead and step an UP or a DN event, or none (at most
    two events per window and step: the C++ loop's sparse input path)."""
    g = torch.Generator().manual_seed(seed)
    fired = torch.rand((batch, steps, 2), generator=g) < 2 * rate
    up = torch.rand((batch, steps, 2), generator=g) < 0.5
    return torch.stack([fired & up, fired & ~up], dim=-1).flatten(-2).float()


def analog(batch, steps, seed):
    """Graded input (not events): the C++ loop then takes the input product itself."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn((batch, steps, 4), generator=g).abs() * 0.5


def network(hidden=100, threshold=1.0, **options):
    torch.manual_seed(0)
    if options.get("dynamics") == "original":
        options["variability_seed"] = None
    return RecurrentSNN(4, hidden, 2, threshold=threshold, **options).eval()


def draws_of(model, count, scale, seed):
    g = torch.Generator().manual_seed(seed)
    return {name: p.detach() + scale * p.detach().abs().max() * torch.randn((count, *p.shape), generator=g)
            for name, p in model.named_parameters()}


def both_loops_on_one_thread(monkeypatch, model, weights, x):
    """The logits of Python's loop and of the C++ loop (``MEMRISTOR_MAT_NATIVE=cpp``), each on one
    thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return (logits_with("python", monkeypatch, model, weights, x),
                logits_with("cpp", monkeypatch, model, weights, x))
    finally:
        torch.set_num_threads(previous)


def recording(compiled, calls):
    """The library, its ``spiking_logits`` appending each call's last three arguments (whether it
    sums the readout's and the spike recurrence's products, whether the input is events) to
    ``calls``; everything else the library's."""
    class Recorded:
        def __getattr__(self, name):
            return getattr(compiled, name)

        @staticmethod
        def spiking_logits(*arguments):
            calls.append(arguments[-3:])
            return compiled.spiking_logits(*arguments)

    return Recorded()


def logits_with(loop, monkeypatch, model, weights, x):
    monkeypatch.setenv(native.ENVIRONMENT_VARIABLE, loop)
    with torch.no_grad():
        return torch.func.functional_call(model, weights, (x,))


def spike_count(model, weights, x):
    with torch.no_grad():
        trace = torch.func.functional_call(model, {n: w[0] for n, w in weights.items()}, (x,), {"record": True})
    return int(trace["hidden"].sum())


# (16, 256, 250): the paper config's chunk; 239 windows: the ECG test split's last batch; graded
# input (the product) on the smaller shapes only, to keep the suite's time
PASSES = [("events", 16, 256, 250)] + [(inputs, *shape) for inputs in ("events", "analog")
                                       for shape in ((5, 239, 60), (3, 1, 40), (2, 7, 23))]
# the tanh twins: every network on the smaller passes, the paper's (the original) on its chunk too
NETWORK_PASSES = ([(options, *shape) for options in SPIKING for shape in PASSES]
                  + [(options, *shape) for options in TANH for shape in PASSES[1:]] + [(TANH[0], *PASSES[0])])


#: for the tests of what the C++ loop does when it runs: under torch's portable kernels
#: (ATEN_CPU_CAPABILITY=default) Python's loop evaluates every network (tested below)
needs_the_loop = pytest.mark.skipif(spiking_loop.updates_disagreement() is not None,
                                    reason="torch's portable kernels: Python's loop evaluates here")


def uses_the_cpp_loop(options) -> bool:
    return spiking_loop.updates_disagreement() is None and (
        options.get("neuron") != "tanh" or spiking_loop.tanh_disagreement() is None)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("options, inputs, draws, batch, steps", NETWORK_PASSES,
                         ids=lambda value: "-".join(value.values()) if isinstance(value, dict) else None)
def test_cpp_loop_gives_the_python_loops_logits_bit_for_bit(compiled, monkeypatch, options, threads, inputs, draws,
                                                           batch, steps):
    model = network(**options)
    x = events(batch, steps, rate=0.05, seed=1) if inputs == "events" else analog(batch, steps, seed=1)
    weights = draws_of(model, draws, scale=0.2, seed=2)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        python = logits_with("python", monkeypatch, model, weights, x)
        calls = []
        monkeypatch.setattr(native, "_module", recording(compiled, calls))
        cpp = logits_with("cpp", monkeypatch, model, weights, x)
        # the products of spikes summed where the check of their shape passes here (on two threads
        # as well): the readout's, and the normalised network's spike recurrence with it
        spiking = options.get("neuron") != "tanh"
        summed = spiking and spiking_loop.sums_spike_product(compiled, batch, 100, 2, draws)
        recurrent = (spiking and options.get("recurrence") == "spikes"
                     and spiking_loop.sums_spike_product(compiled, batch, 100, 102, draws))
    finally:
        torch.set_num_threads(previous)
    # where torch's tanh fails its check here, the twin stays on Python's loop (tested below)
    assert calls == ([(summed, recurrent, inputs == "events")] if uses_the_cpp_loop(options) else []), \
        "the C++ loop should have run, on the events as events"
    assert cpp.shape == python.shape == (draws, batch, 2)
    assert torch.equal(cpp, python)
    if steps >= 60 and options.get("neuron") != "tanh":
        assert spike_count(model, weights, x) > 0, "the test needs spikes"
    if inputs == "events" and batch * steps >= 1000:
        assert (x.sum(dim=-1) == 2).any(), "the test needs steps with two events"


@needs_the_loop
def test_more_than_two_events_in_a_step_take_the_product(compiled, monkeypatch):
    model = network(hidden=40, dynamics="original")
    x = events(20, 50, rate=0.1, seed=7)
    x[3, 10] = 1.0  # four events at once: a sum of four terms depends on its order
    weights = draws_of(model, 2, scale=0.2, seed=8)
    calls = []
    monkeypatch.setattr(native, "_module", recording(compiled, calls))
    python, cpp = both_loops_on_one_thread(monkeypatch, model, weights, x)
    assert torch.equal(cpp, python)
    assert [call[-1] for call in calls] == [False]  # not events


def test_the_loop_lets_other_python_threads_run(compiled):
    # it releases the GIL, as torch's operations do: a Python thread keeps running through the
    # call. Counted in the thread's ticks while the call runs, not in seconds: with a switch
    # interval far longer than the call, a thread that holds the GIL is never made to hand it
    # over, so the worker ticks in the call only if the call lets go of it (the control: a
    # builtin that holds it lets no tick through).
    import sys
    import threading
    import time

    model = network(dynamics="original")
    weights = draws_of(model, 16, scale=0.2, seed=2)
    args = (events(256, 250, rate=0.05, seed=1), weights["w_in"], weights["w_rec"] * model.recurrent_mask,
            weights["w_out"], model.alpha, model.beta, *model._readout_constants(weights["w_in"]), 1.0, True, True,
            False, True, True, True, False, True)
    state = {"in_call": False, "ticks": 0}
    started, stop = threading.Event(), threading.Event()

    def clock():
        started.set()
        while not stop.is_set():
            state["ticks"] += state["in_call"]
            time.sleep(1e-4)  # off the GIL long enough for the main thread to take it back at once

    def ticks_during(call):
        state["ticks"], state["in_call"] = 0, True
        call()
        state["in_call"] = False
        return state["ticks"]

    worker = threading.Thread(target=clock)
    previous, interval = torch.get_num_threads(), sys.getswitchinterval()
    torch.set_num_threads(1)  # the call on one thread; the worker has the other core
    sys.setswitchinterval(10.0)
    worker.start()
    try:
        started.wait()
        held = ticks_during(lambda: sum(range(3_000_000)))  # a builtin that keeps the GIL
        released = ticks_during(lambda: compiled.spiking_logits(*args))  # 16 draws: hundreds of ticks
    finally:
        stop.set()
        worker.join()
        sys.setswitchinterval(interval)
        torch.set_num_threads(previous)
    assert held == 0, "the count is not what the test assumes: a thread holding the GIL let the worker run"
    assert released > 10, released


@pytest.mark.parametrize("options", SPIKING + TANH, ids=lambda o: "-".join(o.values()))
def test_cpp_loop_is_exact_for_a_larger_network(compiled, monkeypatch, options):
    # products of 300 terms: a BLAS may split a long sum into blocks, as torch.bmm then does too
    model = network(hidden=300, threshold=0.5, **options)
    x = events(33, 30, rate=0.1, seed=5)
    weights = draws_of(model, 2, scale=0.2, seed=6)
    python = logits_with("python", monkeypatch, model, weights, x)
    assert torch.equal(logits_with("cpp", monkeypatch, model, weights, x), python)


@pytest.mark.parametrize("batch", [9, 1])  # one window: products under bmm's 400 multiply-adds
@pytest.mark.parametrize("options", [SPIKING[0], TANH[0]], ids=lambda o: "-".join(o.values()))
def test_cpp_loop_with_shared_weights_draws_over_two_dimensions_and_another_threshold(compiled, monkeypatch,
                                                                                       options, batch):
    model = network(hidden=30, threshold=0.7, **options)
    x = analog(batch, 50, seed=3)  # graded: the input's product too
    stacked = draws_of(model, 3, scale=0.3, seed=4)
    # (weights, whether the C++ loop takes them): Python's loop multiplies a W_rec or W_out shared
    # by the draws with all the draws' rows at once, which no product of one draw's rows need match
    cases = [
        ({}, True),  # no draws: the clean network
        ({"w_rec": stacked["w_rec"], "w_out": stacked["w_out"]}, True),  # W_in shared: the input's product
        ({"w_rec": stacked["w_rec"][:2, None], "w_out": stacked["w_out"]}, True),  # (2, 1, ...) and (3, ...)
        ({"w_rec": stacked["w_rec"]}, False),  # W_out shared
    ]
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for weights, cpp_loop in cases:
            python = logits_with("python", monkeypatch, model, weights, x)
            calls = []
            monkeypatch.setattr(native, "_module", recording(compiled, calls))
            cpp = logits_with("cpp", monkeypatch, model, weights, x)
            monkeypatch.setattr(native, "_module", compiled)
            assert len(calls) == (1 if cpp_loop and uses_the_cpp_loop(options) else 0), weights.keys()
            assert torch.equal(cpp, python), weights.keys()
    finally:
        torch.set_num_threads(previous)
    assert python.shape == (3, batch, 2)


def test_the_loop_refuses_events_it_cannot_add_exactly(compiled):
    weights = [torch.zeros(1, 4, 5), torch.zeros(1, 5, 5), torch.zeros(1, 5, 2)]
    constants = (torch.full((5,), 0.5), torch.full((5,), 0.5), torch.full((2,), 0.5), torch.full((2,), 0.5),
                 1.0, True, True, False, True, True, True, False)
    three = torch.zeros(2, 3, 4)
    three[1, 2, :3] = 1.0
    with pytest.raises(RuntimeError, match="binary events, at most two per window and step"):
        compiled.spiking_logits(three, *weights, *constants, True)
    assert compiled.spiking_logits(three, *weights, *constants, False).shape == (1, 2, 2)


def test_torch_rounds_the_updates_as_the_loop_does_with_its_vectorised_kernels():
    # AVX2 and AVX-512 kernels fuse addcmul's and lerp's multiply-adds, as the loop does
    assert torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512") or \
        spiking_loop.updates_disagreement() is None


@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"),
                    reason="the portable kernels are what this process runs already")
def test_torchs_portable_kernels_fail_the_updates_check():
    # ATEN_CPU_CAPABILITY=default: torch's kernels without AVX2 multiply and add apart, and the
    # loop's logits then differed from Python's; a process of its own (the capability is chosen
    # when torch loads), no build needed
    import os
    import subprocess
    import sys

    script = ("from memristor_mat.models import spiking_loop; import torch; "
              "print(torch.backends.cpu.get_cpu_capability()); print(spiking_loop.updates_disagreement())")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ATEN_CPU_CAPABILITY": "default"})
    assert done.returncode == 0, done.stderr
    capability, reason = done.stdout.splitlines()
    assert capability == "DEFAULT"
    assert reason.startswith("torch's addcmul gave 1 of 1 elements another value than one fused multiply-add")


def test_unfused_updates_keep_the_spiking_networks_on_pythons_loop(compiled, monkeypatch, caplog):
    def unfused(input, tensor1, tensor2, *, value=1, out=None):  # the product rounded, then the sum
        result = torch.add(input, torch.mul(tensor1, tensor2), alpha=value)
        return result if out is None else out.copy_(result)

    monkeypatch.setattr(torch, "addcmul", unfused)
    monkeypatch.setattr(spiking_loop._updates_agreement, "reasons", {})
    with caplog.at_level(logging.INFO, logger="memristor_mat.models.spiking_loop"):
        assert spiking_loop.evaluation_module(spiking=True) is None
        assert spiking_loop.evaluation_module(spiking=False) is None
    assert "Python's loop evaluates the spiking networks" in caplog.text and "fused multiply-add" in caplog.text
    assert spiking_loop.evaluator().startswith("Python's loop evaluates the spiking networks: the C++ library's")

    # another library (checked anew) under the same kernels: Python's loop evaluates
    model = network(hidden=20, dynamics="original")
    weights = draws_of(model, 2, scale=0.2, seed=2)
    monkeypatch.setattr(native, "_module", type("Refused", (), {
        "spiking_logits": staticmethod(lambda *a: pytest.fail("the C++ loop ran"))}))
    assert logits_with("auto", monkeypatch, model, weights, events(5, 20, rate=0.1, seed=1)).shape == (2, 5, 2)


def sum_in_index_order(spikes, w):
    """spikes (count, rows, size) of 0 or 1 times w (count, size, classes): each entry W's rows of the
    spiking neurons added one at a time in float32, in index order, from +0 (numpy scalars)."""
    import numpy as np

    out = np.zeros((*spikes.shape[:2], w.shape[2]), dtype=np.float32)
    for k, i in np.ndindex(*spikes.shape[:2]):
        for c in range(w.shape[2]):
            total = np.float32(0.0)
            for j in np.flatnonzero(spikes[k, i].numpy()):
                total = np.float32(total + w[k, j, c].item())
            out[k, i, c] = total
    return torch.from_numpy(out)


def test_the_readout_sum_adds_the_spiking_rows_in_index_order(compiled):
    g = torch.Generator().manual_seed(3)
    spikes = (torch.rand((3, 7, 130), generator=g) < 0.3).float()  # 130: past two 64-neuron words
    spikes[0, 0] = 0.0  # a window without a spike: +0
    w = torch.randn((3, 130, 2), generator=g) * torch.exp2(-20 * torch.rand((3, 130, 2), generator=g))
    w[0, :, 0] = -w[0, :, 0].abs()
    ours = compiled.spike_projection(spikes, w)
    assert torch.equal(ours.view(torch.int32), sum_in_index_order(spikes, w).view(torch.int32))
    assert not torch.signbit(ours[0, 0, 0])
    with pytest.raises(RuntimeError, match="spikes must be 0 or 1"):
        compiled.spike_projection(spikes * 0.5, w)
    w[1, 4, 1] = float("inf")
    with pytest.raises(RuntimeError, match="w must be finite"):
        compiled.spike_projection(spikes, w)


class _OtherOrder:
    """A library whose products of spikes sum in another order, or get a zero's sign wrong."""

    def __init__(self, compiled, how):
        self.compiled, self.how = compiled, how

    def spike_projection(self, spikes, w):
        if self.how == "float64":
            return torch.bmm(spikes.double(), w.double()).float()
        if self.how == "reversed":
            return self.compiled.spike_projection(spikes.flip(-1), w.flip(-2))
        if self.how == "two lanes":
            return (self.compiled.spike_projection(spikes[..., ::2], w[:, ::2])
                    + self.compiled.spike_projection(spikes[..., 1::2], w[:, 1::2]))
        silent = (spikes.sum(-1, keepdim=True) == 0) & (w < 0).all(-2, keepdim=True)  # a sum from the first term
        return torch.where(silent, -0.0, self.compiled.spike_projection(spikes, w))


@pytest.mark.parametrize("how", ["float64", "reversed", "two lanes", "from the first term"])
@pytest.mark.parametrize("rows, columns, draws", [(1, 2, 1), (100, 2, 5), (100, 102, 5)])
def test_the_spike_product_check_finds_another_order_of_summation(compiled, how, rows, columns, draws):
    assert spiking_loop.spike_product_disagreement(_OtherOrder(compiled, how), rows, 100, columns, draws) is not None


@needs_the_loop
@pytest.mark.parametrize("options", SPIKING, ids=lambda o: "-".join(o.values()))
def test_a_product_of_spikes_the_check_refuses_is_a_product(compiled, monkeypatch, caplog, options):
    monkeypatch.setattr(spiking_loop, "spike_product_disagreement", lambda *a: "a product in blocks")
    monkeypatch.setattr(spiking_loop, "_spike_product_agreements", {})
    model = network(**options)
    x = events(20, 60, rate=0.1, seed=1)
    weights = draws_of(model, 2, scale=0.2, seed=2)
    python = logits_with("python", monkeypatch, model, weights, x)
    calls = []
    monkeypatch.setattr(native, "_module", recording(compiled, calls))
    with caplog.at_level(logging.INFO, logger="memristor_mat.models.spiking_loop"):
        assert torch.equal(logits_with("cpp", monkeypatch, model, weights, x), python)
    assert calls == [(False, False, True)]
    assert "takes torch's product of 20 x 100 spikes and 100 x 2 weights (2 draws)" in caplog.text
    assert "a product in blocks" in spiking_loop.evaluator()


@pytest.mark.parametrize("options", SPIKING, ids=lambda o: "-".join(o.values()))
def test_a_draw_with_weights_that_are_not_finite_takes_the_product(compiled, monkeypatch, options):
    # a silent neuron's 0 x inf is NaN in the product, and a sum of the spiking rows would leave it
    # out: W_out for the readout, W_rec too for the normalised network's spike recurrence
    model = network(hidden=30, **options)
    x = events(9, 60, rate=0.1, seed=3)
    weights = draws_of(model, 4, scale=0.2, seed=4)
    weights["w_out"][1, 7, 0] = float("inf")
    weights["w_out"][2, 3, 1] = float("nan")
    weights["w_rec"][3, 4, 9] = float("inf")
    python, cpp = both_loops_on_one_thread(monkeypatch, model, weights, x)
    assert python[1:3].isnan().all(dim=-2).any(dim=-1).all() and not python[0].isnan().any()
    torch.testing.assert_close(cpp, python, rtol=0, atol=0, equal_nan=True)  # a NaN's sign bit is either


@pytest.mark.parametrize("classes, hidden", [(5, 30), (8, 30), (2, 1)])
def test_other_readout_shapes_give_the_python_loops_logits(compiled, monkeypatch, classes, hidden):
    # five classes: MKL sums out of index order here (the check keeps the product); eight: in
    # order; one hidden neuron: the loop keeps the product (torch multiplies)
    torch.manual_seed(0)
    model = RecurrentSNN(4, hidden, classes, threshold=0.5 if hidden > 1 else 0.02, variability_seed=None,
                         dynamics="original").eval()
    x = events(17, 60, rate=0.2, seed=5)
    weights = draws_of(model, 2, scale=0.2, seed=6)
    python, cpp = both_loops_on_one_thread(monkeypatch, model, weights, x)
    assert torch.equal(cpp, python)
    assert spike_count(model, weights, x) > 0


def test_the_loop_applies_to_float32_cpu_with_a_draw_per_thread(monkeypatch):
    x, w = torch.zeros(2, 5, 4), torch.zeros(4, 3)
    monkeypatch.setenv(native.ENVIRONMENT_VARIABLE, "auto")
    threads = torch.get_num_threads()
    assert spiking_loop.applies(x, (w,), draws=threads)
    assert not spiking_loop.applies(x.double(), (w.double(),), draws=threads)
    if threads > 1:
        assert not spiking_loop.applies(x, (w,), draws=threads - 1)
    monkeypatch.setenv(native.ENVIRONMENT_VARIABLE, "python")
    assert not spiking_loop.applies(x, (w,), draws=threads)


def test_a_bad_choice_is_named(monkeypatch):
    monkeypatch.setenv(native.ENVIRONMENT_VARIABLE, "fast")
    with pytest.raises(ValueError, match="MEMRISTOR_MAT_NATIVE='fast'.*auto.*python.*cpp"):
        native.choice()


def test_the_former_variable_still_chooses_where_the_new_one_is_unset(monkeypatch):
    monkeypatch.delenv(native.ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.setenv(native.FORMER_ENVIRONMENT_VARIABLE, "python")
    assert native.choice() == "python"
    assert native.module() is None and spiking_loop.training_module(torch.zeros(1)) is None
    monkeypatch.setenv(native.FORMER_ENVIRONMENT_VARIABLE, "fast")
    with pytest.raises(ValueError, match="MEMRISTOR_MAT_SPIKING_LOOP='fast'"):
        native.choice()
    monkeypatch.setenv(native.ENVIRONMENT_VARIABLE, "auto")  # the new name wins
    assert native.choice() == "auto"


@pytest.mark.parametrize("environ", ["CPython's", "without encoded names", "replaced by a dict"])
def test_the_choice_follows_every_change_of_the_variables(monkeypatch, environ):
    # choice() parses the variables again only when os.environ's entries are other objects than at its
    # last call (and reads os.environ each time where it has no dictionary of them): every change is seen
    if environ == "without encoded names":
        monkeypatch.setattr(native, "_ENCODED_NAMES", None)
    elif environ == "replaced by a dict":
        monkeypatch.setattr(os, "environ", dict(os.environ))
    monkeypatch.delenv(native.ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.delenv(native.FORMER_ENVIRONMENT_VARIABLE, raising=False)
    sequence = [(native.ENVIRONMENT_VARIABLE, "python", "python"), (native.ENVIRONMENT_VARIABLE, "CPP ", "cpp"),
                (native.ENVIRONMENT_VARIABLE, "cpp", "cpp"), (native.ENVIRONMENT_VARIABLE, None, "auto"),
                (native.FORMER_ENVIRONMENT_VARIABLE, "python", "python"), (native.ENVIRONMENT_VARIABLE, "", "auto"),
                (native.FORMER_ENVIRONMENT_VARIABLE, None, "auto"), (native.ENVIRONMENT_VARIABLE, "python", "python")]
    for name, value, expected in sequence:
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
        assert native.choice() == expected == native.choice(), (name, value)
    monkeypatch.setenv(native.ENVIRONMENT_VARIABLE, "x")
    for _ in range(2):  # a bad value is named at every call, not once
        with pytest.raises(ValueError, match="MEMRISTOR_MAT_NATIVE='x'"):
            native.choice()


def test_a_failed_build_warns_once_and_falls_back_or_raises_under_cpp(no_compiler, monkeypatch):
    monkeypatch.setenv(native.ENVIRONMENT_VARIABLE, "auto")
    model = network(hidden=20)
    x = events(4, 30, rate=0.1, seed=0)
    weights = draws_of(model, torch.get_num_threads(), scale=0.1, seed=0)  # a draw per thread: it applies
    with pytest.warns(RuntimeWarning, match="did not build .*c\\+\\+: not found.*MEMRISTOR_MAT_NATIVE=python"):
        first = logits_with("auto", monkeypatch, model, weights, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once: the build is not tried again
        assert torch.equal(logits_with("auto", monkeypatch, model, weights, x), first)
    monkeypatch.setenv(native.ENVIRONMENT_VARIABLE, "cpp")
    with pytest.raises(RuntimeError, match="MEMRISTOR_MAT_NATIVE=cpp, but .*did not build: RuntimeError: "
                                           "Error building extension"):
        native.module()


@needs_the_loop
def test_a_tanh_that_depends_on_an_elements_place_keeps_the_twin_on_pythons_loop(compiled, monkeypatch, caplog):
    real = torch.tanh

    def tail_rounded(x):  # a kernel whose tail (past the last 16 elements) rounds up a bit
        y = real(x).flatten()
        tail = y.numel() % 16
        if tail:
            y[-tail:] = torch.nextafter(y[-tail:], torch.full_like(y[-tail:], 2.0))
        return y.view(x.shape)

    monkeypatch.setattr(torch, "tanh", tail_rounded)
    monkeypatch.setattr(spiking_loop._tanh_agreement, "reasons", {})
    with caplog.at_level(logging.INFO, logger="memristor_mat.models.spiking_loop"):
        assert spiking_loop.evaluation_module(spiking=False) is None
    assert "Python's loop evaluates the tanh twin" in caplog.text and "elements other bits at offset" in caplog.text
    assert spiking_loop.evaluation_module(spiking=True) is compiled  # the spiking networks keep the C++ loop
    assert spiking_loop.evaluator().startswith("Python's loop evaluates the tanh twin: the C++ library's would not")

    model = network(hidden=20, neuron="tanh", dynamics="original")
    weights = draws_of(model, 2, scale=0.2, seed=2)
    monkeypatch.setattr(native, "_module", type("Refused", (), {
        "spiking_logits": staticmethod(lambda *a: pytest.fail("the C++ loop ran for the tanh twin"))}))
    logits = logits_with("auto", monkeypatch, model, weights, events(5, 20, rate=0.1, seed=1))
    assert logits.shape == (2, 5, 2)
