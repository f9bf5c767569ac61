"""Tests for memristor_mat.datasets.cifar: CIFAR-10/100 read by torchvision from files in the real layout.

Nothing is downloaded: an autouse fixture replaces ``urllib.request.urlopen`` (which torchvision's
downloader calls). The tests write tiny batches in the format of the original release (Python 2
pickles, protocol 2, of dicts with byte-string keys) into the folders torchvision uses, and
patch the MD5 sums on the checked class to those of the written files, so torchvision's own
MD5 verification, extraction and unpickling run unchanged.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from memristor_mat.datasets import DataError, DatasetUnavailableError, cifar

PER_BATCH = 3  # images per written batch (the originals hold 10,000)


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def no_network(url_calls):
    """Every test of this module runs offline (see conftest.url_calls)."""
    return url_calls


class _Python2Pickler(pickle._Pickler):
    """Writes ``bytes`` as Python 2 ``str`` (SHORT_BINSTRING/BINSTRING), as in the original files.

    Python 3 pickles bytes with protocol 2 as a call to ``_codecs.encode``, which loads back as
    bytes whatever the encoding; Python 2 strings load as ``str`` under ``encoding="latin1"``
    (what torchvision passes, so it finds ``entry["data"]``) and as bytes under
    ``encoding="bytes"`` (what the CIFAR web page shows). Only the pure-Python pickler has a
    dispatch table to change this.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_python2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_python2_str


def write_pickle(path: Path, entry: dict) -> None:
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(entry)
    path.write_bytes(buffer.getvalue())


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def random_images(rng: np.random.Generator, n: int) -> np.ndarray:
    """uint8 N x 3 x 32 x 32 (channel-first, as a batch row stores it)."""
    return rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)


def as_rows(images: np.ndarray) -> np.ndarray:
    """A batch's "data": N x 3072, the R plane then G then B, each 32 x 32 row-major."""
    return images.reshape(len(images), 3 * 32 * 32)


