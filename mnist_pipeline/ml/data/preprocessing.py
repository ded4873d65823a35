"""What the network sees: pixels scaled to [0, 1], as in Keras's MNIST example (`x_train.astype("float32") / 255`)."""

from __future__ import annotations

import dataclasses

import numpy as np

from mnist_pipeline.ml.data.dataset import NUM_CLASSES, DigitDataset


def scale_images(images: np.ndarray) -> np.ndarray:
    """uint8 pixels 0..255 -> float32 in [0, 1], without a float64 intermediate."""
    scaled = images.astype(np.float32)
    scaled /= np.float32(255.0)
    return scaled


def scaled(dataset: DigitDataset) -> DigitDataset:
    """The data set with both splits' images scaled; labels and class names unchanged."""
    return dataclasses.replace(
        dataset, train_images=scale_images(dataset.train_images), test_images=scale_images(dataset.test_images)
    )


def class_counts(labels: np.ndarray, names: list[str]) -> dict[str, int]:
    """How many examples of each class, absent classes included (as 0), keyed by class name."""
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    return {name: int(count) for name, count in zip(names, counts)}
