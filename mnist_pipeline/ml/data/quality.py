"""Data quality rules: each returns (passed, what was found), for the asset checks and tests.

The structural ones (pairing, shapes, label range) ask the same rule functions
the IDX reader does (dataset.py); here each problem names the array.
"""

from __future__ import annotations

import numpy as np

from mnist_pipeline.ml.data.dataset import (
    NUM_CLASSES,
    SPLITS,
    DigitDataset,
    image_shape_problem,
    label_range_problem,
    pairing_problem,
)

MNIST_COUNTS = (60_000, 10_000)
Outcome = tuple[bool, str]


def _problems(found: list[str | None], when_none: str) -> Outcome:
    problems = [problem for problem in found if problem is not None]
    return not problems, "; ".join(problems) if problems else when_none


def counts(dataset: DigitDataset, expected: tuple[int, int] | None) -> Outcome:
    """Train/test sizes: MNIST's exactly, or for another data set at least one of each."""
    arrays = dataset.arrays()
    paired, unpaired = _problems(
        [pairing_problem(arrays[f"{split}_images"], arrays[f"{split}_labels"], f"{split}_images", f"{split}_labels") for split in SPLITS],
        "",
    )
    if not paired:
        return False, unpaired
    found = (dataset.num_train, dataset.num_test)
    if expected is None:
        return min(found) > 0, f"expected at least one train and one test image, found {found[0]} and {found[1]}"
    return found == expected, f"expected {expected[0]} train and {expected[1]} test images, found {found[0]} and {found[1]}"


def shapes(dataset: DigitDataset) -> Outcome:
    arrays = dataset.arrays()
    return _problems([image_shape_problem(arrays[f"{split}_images"], f"{split}_images") for split in SPLITS], "every image is 28x28")


def labels_in_range(dataset: DigitDataset) -> Outcome:
    arrays = dataset.arrays()
    return _problems(
        [label_range_problem(arrays[f"{split}_labels"], f"{split}_labels") for split in SPLITS],
        f"every label is in 0..{NUM_CLASSES - 1}",
    )


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