def write_cifar10(root: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Five training batches, a test batch and batches.meta in ``root/cifar-10-batches-py``."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_x, train_y = random_images(rng, 5 * PER_BATCH), rng.integers(0, 10, size=5 * PER_BATCH)
    test_x, test_y = random_images(rng, PER_BATCH), rng.integers(0, 10, size=PER_BATCH)
    train_x[0, :, 0, 0] = [0, 255, 0]  # both ends of the [0, 1] scaling occur
    batches = [(f"data_batch_{i + 1}", f"training batch {i + 1} of 5", slice(i * PER_BATCH, (i + 1) * PER_BATCH))
               for i in range(5)]
    for name, label, part in batches:
        write_pickle(folder / name, {
            b"batch_label": label.encode(),
            b"labels": [int(y) for y in train_y[part]],
            b"data": as_rows(train_x[part]),
            b"filenames": [f"image_{i}.png".encode() for i in range(PER_BATCH)],
        })
    write_pickle(folder / "test_batch", {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": [int(y) for y in test_y],
        b"data": as_rows(test_x),
        b"filenames": [f"test_{i}.png".encode() for i in range(PER_BATCH)],
    })
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    write_pickle(folder / "batches.meta", {b"num_cases_per_batch": PER_BATCH, b"label_names": names, b"num_vis": 3072})
    return {"x_train": train_x, "y_train": train_y, "x_test": test_x, "y_test": test_y}


def write_cifar100(root: Path, seed: int = 1) -> dict[str, np.ndarray]:
    """train, test and meta in ``root/cifar-100-python``; coarse labels differ from fine ones."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    written = {}
    for part, n in (("train", 7), ("test", 4)):
        images, fine = random_images(rng, n), rng.integers(0, 100, size=n)
        fine[0] = 99  # the highest fine label: CIFAR-100 must report 100 classes
        write_pickle(folder / part, {
            b"filenames": [f"{part}_{i}.png".encode() for i in range(n)],
            b"batch_label": f"{'training' if part == 'train' else 'testing'} batch 1 of 1".encode(),
            b"fine_labels": [int(y) for y in fine],
            b"coarse_labels": [int(y) // 5 for y in fine],
            b"data": as_rows(images),
        })
        written[f"x_{part}"], written[f"y_{part}"] = images, fine
    write_pickle(folder / "meta", {
        b"fine_label_names": [f"fine_{i}".encode() for i in range(100)],
        b"coarse_label_names": [f"coarse_{i}".encode() for i in range(20)],
    })
    return written


def checked_class(name: str) -> type:
    """The class the builder instantiates (cached), so that patches on it reach torchvision."""
    return cifar._checked_cifar_class(name)


def trust_written_files(monkeypatch, name: str, root: Path) -> type:
    """Patch the class's MD5 list to the files now in its folder (absent files keep their entry)."""
    cls = checked_class(name)
    folder = root / cls.base_folder

    def current(file_name: str, published: str) -> str:
        return md5(folder / file_name) if (folder / file_name).is_file() else published

    monkeypatch.setattr(cls, "train_list", [[f, current(f, m)] for f, m in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[f, current(f, m)] for f, m in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": current(cls.meta["filename"], cls.meta["md5"])})
    return cls


def scaled(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / np.float32(255)


# --------------------------------------------------------------------------- reading


def test_written_files_have_the_original_pickle_format(tmp_path):
    write_cifar10(tmp_path)
    raw = (tmp_path / "cifar-10-batches-py" / "data_batch_1").read_bytes()
    assert raw[:2] == b"\x80\x02"  # protocol 2
    # Keys load as bytes under encoding="bytes" (the CIFAR page's recipe) and as str under latin1.
    assert set(pickle.loads(raw, encoding="bytes")) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert set(pickle.loads(raw, encoding="latin1")) == {"batch_label", "labels", "data", "filenames"}


def test_cifar10_pixels_labels_and_counts(tmp_path, monkeypatch, url_calls):
    written = write_cifar10(tmp_path)
    # One image with known, channel- and position-specific values: index 7 is the second image
    # of data_batch_3, so the batches must also be concatenated in order.
    marked = np.zeros((3, 32, 32), dtype=np.uint8)
    marked[0, 0, 1] = 255  # red, row 0, column 1
    marked[1, 2, 0] = 51  # green, row 2, column 0
    marked[2, 31, 30] = 102  # blue, row 31, column 30
    folder = tmp_path / "cifar-10-batches-py"
    batch = pickle.loads((folder / "data_batch_3").read_bytes(), encoding="bytes")
    batch[b"data"][1] = marked.reshape(-1)
    write_pickle(folder / "data_batch_3", batch)
    written["x_train"][7] = marked
    trust_written_files(monkeypatch, "cifar10", tmp_path)

    splits = cifar.build_cifar10(tmp_path)

    assert url_calls == []  # files intact: torchvision must not try to download
    assert splits.name == "cifar10" and splits.num_classes == 10
    assert splits.x_train.shape == (15, 3, 32, 32) and splits.x_test.shape == (3, 3, 32, 32)
    assert splits.x_train.dtype == np.float32 and splits.y_train.dtype == np.int64
    assert splits.x_train[7, 0, 0, 1] == 1.0 and splits.x_train[7, 1, 2, 0] == np.float32(51) / np.float32(255)
    assert splits.x_train[7, 2, 31, 30] == np.float32(102) / np.float32(255)
    assert splits.x_train[7].sum() == 1.0 + (np.float32(51) + np.float32(102)) / np.float32(255)
    assert np.array_equal(splits.x_train, scaled(written["x_train"]))
    assert np.array_equal(splits.x_test, scaled(written["x_test"]))
    assert splits.y_train.tolist() == written["y_train"].tolist()
    assert splits.y_test.tolist() == written["y_test"].tolist()
    assert splits.x_train.min() == 0.0 and splits.x_train.max() == 1.0  # scaled, not normalised
    assert "15 train / 3 test" in splits.description and str(folder) in splits.description


def test_cifar100_uses_fine_labels(tmp_path, monkeypatch):
    written = write_cifar100(tmp_path)
    trust_written_files(monkeypatch, "cifar100", tmp_path)

    splits = cifar.build_cifar100(tmp_path, download=False)

    assert splits.name == "cifar100" and splits.num_classes == 100
    assert splits.x_train.shape == (7, 3, 32, 32) and splits.x_test.shape == (4, 3, 32, 32)
    assert splits.y_train.tolist() == written["y_train"].tolist()  # fine, not coarse (= fine // 5)
    assert splits.y_test.tolist() == written["y_test"].tolist()
    assert np.array_equal(splits.x_train, scaled(written["x_train"]))
    assert np.array_equal(splits.x_test, scaled(written["x_test"]))
    assert "100 fine classes" in splits.description and "cifar-100-python" in splits.description


# --------------------------------------------------------------------------- damaged files


@pytest.mark.parametrize("download", [False, True])
def test_md5_mismatch_names_the_file(tmp_path, monkeypatch, download):
    write_cifar10(tmp_path)
    trust_written_files(monkeypatch, "cifar10", tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_4"
    content = bytearray(path.read_bytes())
    content[-40] ^= 0xFF  # one pixel byte: still a valid pickle, only the MD5 tells
    path.write_bytes(bytes(content))

    with pytest.raises(DataError) as info:
        cifar.build_cifar10(tmp_path, download=download)

    message = str(info.value)
    assert not isinstance(info.value, DatasetUnavailableError)  # the files are there, but damaged
    assert f"data_batch_4 (MD5 {md5(path)}" in message and "is damaged" in message
    assert "data_batch_1" not in message and "test_batch" not in message  # only the bad one
    assert "Delete" in message and "cifar-10-python.tar.gz" in message


def test_missing_member_is_named(tmp_path, monkeypatch):
    write_cifar10(tmp_path)
    trust_written_files(monkeypatch, "cifar10", tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()

    with pytest.raises(DataError, match="test_batch is missing") as info:
        cifar.build_cifar10(tmp_path, download=False)
    assert not isinstance(info.value, DatasetUnavailableError)


@pytest.mark.parametrize(
    ("name", "damage", "expected"),
    [
        ("data_batch_2", lambda raw: raw[: len(raw) // 2], "cannot be unpickled"),
        ("test_batch", lambda raw: b"not a pickle at all", "cannot be unpickled"),
        ("batches.meta", lambda raw: raw[:10], "cannot be unpickled"),
    ],
)
def test_unpicklable_file_with_matching_md5_is_named(tmp_path, monkeypatch, name, damage, expected):
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / name
    path.write_bytes(damage(path.read_bytes()))
    trust_written_files(monkeypatch, "cifar10", tmp_path)  # so the damage passes the MD5 check

    with pytest.raises(DataError, match=expected) as info:
        cifar.build_cifar10(tmp_path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({b"labels": [0, 1, 10]}, "outside 0..9"),
        ({b"labels": [0, 1]}, "3 images but 2 'labels'"),
        ({b"data": np.zeros((3, 3072), dtype=np.float32)}, "float32"),
    ],
)
def test_wrong_contents_name_the_file(tmp_path, monkeypatch, change, expected):
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_5"
    write_pickle(path, {**pickle.loads(path.read_bytes(), encoding="bytes"), **change})
    trust_written_files(monkeypatch, "cifar10", tmp_path)

    with pytest.raises(DataError, match=expected) as info:
        cifar.build_cifar10(tmp_path)
    assert str(path) in str(info.value)


def test_cifar100_meta_with_wrong_class_count_is_named(tmp_path, monkeypatch):
    write_cifar100(tmp_path)
    path = tmp_path / "cifar-100-python" / "meta"
    write_pickle(path, {b"fine_label_names": [b"only", b"two"], b"coarse_label_names": []})
    trust_written_files(monkeypatch, "cifar100", tmp_path)

    with pytest.raises(DataError, match="lists 2 class names under 'fine_label_names', expected 100") as info:
        cifar.build_cifar100(tmp_path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------- unavailable


def test_no_download_and_no_files_says_where_to_place_the_tarball(tmp_path, url_calls):
    with pytest.raises(DatasetUnavailableError) as info:
        cifar.build_cifar10(tmp_path, download=False)

    message = str(info.value)
    assert url_calls == []
    assert "download=False" in message
    assert "cifar-10-python.tar.gz" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    assert "c58f30108f718f92721af3b95e74349a" in message  # the published tarball MD5
    assert str(tmp_path / "cifar-10-batches-py") in message


def test_offline_download_says_where_to_place_the_tarball(tmp_path, url_calls):
    with pytest.raises(DatasetUnavailableError) as info:
        cifar.build_cifar100(tmp_path)

    message = str(info.value)
    assert url_calls and "cifar-100-python.tar.gz" in url_calls[0]  # the download was attempted
    assert "the download failed" in message and "offline" in message
    assert f"as {tmp_path / 'cifar-100-python.tar.gz'}" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz" in message
    assert "eb9058c3a382ffc7106e4002c42a8d85" in message
    assert "verifies its MD5 and extracts it" in message and "stand-in" in message
    assert isinstance(info.value, DataError)  # callers may catch the base class


def place_tarball(tmp_path: Path, monkeypatch, name: str, writer) -> tuple[Path, dict[str, np.ndarray]]:
    """Write the dataset elsewhere, pack it like the published tarball and place it in raw/."""
    staging, raw = tmp_path / "staging", tmp_path / "raw"
    written = writer(staging)
    cls = trust_written_files(monkeypatch, name, staging)
    raw.mkdir()
    tarball = raw / cls.filename
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(staging / cls.base_folder, arcname=cls.base_folder)
    monkeypatch.setattr(cls, "tgz_md5", md5(tarball))
    return raw, written


def test_placed_tarball_is_verified_and_extracted_offline(tmp_path, monkeypatch, url_calls):
    raw, written = place_tarball(tmp_path, monkeypatch, "cifar10", write_cifar10)

    splits = cifar.build_cifar10(raw)

    assert url_calls == []
    assert (raw / "cifar-10-batches-py" / "data_batch_5").is_file()
    assert np.array_equal(splits.x_train, scaled(written["x_train"]))
    assert splits.y_test.tolist() == written["y_test"].tolist()


def test_placed_tarball_repairs_a_damaged_batch(tmp_path, monkeypatch, url_calls):
    raw, written = place_tarball(tmp_path, monkeypatch, "cifar100", write_cifar100)
    cifar.build_cifar100(raw)  # extracts
    (raw / "cifar-100-python" / "train").write_bytes(b"damaged")

    splits = cifar.build_cifar100(raw)  # torchvision's MD5 check fails, so it re-extracts

    assert url_calls == []
    assert splits.y_train.tolist() == written["y_train"].tolist()


def test_tarball_with_wrong_md5_is_reported(tmp_path, url_calls):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"an interrupted download")

    with pytest.raises(DatasetUnavailableError) as info:
        cifar.build_cifar10(tmp_path)

    message = str(info.value)
    assert url_calls  # torchvision rejected the tarball and tried to fetch a fresh one
    assert f"MD5 {hashlib.md5(b'an interrupted download').hexdigest()}" in message and "replace it" in message


def test_intact_tarball_without_download_asks_to_enable_download(tmp_path, monkeypatch, url_calls):
    raw, _ = place_tarball(tmp_path, monkeypatch, "cifar10", write_cifar10)

    with pytest.raises(DatasetUnavailableError, match="rerun with download enabled to extract it"):
        cifar.build_cifar10(raw, download=False)
    assert url_calls == []


def test_cifar100_fine_label_out_of_range_is_named(tmp_path, monkeypatch):
    write_cifar100(tmp_path)
    path = tmp_path / "cifar-100-python" / "train"
    entry = pickle.loads(path.read_bytes(), encoding="bytes")
    entry[b"fine_labels"][2] = 100
    write_pickle(path, entry)
    trust_written_files(monkeypatch, "cifar100", tmp_path)

    with pytest.raises(DataError, match="'fine_labels' outside 0..99") as info:
        cifar.build_cifar100(tmp_path)
    assert str(path) in str(info.value)
