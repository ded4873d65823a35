"""The in-memory shape of an MNIST-style data set, its class names and its structural checks."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Mapping, Sequence

import numpy as np

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
# MNIST's class names, and every data set's unless its directory has a classes file.
DIGIT_CLASS_NAMES = tuple(str(digit) for digit in range(NUM_CLASSES))

# Array name -> the original MNIST file it comes from.
IDX_FILE_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class DatasetError(ValueError):
    """A data set does not have the structure the pipeline needs."""


def class_names_array(names: Sequence[str]) -> np.ndarray:
    """Class names as a unicode array: stored in the .npz (and hashed) like the images, with no pickle."""
    return np.asarray(list(names), dtype=np.str_)


@dataclass(frozen=True)
class DigitDataset:
    """Train and test splits of 28x28 grey images with labels 0..9, and the name of each label's class."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    # Travels with the data, so the table, the plots and the messages name the classes of *this* data set.
    class_names: np.ndarray = field(default_factory=lambda: class_names_array(DIGIT_CLASS_NAMES))

    def arrays(self) -> dict[str, np.ndarray]:
        """The four image and label arrays (one per IDX file)."""
        return {name: getattr(self, name) for name in IDX_FILE_NAMES}

    def stored_arrays(self) -> dict[str, np.ndarray]:
        """Everything the data set holds, class names included: what is stored and what its version hashes."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def names(self) -> list[str]:
        """The class names as strings, class 0 first."""
        return [str(name) for name in self.class_names.tolist()]

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], *, source: str) -> "DigitDataset":
        expected = list(IDX_FILE_NAMES)
        missing = [name for name in expected if name not in arrays]
        if missing:
            raise DatasetError(f"{source}: expected arrays {expected}, missing {missing}")
        # Stored before class names existed: those data sets were all named by digit.
        names = arrays.get("class_names", class_names_array(DIGIT_CLASS_NAMES))
        return cls(**{name: arrays[name] for name in expected}, class_names=names)

    @property
    def num_train(self) -> int:
        return len(self.train_labels)

    @property
    def num_test(self) -> int:
        return len(self.test_labels)


SPLITS = ("train", "test")


# The structural rules, one function each: the IDX reader (validate_structure, naming the files) and the
# raw_mnist checks (quality.py, naming the arrays) both ask these, so they can never disagree.
def image_shape_problem(images: np.ndarray, source: str) -> str | None:
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        return f"{source}: expected images of shape (N, 28, 28), found {images.shape}"
    return None


def label_shape_problem(labels: np.ndarray, source: str) -> str | None:
    if labels.ndim != 1:
        return f"{source}: expected labels of shape (N,), found {labels.shape}"
    return None


def empty_problem(images: np.ndarray, source: str) -> str | None:
    if len(images) == 0:
        return f"{source}: expected at least one image, found 0"
    return None


def pairing_problem(images: np.ndarray, labels: np.ndarray, images_source: str, labels_source: str) -> str | None:
    if len(images) != len(labels):
        return f"{images_source} holds {len(images)} images but {labels_source} holds {len(labels)} labels: expected the same count"
    return None


def label_range_problem(labels: np.ndarray, source: str) -> str | None:
    flat = labels.reshape(-1)  # the index of a label vector; of any other shape, its flat index
    outside = (flat < 0) | (flat >= NUM_CLASSES)
    if outside.any():
        index = int(np.argmax(outside))
        return (
            f"{source}: expected labels in 0..{NUM_CLASSES - 1}, found {int(flat[index])} at index {index} "
            f"({int(outside.sum())} out of range)"
        )
    return None


def structure_problems(dataset: DigitDataset, sources: Mapping[str, str]) -> list[str]:
    """Every structural problem of `dataset`, each naming the source of the array at fault (a file or an array name)."""
    problems = []
    for split in SPLITS:
        images_name, labels_name = f"{split}_images", f"{split}_labels"
        images, labels = getattr(dataset, images_name), getattr(dataset, labels_name)
        images_src, labels_src = sources[images_name], sources[labels_name]
        misshapen = [p for p in (image_shape_problem(images, images_src), label_shape_problem(labels, labels_src)) if p]
        if misshapen:  # counting or indexing arrays of the wrong shape would say nothing true
            problems += misshapen
            continue
        found = (
            empty_problem(images, images_src),
            pairing_problem(images, labels, images_src, labels_src),
            label_range_problem(labels, labels_src),
        )
        problems += [problem for problem in found if problem is not None]
    return problems


def validate_structure(dataset: DigitDataset, sources: Mapping[str, str]) -> None:
    """Raise DatasetError for the first structural problem (shapes, matching lengths, label range).

    `sources` maps each array name to where it came from (a file path), so an
    error names the file at fault.
    """
    problems = structure_problems(dataset, sources)
    if problems:
        raise DatasetError(problems[0])
