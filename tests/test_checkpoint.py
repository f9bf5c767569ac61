"""Tests of memristor_mat.checkpoint: round trip, safe loading, clear errors, atomic writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from memristor_mat import checkpoint as checkpoint_module
from memristor_mat.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from memristor_mat.models import build_model

ARCH_OPTIONS = {"input_size": 16, "hidden_sizes": [8], "num_classes": 3}


def small_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("mlp", **ARCH_OPTIONS)


def payload_of(model: torch.nn.Module, **extra) -> dict:
    return {
        "arch": "mlp",
        "arch_options": dict(ARCH_OPTIONS),
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        **extra,
    }


@pytest.fixture
def good_checkpoint(tmp_path) -> Path:
    path = tmp_path / "model.pt"
    save_checkpoint(path, payload_of(small_model()))
    return path


# --------------------------------------------------------------------------- round trip


def test_round_trip_rebuilds_identical_model(tmp_path):
    model = small_model(seed=3)
    path = tmp_path / "nested" / "dir" / "model.pt"
    history = [{"epoch": 1, "loss": 0.5, "accuracy": 0.9}]
    save_checkpoint(path, payload_of(model, method="mat", sigma_train=0.2, seed=14, history=history,
                                     provenance={"git_commit": "abc"}))
    loaded = load_checkpoint(path)
    assert loaded["format_version"] == FORMAT_VERSION
    assert loaded["method"] == "mat" and loaded["sigma_train"] == 0.2 and loaded["seed"] == 14
    assert loaded["history"] == history
    assert loaded["provenance"] == {"git_commit": "abc"}

    rebuilt = model_from_checkpoint(loaded, path)
    original, restored = model.state_dict(), rebuilt.state_dict()
    assert original.keys() == restored.keys()
    for key in original:
        assert torch.equal(original[key], restored[key]), key
    # and it computes the same function
    x = torch.randn(5, 16)
    model.eval(), rebuilt.eval()
    with torch.no_grad():
        assert torch.equal(model(x), rebuilt(x))


def test_rebuilt_model_computes_with_the_checkpoints_weights(tmp_path):
    # weights no initialisation gives, and an output worked out by hand: a rebuild that kept its
    # fresh initialisation (or loaded only part of the state) cannot match
    model = small_model()
    state = {name: torch.full_like(value, 0.5 if name == "layers.1.weight" else 0.25)
             for name, value in model.state_dict().items()}
    path = tmp_path / "model.pt"
    save_checkpoint(path, {"arch": "mlp", "arch_options": dict(ARCH_OPTIONS), "state_dict": state})
    rebuilt = model_from_checkpoint(load_checkpoint(path), path).eval()
    # 16 ones -> 8 hidden units of 16 * 0.5 = 8 (ReLU keeps them) -> 3 outputs of 8 * 8 * 0.25 = 16
    with torch.no_grad():
        assert torch.equal(rebuilt(torch.ones(2, 16)), torch.full((2, 3), 16.0))


def test_file_loads_with_weights_only(good_checkpoint):
    raw = torch.load(good_checkpoint, weights_only=True)
    assert isinstance(raw, dict)
    assert raw["format_version"] == FORMAT_VERSION
    assert raw["arch"] == "mlp"
    assert all(isinstance(v, torch.Tensor) for v in raw["state_dict"].values())


def test_written_file_is_world_readable(good_checkpoint):
    assert stat.S_IMODE(os.stat(good_checkpoint).st_mode) == 0o644


def test_save_rejects_incomplete_payload(tmp_path):
    path = tmp_path / "model.pt"
    with pytest.raises(ValueError, match="state_dict"):
        save_checkpoint(path, {"arch": "mlp", "arch_options": ARCH_OPTIONS})
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_load_maps_to_requested_device(good_checkpoint):
    # the file holds CPU tensors: only another device shows that map_location is passed on
    loaded = load_checkpoint(good_checkpoint, map_location="meta")
    assert loaded["state_dict"] and all(v.device.type == "meta" for v in loaded["state_dict"].values())
    assert all(v.device.type == "cpu" for v in load_checkpoint(good_checkpoint)["state_dict"].values())  # the default


# --------------------------------------------------------------------------- bad files


def _write_truncated(path: Path, good: Path) -> None:
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _write_garbage(path: Path, good: Path) -> None:
    path.write_bytes(b"this is not a checkpoint \x00\x01\x02" * 20)


def _write_empty(path: Path, good: Path) -> None:
    path.write_bytes(b"")


def _write_list(path: Path, good: Path) -> None:
    torch.save([1, 2, 3], path)


def _write_without_state_dict(path: Path, good: Path) -> None:
    torch.save({"format_version": FORMAT_VERSION, "arch": "mlp", "arch_options": ARCH_OPTIONS}, path)


def _write_wrong_version(path: Path, good: Path) -> None:
    payload = torch.load(good, weights_only=True)
    payload["format_version"] = FORMAT_VERSION + 1
    torch.save(payload, path)


def _write_without_version(path: Path, good: Path) -> None:
    payload = torch.load(good, weights_only=True)
    del payload["format_version"]
    torch.save(payload, path)


class _Pickled:
    pass


def _write_pickled_object(path: Path, good: Path) -> None:
    payload = torch.load(good, weights_only=True)
    payload["extra"] = _Pickled()
    torch.save(payload, path)


@pytest.mark.parametrize(
    "write, message",
    [
        pytest.param(_write_truncated, "unreadable", id="truncated"),
        pytest.param(_write_garbage, "unreadable", id="garbage"),
        pytest.param(_write_empty, "unreadable", id="empty"),
        pytest.param(_write_list, "list", id="list"),
        pytest.param(_write_without_state_dict, "state_dict", id="missing-state-dict"),
        pytest.param(_write_without_version, "format_version", id="missing-format-version"),
        pytest.param(_write_wrong_version, "format version", id="wrong-format-version"),
        pytest.param(_write_pickled_object, "unreadable", id="pickled-code-refused"),
    ],
)
def test_bad_file_raises_checkpoint_error_with_path(tmp_path, good_checkpoint, write, message):
    path = tmp_path / "bad" / "model.pt"
    path.parent.mkdir()
    write(path, good_checkpoint)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_missing_file_raises_checkpoint_error_with_path(tmp_path):
    path = tmp_path / "absent" / "model.pt"
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert "does not exist" in str(info.value)


def test_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="is a directory, not a checkpoint file"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("entry, value, message", [
    ("arch_options", [16, 8, 3], "mapping"),
    ("state_dict", torch.zeros(3), "weights do not fit"),
], ids=["options-not-a-mapping", "state-dict-a-tensor"])
def test_garbled_entries_raise_checkpoint_error_with_path(tmp_path, entry, value, message):
    path = tmp_path / "model.pt"
    payload = payload_of(small_model())
    payload[entry] = value
    save_checkpoint(path, payload)
    with pytest.raises(CheckpointError, match=message) as info:
        model_from_checkpoint(load_checkpoint(path), path)
    assert str(path) in str(info.value)


def test_a_format_version_that_is_no_number_is_refused(tmp_path, good_checkpoint):
    payload = torch.load(good_checkpoint, weights_only=True)
    payload["format_version"] = torch.tensor([1, 2])
    torch.save(payload, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="format version"):
        load_checkpoint(tmp_path / "model.pt")


@pytest.mark.parametrize(
    "arch_options",
    [
        {"input_size": 16, "hidden_sizes": [9], "num_classes": 3},
        {"input_size": 16, "hidden_sizes": [8, 8], "num_classes": 3},
        {"input_size": 17, "hidden_sizes": [8], "num_classes": 3},
        {"input_size": 16, "hidden_sizes": [8], "num_classes": 3, "bias": True},
    ],
    ids=["wider", "deeper", "other-input", "with-bias"],
)
def test_state_dict_not_fitting_architecture(tmp_path, arch_options):
    path = tmp_path / "model.pt"
    payload = payload_of(small_model())
    payload["arch_options"] = arch_options
    save_checkpoint(path, payload)
    loaded = load_checkpoint(path)
    with pytest.raises(CheckpointError) as info:
        model_from_checkpoint(loaded, path)
    assert str(path) in str(info.value)
    assert "mlp" in str(info.value)


# --------------------------------------------------------------------------- atomic write


def test_failed_save_keeps_previous_checkpoint_and_leaves_no_temp(tmp_path, good_checkpoint, monkeypatch):
    before = good_checkpoint.read_bytes()
    calls = []

    def failing_save(obj, f, *args, **kwargs):
        calls.append(f)
        Path(f).write_bytes(b"PK\x03\x04 half a zip file")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(checkpoint_module.torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(good_checkpoint, payload_of(small_model(seed=5)))

    assert calls, "torch.save was not called"
    assert Path(calls[0]) != good_checkpoint, "torch.save wrote to the target path directly"
    assert Path(calls[0]).parent == good_checkpoint.parent
    assert good_checkpoint.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [good_checkpoint.name]
    monkeypatch.undo()
    # the old checkpoint is still a good one
    model_from_checkpoint(load_checkpoint(good_checkpoint), good_checkpoint)


def test_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    def failing_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint_module.torch, "save", failing_save)
    path = tmp_path / "out" / "model.pt"
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, payload_of(small_model()))
    assert not path.exists()
    assert list(path.parent.iterdir()) == []


def test_save_overwrites_existing_checkpoint(tmp_path, good_checkpoint):
    new_model = small_model(seed=7)
    save_checkpoint(good_checkpoint, payload_of(new_model))
    rebuilt = model_from_checkpoint(load_checkpoint(good_checkpoint))
    for key, value in new_model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [good_checkpoint.name]


def test_atomic_write_removes_the_temporary_file_of_a_killed_earlier_write(tmp_path):
    # SIGKILL runs no `finally`: a killed writer leaves ".<name>.<random>.tmp" beside the target
    from memristor_mat.io import write_text_atomic

    target = tmp_path / "summary.csv"
    stale = tmp_path / ".summary.csv.abc123.tmp"
    stale.write_text("half a tab")
    other = tmp_path / ".other.csv.abc123.tmp"  # another target's: not ours to remove
    other.write_text("x")
    write_text_atomic(target, "a,b\n")
    assert target.read_text() == "a,b\n"
    assert not stale.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.csv.abc123.tmp", "summary.csv"]


def test_atomic_write_onto_a_directory_is_refused_leaving_it_as_it_was(tmp_path):
    from memristor_mat.io import write_text_atomic

    target = tmp_path / "summary.csv"
    target.mkdir()
    (target / "kept.txt").write_text("x")
    with pytest.raises(ValueError, match=f"{target} is a directory; give the path of the file to write"):
        write_text_atomic(target, "a,b\n")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["kept.txt", "summary.csv"]  # no temporary file left
