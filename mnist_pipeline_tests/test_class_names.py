"""Class names for data sets that are not digits: classes.txt beside the IDX files, and where the names go."""

import dataclasses

import numpy as np
import pytest

from mnist_pipeline.ml.data import quality
from mnist_pipeline.ml.data.dataset import DIGIT_CLASS_NAMES, DatasetError, class_names_array
from mnist_pipeline.defs.data.resources import MnistSource
from mnist_pipeline.ml.data.sources import read_class_names
from mnist_pipeline.defs.io_managers import NpzIOManager
from mnist_pipeline.ml.content_versions import dataset_version

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def write_classes(directory, text: str):
    path = directory / "classes.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_without_a_classes_file_the_classes_are_the_digits(tmp_path):
    assert read_class_names(tmp_path / "classes.txt") == DIGIT_CLASS_NAMES == tuple("0123456789")


def test_a_classes_file_names_the_ten_classes(tmp_path):
    path = write_classes(tmp_path, "\n".join(FASHION) + "\n")
    assert read_class_names(path) == tuple(FASHION)
    # Windows line ends, a byte-order mark, spaces around a name and a trailing blank line are all fine.
    path = write_classes(tmp_path, "\ufeff" + "\r\n".join(f" {name} " for name in FASHION) + "\r\n\r\n")
    assert read_class_names(path) == tuple(FASHION)


@pytest.mark.parametrize(
    "lines, message",
    [
        (FASHION[:9], r"classes.txt: expected 10 lines, one class name each \(class 0 first\), found 9 lines"),
        (FASHION + ["Hat"], r"classes.txt line 11: expected 10 lines, one class name each \(class 0 first\), found an extra line 'Hat'"),
        (FASHION[:3] + [""] + FASHION[4:], r"classes.txt line 4: expected the name of class 3, found an empty line"),
        (FASHION[:6] + ["Trouser"] + FASHION[7:], r"classes.txt line 7: expected a name no other class has, found 'Trouser' again \(line 2\)"),
        (FASHION[:9] + ["x" * 41], r"classes.txt line 10: expected a class name of at most 40 characters, found 41"),
    ],
)
def test_a_malformed_classes_file_is_an_error_naming_the_file_and_the_line(tmp_path, lines, message):
    path = write_classes(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=message) as raised:
        read_class_names(path)
    assert str(raised.value).startswith(str(path))


def test_a_classes_file_that_is_not_utf8_is_an_error_naming_it(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_bytes("\n".join(FASHION).encode("utf-16"))
    with pytest.raises(DatasetError, match=rf"{path}: expected UTF-8 text \(10 lines"):
        read_class_names(path)


def test_the_names_travel_with_the_data_into_its_npz_and_its_version(idx_dir, tmp_path):
    source = MnistSource(data_dir=str(idx_dir), download_sources=[])
    digits = source.load().dataset
    assert digits.names() == list(DIGIT_CLASS_NAMES)
    files_before = source.fingerprint()

    write_classes(idx_dir, "\n".join(FASHION) + "\n")
    fashion = source.load().dataset
    assert fashion.names() == FASHION
    assert dataset_version(fashion) != dataset_version(digits), "the names are part of the content version"
    assert source.fingerprint() != files_before, "adding classes.txt is a change of the observed files"

    path = tmp_path / "raw_mnist.npz"
    NpzIOManager(base_dir=str(tmp_path)).dump(fashion, path)
    with np.load(path, allow_pickle=False) as stored:  # a unicode array: no pickle needed
        assert stored["class_names"].dtype.kind == "U"
        assert stored["class_names"].tolist() == FASHION
    loaded = NpzIOManager(base_dir=str(tmp_path)).load(path)
    assert loaded.names() == FASHION
    assert dataset_version(loaded) == dataset_version(fashion)


def test_a_malformed_classes_file_fails_the_load_naming_it(idx_dir):
    path = write_classes(idx_dir, "\n".join(FASHION[:8]) + "\n")
    with pytest.raises(DatasetError, match=rf"^{path}: expected 10 lines"):
        MnistSource(data_dir=str(idx_dir), download_sources=[]).load()


def test_the_class_check_names_the_missing_classes(synthetic_dataset):
    fashion = dataclasses.replace(synthetic_dataset, class_names=class_names_array(FASHION))
    assert quality.every_class_present(fashion) == (True, "all ten classes in both splits: " + ", ".join(FASHION))
    labels = fashion.test_labels.copy()
    labels[labels == 9] = 0
    passed, found = quality.every_class_present(dataclasses.replace(fashion, test_labels=labels))
    assert not passed and found == "expected all ten classes in both splits, missing {'test': ['Ankle boot']}"
