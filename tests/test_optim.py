"""torch.optim.Adam's update from the C++ library (memristor_mat.optim): the same parameters and the
same state as torch's, bit for bit, over whole trainings; torch's update wherever the library does
not reach or its numbers would differ."""

import copy
import logging

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from memristor_mat import native, optim, training
from conftest import require_agreement


@pytest.fixture
def library_calls(compiled, monkeypatch):
    """The sizes of the tensors the library updates in the test (its update agreeing with torch's)."""
    require_agreement(optim._library(), compiled, "Adam")
    calls = []

    class Recorded:
        def adam_steps_(self, params, *args):
            taken = compiled.adam_steps_(params, *args)
            if taken:
                calls.extend(param.numel() for param in params)
            return taken

    monkeypatch.setattr(optim, "_library", lambda: Recorded())
    return calls


def bits(x):
    return x.detach().view(torch.int32)


def mlp(bias=False):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(784, 128, bias=bias), nn.ReLU(), nn.Linear(128, 10, bias=bias))


def digits_like(n=320):
    """Images whose first 150 pixels are 0 in every one (as MNIST's borders): their weights'
    gradients and second moments stay exactly 0."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 784, generator=g)
    x[:, :150] = 0
    return x, torch.randint(0, 10, (n,), generator=g)


def train(model, optimizer, epochs=2, scheduler=None, clip=None):
    x, y = digits_like()
    for _ in range(epochs):
        for start in range(0, len(y), 32):
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x[start:start + 32]), y[start:start + 32]).backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            if clip is not None:
                training.clip_weights(list(model.parameters()), clip)
    return model


def assert_same(ours, theirs, model_ours, model_theirs):
    for p, q in zip(model_ours.parameters(), model_theirs.parameters()):
        assert torch.equal(bits(p), bits(q))
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(ours.state[p][key], theirs.state[q][key]), key


def test_the_librarys_update_is_torchs_on_this_machine(compiled):
    # x86 builds with FMA compile the update to torch's arithmetic: should this fail, the numbers
    # stay right (torch updates) but the MLP's training loses the speed, so it is a failure here
    assert torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512") or optim._disagreement(compiled) is None


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("options", [{}, {"lr": 2e-3, "betas": (0.3, 0.5), "eps": 1e-6}])
def test_training_gives_torchs_adam_bit_for_bit(library_calls, threads, options):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        runs = []
        for factory in (optim.Adam, torch.optim.Adam):
            model = mlp(bias=True)
            optimizer = factory(model.parameters(), **options)
            # the original's MultiStepLR, stepped every batch, and its clipping (SPEC §2.1)
            scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [5, 10, 15], 0.5)
            runs.append((train(model, optimizer, scheduler=scheduler, clip=2.5), optimizer))
    finally:
        torch.set_num_threads(before)
    (model_ours, ours), (model_theirs, theirs) = runs
    assert_same(ours, theirs, model_ours, model_theirs)
    # every tensor of every step by the library: 4 tensors x 20 steps
    assert len(library_calls) == 80 and sorted(set(library_calls)) == [10, 128, 1280, 100_352]


def test_make_optimizer_gives_this_adam_with_torchs_options():
    optimizer = training.make_optimizer({"name": "Adam", "lr": 0.01, "betas": [0.8, 0.99]}, mlp().parameters())
    assert isinstance(optimizer, optim.Adam) and isinstance(optimizer, torch.optim.Adam)
    assert optimizer.param_groups[0]["lr"] == 0.01 and tuple(optimizer.param_groups[0]["betas"]) == (0.8, 0.99)
    with pytest.raises(ValueError, match="bad options"):
        training.make_optimizer({"name": "Adam", "learning_rate": 0.01}, mlp().parameters())


@pytest.mark.parametrize("first", ["ours", "torch's"])
def test_the_state_moves_between_torch_and_this_adam(library_calls, first):
    model = mlp()
    optimizer = (optim.Adam if first == "ours" else torch.optim.Adam)(model.parameters())
    train(model, optimizer, epochs=1)
    # a checkpoint written by one, continued by each
    continued = []
    for factory in (optim.Adam, torch.optim.Adam):
        copy_model = copy.deepcopy(model)
        other = factory(copy_model.parameters())
        other.load_state_dict(copy.deepcopy(optimizer.state_dict()))
        continued.append((train(copy_model, other, epochs=1), other))
    (model_ours, ours), (model_theirs, theirs) = continued
    assert_same(ours, theirs, model_ours, model_theirs)
    assert library_calls  # the library made this Adam's updates


def test_a_closure_is_evaluated_and_its_loss_returned(library_calls):
    results = []
    for factory in (optim.Adam, torch.optim.Adam):
        model = mlp()
        optimizer = factory(model.parameters())
        x, y = digits_like(32)

        def closure():
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss

        results.append((optimizer.step(closure), model))
    (loss_ours, model_ours), (loss_theirs, model_theirs) = results
    assert torch.equal(loss_ours, loss_theirs)
    assert all(torch.equal(p, q) for p, q in zip(model_ours.parameters(), model_theirs.parameters()))
    assert library_calls == [100_352, 1280]


# (options, how the parameters are made): each takes torch's update
UNSUPPORTED = {
    "amsgrad": ({"amsgrad": True}, None),
    "weight decay": ({"weight_decay": 1e-2}, None),
    "maximize": ({"maximize": True}, None),
    "foreach": ({"foreach": True}, None),
    "fused": ({"fused": True}, None),
    "a tensor lr": ({"lr": torch.tensor(1e-3)}, None),
    "float64": ({}, lambda model: model.double()),
    "a non-contiguous weight": ({}, lambda model: setattr(
        model[0], "weight", nn.Parameter(model[0].weight.detach().t().contiguous().t()))),
}


@pytest.mark.parametrize("case", list(UNSUPPORTED))
def test_what_the_library_does_not_take_is_torchs(library_calls, case):
    options, change = UNSUPPORTED[case]
    runs = []
    for factory in (optim.Adam, torch.optim.Adam):
        model = mlp()
        if change is not None:
            change(model)
        optimizer = factory(model.parameters(), **options)
        x, y = digits_like(64)
        for start in (0, 32):
            optimizer.zero_grad()
            inputs = x[start:start + 32].to(model[0].weight.dtype)
            nn.functional.cross_entropy(model(inputs), y[start:start + 32]).backward()
            optimizer.step()
        runs.append(model)
    assert all(torch.equal(p, q) for p, q in zip(runs[0].parameters(), runs[1].parameters()))
    assert library_calls == []  # the options sent it to torch, or the library took no tensor


def test_without_the_library_torch_updates(monkeypatch):
    monkeypatch.setenv(native.ENVIRONMENT_VARIABLE, "python")  # never built
    monkeypatch.setattr(native, "_loaded", lambda mode: pytest.fail("nothing should be built"))
    model_ours, model_theirs = mlp(), mlp()
    ours, theirs = optim.Adam(model_ours.parameters()), torch.optim.Adam(model_theirs.parameters())
    train(model_ours, ours, epochs=1)
    train(model_theirs, theirs, epochs=1)
    assert_same(ours, theirs, model_ours, model_theirs)
    assert optim.updater() == "torch makes Adam's update (the C++ library is not in use)"


@pytest.mark.parametrize("fused", [True, False])
def test_step_hooks_run_once_a_step(library_calls, monkeypatch, fused):
    torch.optim.Adam(mlp().parameters())  # torch now wraps torch.optim.Adam.step in its hooks too
    model = mlp()
    optimizer = optim.Adam(model.parameters(), amsgrad=not fused)
    calls = []
    optimizer.register_step_pre_hook(lambda *args: calls.append("pre"))
    optimizer.register_step_post_hook(lambda *args: calls.append("post"))
    global_hook = register_optimizer_step_pre_hook(lambda *args: calls.append("global"))
    try:
        train(model, optimizer, epochs=1)
    finally:
        global_hook.remove()
    assert calls == ["global", "pre", "post"] * 10
    assert len(library_calls) == (20 if fused else 0)


class Rounding:
    """A library whose update is off by one unit in the last place at one element."""

    def __init__(self, compiled):
        self.compiled = compiled

    def adam_steps_(self, params, *args):
        taken = self.compiled.adam_steps_(params, *args)
        params[-1].view(torch.int32)[-1] += 1
        return taken


def test_a_library_that_would_change_the_numbers_is_not_used(compiled, monkeypatch, caplog):
    wrong = Rounding(compiled)
    monkeypatch.setattr(native, "cpu_module", lambda *tensors: wrong)
    monkeypatch.setattr(optim._agreement, "reasons", {})
    model_ours, model_theirs = mlp(), mlp()
    ours, theirs = optim.Adam(model_ours.parameters()), torch.optim.Adam(model_theirs.parameters())
    with caplog.at_level(logging.INFO, logger="memristor_mat.optim"):
        train(model_ours, ours, epochs=1)
    train(model_theirs, theirs, epochs=1)
    assert_same(ours, theirs, model_ours, model_theirs)
    assert "torch makes Adam's update" in caplog.text and "1 of 1 elements of the parameter differ" in caplog.text
    assert caplog.text.count("torch makes Adam's update") == 1  # checked once per library
    assert list(optim._agreement.reasons) == [id(wrong)]
    assert optim.updater().startswith("torch makes Adam's update: the C++ library's would not be the same")


def test_the_library_takes_every_tensor_or_none(compiled):
    # a step of several tensors, one of which it cannot take: nothing is changed, and it says so
    def tensors(n, dtype=torch.float32):
        g = torch.Generator().manual_seed(n)
        return [torch.randn(n, generator=g).to(dtype) for _ in range(4)] + [torch.tensor(3.0)]

    scalars = ([1e-3], [0.9], [0.999], [1e-8])
    good = tensors(100)
    for bad in (tensors(100, torch.float64), [t.clone() for t in good[:1]] + [torch.zeros(99)] + good[2:],
                [torch.zeros(10, 10).t()] + [torch.zeros(10, 10)] * 3 + [torch.tensor(0.0)],
                good[:4] + [torch.tensor(0.0, dtype=torch.float64)]):
        before = [t.clone() for t in good + bad]
        lists = [[a, b] for a, b in zip(good, bad)]
        assert not compiled.adam_steps_(*lists, *(values * 2 for values in scalars))
        assert all(torch.equal(a, b) for a, b in zip(good + bad, before))
    assert compiled.adam_steps_(*([t] for t in good), *scalars) and good[4].item() == 4.0
    with pytest.raises(RuntimeError, match="as many gradients, moments, steps and scalars as parameters"):
        compiled.adam_steps_([good[0]], [good[1]], [good[2]], [good[3]], [good[4]], [1e-3, 1e-3], [0.9], [0.999],
                             [1e-8])


def test_a_step_the_library_does_not_take_is_torchs(library_calls, monkeypatch):
    # the groups' options ask for the library's update, but a gradient is not contiguous: torch's
    # update for the whole step, once
    runs = []
    for factory in (optim.Adam, torch.optim.Adam):
        model = mlp()
        optimizer = factory([{"params": [model[0].weight]}, {"params": [model[2].weight], "lr": 2e-3}])
        x, y = digits_like(32)
        nn.functional.cross_entropy(model(x), y).backward()
        model[2].weight.grad = model[2].weight.grad.t().contiguous().t()
        optimizer.step()
        runs.append((model, optimizer))
    (model_ours, ours), (model_theirs, theirs) = runs
    assert_same(ours, theirs, model_ours, model_theirs)
    assert library_calls == [] and ours.state[model_ours[0].weight]["step"].item() == 1.0


@pytest.mark.parametrize("profiled", [False, True])
def test_zero_grad_sets_the_gradients_to_none_or_zero(profiled):
    model = mlp()
    optimizer = optim.Adam(model.parameters())
    x, y = digits_like(32)
    for set_to_none in (False, True):
        nn.functional.cross_entropy(model(x), y).backward()
        if profiled:
            with torch.profiler.profile() as profile:
                optimizer.zero_grad(set_to_none=set_to_none)
            assert any(event.name.startswith("Optimizer.zero_grad#Adam") for event in profile.events())
        else:
            optimizer.zero_grad(set_to_none=set_to_none)
        for p in model.parameters():
            assert (p.grad is None) if set_to_none else torch.equal(p.grad, torch.zeros_like(p))


def test_a_profiler_still_sees_the_step(library_calls):
    # without a profiler or hooks the step runs without torch's wrapper; under one, with it
    model = mlp()
    optimizer = optim.Adam(model.parameters())
    x, y = digits_like(32)
    for profiled in (False, True):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        if profiled:
            with torch.profiler.profile() as profile:
                optimizer.step()
            assert any(event.name == "Optimizer.step#Adam.step" for event in profile.events())
        else:
            optimizer.step()
    assert len(library_calls) == 4 and optimizer.state[model[0].weight]["step"].item() == 2.0
