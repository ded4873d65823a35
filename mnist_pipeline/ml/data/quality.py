"""Data quality rules: each returns (passed, what was found), for the asset checks and tests."""

from __future__ import annotations

import numpy as np

from mnist_pipeline.ml.data.dataset import IMAGE_SHAPE, NUM_CLASSES, DigitDataset

MNIST_COUNTS = (60_000, 10_000)
Outcome = tuple[bool, str]


def counts(dataset: DigitDataset, expected: tuple[int, int] | None) -> Outcome:
    """Train/test sizes: MNIST's exactly, or for another data set at least one of each."""
    found = (dataset.num_train, dataset.num_test)
    pairs_match = len(dataset.train_images) == dataset.num_train and len(dataset.test_images) == dataset.num_test
    if not pairs_match:
        return False, (
            f"expected as many images as labels, found {len(dataset.train_images)}/{dataset.num_train} (train) "
            f"and {len(dataset.test_images)}/{dataset.num_test} (test)"
        )
    if expected is None:
        return min(found) > 0, f"expected at least one train and one test image, found {found[0]} and {found[1]}"
    return found == expected, f"expected {expected[0]} train and {expected[1]} test images, found {found[0]} and {found[1]}"


def shapes(dataset: DigitDataset) -> Outcome:
    bad = {
        name: array.shape
        for name, array in (("train_images", dataset.train_images), ("test_images", dataset.test_images))
        if array.ndim != 3 or array.shape[1:] != IMAGE_SHAPE
    }
    return not bad, f"expected images of shape (N, 28, 28), found {bad}" if bad else "every image is 28x28"


def labels_in_range(dataset: DigitDataset) -> Outcome:
    labels = np.concatenate([dataset.train_labels, dataset.test_labels])
    outside = np.unique(labels[(labels < 0) | (labels >= NUM_CLASSES)])
    if outside.size:
        return False, f"expected labels in 0..9, found {outside.tolist()}"
    return True, "every label is in 0..9"


def every_class_present(dataset: DigitDataset) -> Outcome:
    names = dataset.names()
    missing = {
        split: [names[label] for label in sorted(set(range(NUM_CLASSES)) - set(np.unique(labels).tolist()))]
        for split, labels in (("train", dataset.train_labels), ("test", dataset.test_labels))
    }
    missing = {split: classes for split, classes in missing.items() if classes}
    if missing:
        return False, f"expected all ten classes in both splits, missing {missing}"
    return True, f"all ten classes in both splits: {', '.join(names)}"


def scaled_range(dataset: DigitDataset) -> Outcome:
    found = {}
    for name, images in (("train_images", dataset.train_images), ("test_images", dataset.test_images)):
        if images.dtype != np.float32:
            return False, f"expected {name} as float32, found {images.dtype}"
        found[name] = (float(np.nanmin(images)), float(np.nanmax(images)))
    low, high = min(v[0] for v in found.values()), max(v[1] for v in found.values())
    return 0.0 <= low and high <= 1.0, f"expected pixels in [0, 1], found [{low}, {high}]"


def no_nan(dataset: DigitDataset) -> Outcome:
    count = int(np.isnan(dataset.train_images).sum() + np.isnan(dataset.test_images).sum())
    return count == 0, f"expected no NaN pixels, found {count}"
