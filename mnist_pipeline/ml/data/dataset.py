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


def validate_structure(dataset: DigitDataset, sources: Mapping[str, str]) -> None:
    """Check shapes, dtypes, label range and matching lengths.

    `sources` maps each array name to where it came from (a file path), so an
    error names the file at fault.
    """
    for split in ("train", "test"):
        images_name, labels_name = f"{split}_images", f"{split}_labels"
        images, labels = getattr(dataset, images_name), getattr(dataset, labels_name)
        images_src, labels_src = sources[images_name], sources[labels_name]
        if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
            raise DatasetError(
                f"{images_src}: expected images of shape (N, 28, 28), found {images.shape}"
            )
        if labels.ndim != 1:
            raise DatasetError(f"{labels_src}: expected labels of shape (N,), found {labels.shape}")
        if len(images) == 0:
            raise DatasetError(f"{images_src}: expected at least one image, found 0")
        if len(images) != len(labels):
            raise DatasetError(
                f"{images_src} holds {len(images)} images but {labels_src} holds {len(labels)} labels: "
                "expected the same count"
            )
        bad = labels >= NUM_CLASSES
        if bad.any():
            index = int(np.argmax(bad))
            raise DatasetError(
                f"{labels_src}: expected labels in 0..9, found {int(labels[index])} at index {index} "
                f"({int(bad.sum())} out of range)"
            )
