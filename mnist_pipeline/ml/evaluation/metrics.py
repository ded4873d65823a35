"""Confusion matrix and per-class precision and recall, in plain numpy."""

from __future__ import annotations

import numpy as np

from mnist_pipeline.ml.data.dataset import NUM_CLASSES


def confusion_matrix(true_labels: np.ndarray, predicted_labels: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Counts[i, j] = images of class i predicted as j."""
    if true_labels.shape != predicted_labels.shape:
        raise ValueError(
            f"expected true and predicted labels of the same shape, found {true_labels.shape} "
            f"and {predicted_labels.shape}"
        )
    flat = true_labels.astype(np.int64) * num_classes + predicted_labels.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def precision_recall(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class precision (by column) and recall (by row); 0 where a class is never predicted or absent."""
    correct = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0)
    actual = matrix.sum(axis=1)
    precision = np.divide(correct, predicted, out=np.zeros_like(correct), where=predicted > 0)
    recall = np.divide(correct, actual, out=np.zeros_like(correct), where=actual > 0)
    return precision, recall
