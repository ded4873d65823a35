"""How a trained model does on the test images: Keras's evaluate and predict, then the metrics in plain numpy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mnist_pipeline.ml.evaluation.metrics import confusion_matrix, precision_recall

# Prediction keeps no gradients, so large batches fit in memory and make fewer calls into TensorFlow.
PREDICT_BATCH_SIZE = 1000


@dataclass(frozen=True)
class Evaluation:
    test_loss: float
    test_accuracy: float
    confusion_matrix: np.ndarray  # [i, j] = images of class i predicted as j
    precision: np.ndarray  # per class
    recall: np.ndarray  # per class

    def as_metrics(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {
            "test_loss": float(self.test_loss),
            "test_accuracy": float(self.test_accuracy),
            "precision": [float(p) for p in self.precision],
            "recall": [float(r) for r in self.recall],
            "confusion_matrix": self.confusion_matrix.tolist(),
        }


def predict_probabilities(model: Any, images: np.ndarray) -> np.ndarray:
    """Each image's class probabilities, shape (N, classes)."""
    return np.asarray(model.predict(images, batch_size=PREDICT_BATCH_SIZE, verbose=0))


def evaluate(model: Any, images: np.ndarray, labels: np.ndarray) -> Evaluation:
    """Loss and accuracy as Keras computes them, and the confusion matrix with per-class precision and recall."""
    loss, accuracy = model.evaluate(images, labels, batch_size=PREDICT_BATCH_SIZE, verbose=0)
    matrix = confusion_matrix(labels, predict_probabilities(model, images).argmax(axis=1))
    precision, recall = precision_recall(matrix)
    return Evaluation(float(loss), float(accuracy), matrix, precision, recall)
