"""torch.randn's normals from the C++ library (memristor_mat.normals): the same numbers and the
same generator state after them, bit for bit, in any order with torch's own draws; torch's kernel
wherever the library does not reach or its draws would differ."""

import logging

import pytest
import torch

from memristor_mat import native, normals
from conftest import require_agreement


@pytest.fixture
def library_calls(compiled, monkeypatch):
    """The sizes the library draws in the test (the library's draws agreeing with torch's here)."""
    require_agreement(normals._library(), compiled, "normals")
    calls = []

    class Recorded:
        def standard_normal_(self, tensor, generator):
            calls.append(tensor.numel())
            compiled.standard_normal_(tensor, generator)

    monkeypatch.setattr(normals, "_library", lambda: Recorded())
    return calls


def bits(x):
    return x.view(torch.int32)


def test_the_library_draws_torchs_numbers_on_this_machine(compiled):
    # x86 builds with AVX2 compile torch's own transform to torch's arithmetic: should this fail,
    # the numbers stay right (torch draws) but MAT loses the speed, so it is a failure here
    assert torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512") or normals._disagreement(compiled) is None


SIZES = [16, 17, 31, 32, 100, 623, 624, 625, 1247, 1248, 1249, 1280, 100_352, 100_000, 1_000_003]


@pytest.mark.parametrize("seed", [0, 1, 14, 2**40 + 7])
def test_the_librarys_draws_are_torchs_in_any_order_with_torchs(compiled, seed):
    ours, theirs = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    for k, size in enumerate(SIZES):
        shape = (size,) if k % 3 else (1, size) if k % 2 else (size, 1)
        drawn = torch.empty(shape)
        compiled.standard_normal_(drawn, ours)
        assert torch.equal(bits(drawn), bits(torch.randn(shape, generator=theirs)))
        assert torch.equal(ours.get_state(), theirs.get_state())
        # torch's other draws after ours, from the state ours left: its small normals (a cached
        # second Box-Muller value), uniforms, integers
        small = int(torch.randint(1, 16, (1,), generator=theirs))
        assert int(torch.randint(1, 16, (1,), generator=ours)) == small
        assert torch.equal(torch.randn(small, generator=ours), torch.randn(small, generator=theirs))
        assert torch.equal(torch.rand(7, generator=ours), torch.rand(7, generator=theirs))


def test_randn_draws_with_the_library_from_its_threshold(library_calls):
    sizes = [normals.MIN_ELEMENTS - 1, normals.MIN_ELEMENTS, 100_352, 1280]
    ours, theirs = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for size in sizes:
        assert torch.equal(bits(normals.randn((size,), generator=ours)), bits(torch.randn(size, generator=theirs)))
        assert torch.equal(ours.get_state(), theirs.get_state())
    assert library_calls == [normals.MIN_ELEMENTS, 100_352]


def test_in_place_and_the_default_generator(library_calls):
    torch.manual_seed(5)
    expected = torch.randn(3, 4096)
    after = torch.rand(3)
    torch.manual_seed(5)
    filled = normals.normal_(torch.full((3, 4096), 7.0))
    assert torch.equal(bits(filled), bits(expected)) and torch.equal(torch.rand(3), after)
    g = torch.Generator().manual_seed(9)
    slot = torch.empty(2, 5000)
    assert normals.normal_(slot, g) is slot
    assert torch.equal(slot, torch.empty(2, 5000).normal_(generator=torch.Generator().manual_seed(9)))
    assert library_calls == [3 * 4096, 10_000]


def test_what_the_library_does_not_take_is_torchs(monkeypatch):
    monkeypatch.setattr(normals, "_library", lambda: pytest.fail("the library should not be asked"))
    cases = [
        lambda: torch.empty(normals.MIN_ELEMENTS - 1),
        lambda: torch.empty(5000, dtype=torch.float64),
        lambda: torch.empty(5000, dtype=torch.bfloat16),
        lambda: torch.empty(100, 50).t(),  # not contiguous
        lambda: torch.empty(5000, requires_grad=True),
    ]
    for make in cases:
        target, reference = make(), make()
        g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        with torch.no_grad():
            normals.normal_(target, g1)
            reference.normal_(generator=g2)
        assert torch.equal(target, reference) and torch.equal(g1.get_state(), g2.get_state())
    assert normals.randn((4, 10), generator=torch.Generator().manual_seed(4), dtype=torch.float64).dtype == torch.float64


def test_without_the_library_torch_draws(monkeypatch):
    monkeypatch.setenv(native.ENVIRONMENT_VARIABLE, "python")  # never built
    monkeypatch.setattr(native, "_loaded", lambda mode: pytest.fail("nothing should be built"))
    g = torch.Generator().manual_seed(6)
    assert torch.equal(normals.randn((100, 100), generator=g), torch.randn(100, 100, generator=torch.Generator().manual_seed(6)))


class Rounding:
    """A library whose draws are off by one unit in the last place at one element, or that leaves
    the generator one step further on."""

    def __init__(self, compiled, numbers=True):
        self.compiled, self.numbers = compiled, numbers

    def standard_normal_(self, tensor, generator):
        self.compiled.standard_normal_(tensor, generator)
        if self.numbers:
            tensor.view(torch.int32)[-1] += 1
        else:
            torch.rand(1, generator=generator)


@pytest.mark.parametrize("numbers", [True, False])
def test_a_library_that_would_change_the_numbers_is_not_used(compiled, monkeypatch, caplog, numbers):
    wrong = Rounding(compiled, numbers)
    monkeypatch.setattr(native, "cpu_module", lambda *tensors: wrong)
    monkeypatch.setattr(normals._agreement, "reasons", {})
    with caplog.at_level(logging.INFO, logger="memristor_mat.normals"):
        drawn = normals.randn((80, 80), generator=torch.Generator().manual_seed(8))
    assert torch.equal(drawn, torch.randn(80, 80, generator=torch.Generator().manual_seed(8)))
    reason = "normals differ from torch.randn's" if numbers else "generator's state after 16 normals differs"
    assert "torch.randn draws the normals" in caplog.text and reason in caplog.text
    caplog.clear()
    normals.randn((80, 80))  # checked once per library: no second check, no second message
    assert list(normals._agreement.reasons) == [id(wrong)] and caplog.text == ""
    assert normals.drawer().startswith("torch.randn draws the normals: the C++ library's would not be the same")


def test_the_library_names_what_it_cannot_take(compiled):
    with pytest.raises(RuntimeError, match="contiguous float32 CPU tensors of at least 16 elements"):
        compiled.standard_normal_(torch.zeros(100, dtype=torch.float64), None)
    with pytest.raises(RuntimeError, match="at least 16 elements"):
        compiled.standard_normal_(torch.zeros(15), None)
