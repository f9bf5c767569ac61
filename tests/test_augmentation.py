"""Training-image augmentation (SPEC §3 CIFAR), devices, threads and mixed precision of training."""

import logging

import pytest
import torch

from memristor_mat import device as device_module
from memristor_mat.augmentation import augmented_batches, make_augmentation
from memristor_mat.device import select_device
from memristor_mat.settings import TrainingSettings
from memristor_mat.training import autocast_dtype, split_threads

CPU = torch.device("cpu")


def images(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, 3, 32, 32), generator=g), torch.arange(n)


@pytest.mark.parametrize("spec", [None, {}, {"horizontal_flip": False, "rotation_degrees": 0, "crop_padding": None}])
def test_no_augmentation_asked_gives_none(spec):
    assert make_augmentation(spec, (32, 32)) is None


@pytest.mark.parametrize("spec", [{"horizontal_flip": True}, {"rotation_degrees": 10}, {"crop_padding": 4},
                                  {"horizontal_flip": True, "rotation_degrees": 10, "crop_padding": 4}])
def test_augmentation_keeps_shape_and_range(spec):
    x, _ = images()
    transform = make_augmentation(spec, (32, 32))
    torch.manual_seed(0)
    out = torch.stack([transform(image) for image in x])
    assert out.shape == x.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, x)


def test_flip_only_gives_each_image_or_its_mirror_image():
    x, _ = images(40)
    transform = make_augmentation({"horizontal_flip": True}, (32, 32))
    torch.manual_seed(0)
    flipped = 0
    for image in x:
        out = transform(image)
        if torch.equal(out, image.flip(-1)):
            flipped += 1
        else:
            assert torch.equal(out, image)
    assert 5 < flipped < 35  # p = 0.5


def test_rotation_stays_within_the_configured_angle():
    # a thin vertical bar through the centre, rotated by at most 10 degrees, stays near the centre column
    x = torch.zeros(3, 32, 32)
    x[:, 4:28, 15:17] = 1.0
    transform = make_augmentation({"rotation_degrees": 10}, (32, 32))
    torch.manual_seed(0)
    for _ in range(20):
        out = transform(x)
        columns = out[0].nonzero()[:, 1].float()
        # tan(10 deg) * 12 rows from the centre = 2.1 columns
        assert columns.min() >= 15 - 3 and columns.max() <= 16 + 3


@pytest.mark.parametrize("spec, message", [({"flip": True}, "unknown augmentation"),
                                           ({"rotation_degrees": -1}, "rotation_degrees"),
                                           ({"crop_padding": -2}, "crop_padding")])
def test_bad_augmentation_is_named(spec, message):
    with pytest.raises(ValueError, match=message):
        make_augmentation(spec, (32, 32))


def epoch_batches(workers, epoch=0, seed=7):
    x, y = images(20)
    order = torch.randperm(20, generator=torch.Generator().manual_seed(epoch))
    transform = make_augmentation({"horizontal_flip": True, "rotation_degrees": 10, "crop_padding": 4}, (32, 32))
    return order, list(augmented_batches(x, y, order.split(6), transform, seed=seed, epoch=epoch, workers=workers))


def test_augmented_batches_do_not_depend_on_the_number_of_workers():
    order, in_process = epoch_batches(workers=0)
    _, two_workers = epoch_batches(workers=2)
    assert [len(yb) for _, yb in in_process] == [6, 6, 6, 2]
    assert torch.equal(torch.cat([yb for _, yb in in_process]), order)  # labels follow their images
    for (xa, ya), (xb, yb) in zip(in_process, two_workers):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_augmented_batches_differ_between_epochs_and_seeds_but_not_the_global_random_state():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    _, first = epoch_batches(workers=0, epoch=0)
    assert torch.equal(torch.get_rng_state(), state)  # transforms ran on a forked generator
    _, other_seed = epoch_batches(workers=0, epoch=0, seed=8)
    assert not torch.equal(first[0][0], other_seed[0][0])
    _, next_epoch = epoch_batches(workers=0, epoch=1)

    def by_label(batches):
        return {int(label): image for xb, yb in batches for image, label in zip(xb, yb)}

    first_images, next_images = by_label(first), by_label(next_epoch)
    assert all(not torch.equal(first_images[i], next_images[i]) for i in range(20))


def test_auto_device_falls_back_to_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert select_device("auto") == CPU
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert select_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert select_device("auto") == torch.device("cuda")  # cuda first


def test_requested_but_missing_device_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        select_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        device_module.select_device("tpu")


@pytest.mark.parametrize("threads, device, augmenting, expected", [
    (1, "cpu", False, (1, 0)), (4, "cpu", False, (4, 0)),
    (1, "cpu", True, (1, 0)), (2, "cpu", True, (2, 0)), (8, "cpu", True, (8, 0)),
    (1, "cuda", True, (1, 0)), (8, "cuda", True, (1, 7)),
])
def test_threads_are_split_between_compute_and_data_workers(threads, device, augmenting, expected):
    assert split_threads(threads, torch.device(device), augmenting) == expected


def test_mixed_precision_only_on_cuda(caplog):
    with caplog.at_level(logging.WARNING):
        assert autocast_dtype("bfloat16", CPU) is None
    assert "CUDA only" in caplog.text
    assert autocast_dtype("bfloat16", torch.device("cuda")) is torch.bfloat16
    assert autocast_dtype("float16", torch.device("cuda")) is torch.float16
    assert autocast_dtype(None, torch.device("cuda")) is None
    with pytest.raises(ValueError, match="mixed_precision"):
        TrainingSettings(method="vanilla", epochs=1, batch_size=1, optimizer={"name": "SGD", "lr": 0.1}, seed=0,
                         mixed_precision="float8")
