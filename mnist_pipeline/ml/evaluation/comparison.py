"""Two models on the same test images: per-class accuracy, where they disagree, and whether the difference is real.

Whether one model is better than another on a test set is a question about the
paired predictions, not about two accuracies: McNemar's test looks only at the
images exactly one of the two gets right (`only_a_right`, `only_b_right`). If
the models were equally good, each such image would be as likely to favour
either, so the count favouring A is binomial(n, 1/2) with n the two counts
together. The exact two-sided p-value is used (no chi-square approximation), as
recommended when n is small, and it costs nothing at MNIST's sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import comb

import numpy as np

from mnist_pipeline.ml.evaluation.metrics import confusion_matrix, precision_recall

SIGNIFICANCE_LEVEL = 0.05


@dataclass(frozen=True)
class McNemar:
    only_a_right: int
    only_b_right: int
    p_value: float

    @property
    def significant(self) -> bool:
        return self.p_value < SIGNIFICANCE_LEVEL


def mcnemar_exact(only_a_right: int, only_b_right: int) -> McNemar:
    """McNemar's exact test: two-sided p-value of so uneven a split of the images exactly one model gets right."""
    if only_a_right < 0 or only_b_right < 0:
        raise ValueError(f"expected counts of at least 0, found {only_a_right} and {only_b_right}")
    n = only_a_right + only_b_right
    if n == 0:  # never exactly one right: no evidence either way
        return McNemar(0, 0, 1.0)
    tail = sum(comb(n, k) for k in range(min(only_a_right, only_b_right) + 1))
    p_value = min(Fraction(1), Fraction(2 * tail, 2**n))  # exact: n can be thousands
    return McNemar(only_a_right, only_b_right, float(p_value))


def per_class_accuracy(true_labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """The share of each class's test images predicted right: its recall (metrics.py), NaN for a class with no image."""
    matrix = confusion_matrix(true_labels, predicted, num_classes)
    _, recall = precision_recall(matrix)
    return np.where(matrix.sum(axis=1) > 0, recall, np.nan)


@dataclass(frozen=True)
class Comparison:
    accuracy_a: float
    accuracy_b: float
    per_class_a: np.ndarray
    per_class_b: np.ndarray
    disagreements: np.ndarray  # indices of the test images the two predict differently
    mcnemar: McNemar


def compare_predictions(true_labels: np.ndarray, predicted_a: np.ndarray, predicted_b: np.ndarray, num_classes: int) -> Comparison:
    if not (true_labels.shape == predicted_a.shape == predicted_b.shape):
        raise ValueError(
            f"expected one prediction of each model per test image, found {predicted_a.shape} and {predicted_b.shape} "
            f"for {true_labels.shape} labels"
        )
    right_a, right_b = predicted_a == true_labels, predicted_b == true_labels
    return Comparison(
        accuracy_a=float(right_a.mean()),
        accuracy_b=float(right_b.mean()),
        per_class_a=per_class_accuracy(true_labels, predicted_a, num_classes),
        per_class_b=per_class_accuracy(true_labels, predicted_b, num_classes),
        disagreements=np.flatnonzero(predicted_a != predicted_b),
        mcnemar=mcnemar_exact(int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())),
    )
