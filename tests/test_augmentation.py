"""Training-image augmentation (SPEC §3 CIFAR), devices, threads and mixed precision of training."""

import logging

import pytest
import torch

from memristor_mat import device as device_module
from memristor_mat.augmentation import augment_images, augmented_batches, make_augmentation
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


def image_by_image(transform, x, seed):
    """torchvision's transform image by image (what augment_images must equal), and the
    generator's next number after it (the draws must match in count too)."""
    torch.manual_seed(seed)
    out = torch.stack([transform(image) for image in x])
    return out, torch.rand(1)


def batched(transform, x, seed):
    torch.manual_seed(seed)
    out = augment_images(transform, x)
    return out, torch.rand(1)


def rotation(degrees, **options):
    from torchvision.transforms import v2
    return v2.Compose([v2.RandomRotation(degrees, **options)])


BILINEAR = {"interpolation": "bilinear"}  # reads the grid's exact coordinates: a grid off by one ulp shows


@pytest.mark.parametrize("spec", [{"horizontal_flip": True}, {"rotation_degrees": 10}, {"crop_padding": 4},
                                  {"horizontal_flip": True, "rotation_degrees": 10},
                                  {"horizontal_flip": True, "rotation_degrees": 10, "crop_padding": 4}])
@pytest.mark.parametrize("n", [1, 64])
def test_batched_augmentation_is_torchvisions_image_by_image_bit_for_bit(spec, n):
    x, _ = images(n, seed=n)
    transform = make_augmentation(spec, (32, 32))
    for seed in range(25):
        ours, after_ours = batched(transform, x, seed)
        theirs, after_theirs = image_by_image(transform, x, seed)
        assert torch.equal(ours, theirs) and torch.equal(after_ours, after_theirs), seed


@pytest.mark.parametrize("transform, shape, dtype", [
    (rotation(180, **BILINEAR), (3, 28, 36), torch.float32),       # not square, any angle
    (rotation(30, fill=0.5, **BILINEAR), (3, 32, 32), torch.float32),  # the corners filled with grey
    (rotation(30, fill=[0.1, 0.2, 0.3]), (3, 32, 32), torch.float32),
    (rotation(30), (3, 32, 32), torch.float64),
    (rotation(30, **BILINEAR), (3, 32, 32), torch.uint8),          # integer images: sampled in float32, rounded
])
def test_batched_rotation_matches_for_other_shapes_fills_and_types(transform, shape, dtype):
    g = torch.Generator().manual_seed(1)
    x = (torch.rand((48, *shape), generator=g) * 255).to(dtype) if dtype == torch.uint8 else \
        torch.rand((48, *shape), generator=g, dtype=dtype)
    for seed in range(10):
        ours, after_ours = batched(transform, x, seed)
        theirs, after_theirs = image_by_image(transform, x, seed)
        assert ours.dtype == dtype and torch.equal(ours, theirs) and torch.equal(after_ours, after_theirs), seed


@pytest.mark.parametrize("shape", [(3, 32, 32), (3, 28, 36)])
def test_batched_rotation_takes_torchvisions_shortcuts_where_it_does(shape):
    # rotate_image copies the image at 0 degrees and turns it by 90-degree steps (at 90 and 270
    # on square images only) without sampling; one batch may take both routes
    from torchvision.transforms.v2 import functional as F
    from memristor_mat.augmentation import _rotate_images

    angles = [0.0, 7.25, 90.0, 180.0, -3.5, 270.0, -90.0, 360.0, 450.0, 12.0]
    x = torch.rand((len(angles), *shape), generator=torch.Generator().manual_seed(2))
    for options in ({}, BILINEAR):
        transform = rotation(10, **options).transforms[0]
        ours = _rotate_images(transform, x, [{"angle": angle} for angle in angles])
        theirs = torch.stack([F.rotate(image, angle, interpolation=transform.interpolation, fill=0.0)
                              for image, angle in zip(x, angles)])
        assert torch.equal(ours, theirs)
    for angle in (0, 90, 180, 270):  # and through the transform, every image at the same angle
        transform = rotation((angle, angle), **BILINEAR)
        assert torch.equal(batched(transform, x, 0)[0], image_by_image(transform, x, 0)[0])


def test_transforms_not_batched_here_run_image_by_image():
    from torchvision.transforms import v2

    class TiltedRotation(v2.RandomRotation):  # a subclass may draw or transform otherwise
        def make_params(self, flat_inputs):
            return {"angle": 5.0 + torch.rand(1).item()}

    x, _ = images(16)
    for transform in (v2.Compose([v2.RandomHorizontalFlip(), v2.ColorJitter(brightness=0.5)]),
                      v2.Compose([v2.RandomRotation((30, 30), expand=True)]),  # one angle: one size
                      v2.Compose([v2.RandomRotation(10, center=[3, 4])]),
                      v2.Compose([v2.RandomCrop((24, 24))]),
                      v2.Compose([TiltedRotation(10)]),
                      v2.RandomRotation(10)):
        ours, after_ours = batched(transform, x, 0)
        theirs, after_theirs = image_by_image(transform, x, 0)
        assert torch.equal(ours, theirs) and torch.equal(after_ours, after_theirs), transform


def test_without_torchvisions_grid_helpers_every_batch_runs_image_by_image(monkeypatch, caplog):
    # the helpers are private to torchvision: a release without them must still augment
    import builtins

    from memristor_mat import augmentation

    real_import = builtins.__import__

    def without_helpers(name, *args, **kwargs):
        if name == "torchvision.transforms.v2.functional._geometry":
            raise ImportError("moved", name=name)
        return real_import(name, *args, **kwargs)

    augmentation._torchvision_grid_helpers.cache_clear()
    monkeypatch.setattr(builtins, "__import__", without_helpers)
    try:
        transform = make_augmentation({"horizontal_flip": True, "rotation_degrees": 10}, (32, 32))
        x, _ = images(8)
        with caplog.at_level(logging.WARNING, logger="memristor_mat.augmentation"):
            ours = batched(transform, x, 0)
        assert "augmenting image by image" in caplog.text
    finally:
        monkeypatch.undo()
        augmentation._torchvision_grid_helpers.cache_clear()
    theirs = image_by_image(transform, x, 0)
    assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])
    assert augmentation._torchvision_grid_helpers() is not None


def test_an_empty_batch_stays_empty():
    x = torch.empty((0, 3, 32, 32))
    out = augment_images(make_augmentation({"horizontal_flip": True, "rotation_degrees": 10}, (32, 32)), x)
    assert out.shape == x.shape


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
