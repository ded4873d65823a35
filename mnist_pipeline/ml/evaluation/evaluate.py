"""How a trained model does on the test images: one pass of Keras's predict, then the metrics in plain numpy.

The loss and accuracy are computed from the predicted probabilities rather than
by Keras's evaluate, which would run the network over the same 10,000 images a
second time for two numbers the probabilities already hold. They agree with
evaluate's to float32 rounding (test_logic.py checks it against Keras's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mnist_pipeline.ml.evaluation.metrics import confusion_matrix, precision_recall

# Keras's crossentropy clips probabilities to [EPSILON, 1 - EPSILON] (keras.config.epsilon()) so that log(0) cannot occur.
CROSSENTROPY_EPSILON = 1e-7

# Prediction keeps no gradients, so large batches fit in memory and make fewer calls into TensorFlow.
PREDICT_BATCH_SIZE = 1000


@dataclass(frozen=True)
class Evaluation:
    test_loss: float
    test_accuracy: float
    confusion_matrix: np.ndarray  # [i, j] = images of class i predicted as j
    precision: np.ndarray  # per class
    recall: np.ndarray  # per class

    def record(self, model_version: str, num_test_images: int) -> dict[str, Any]:
        """What is kept per evaluated model version (evaluation_metrics, and the records the accuracy gate reads)."""
        return {"model_version": model_version, "num_test_images": int(num_test_images), **self.as_metrics()}

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


def sparse_crossentropy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean sparse categorical crossentropy of `probabilities` (N, classes) against integer `labels`, as Keras computes it.

    Keras clips each probability to [epsilon, 1 - epsilon] and renormalises the
    clipped row before taking the log of the true class's share; so does this.
    """
    if probabilities.ndim != 2 or probabilities.shape[0] != labels.shape[0]:
        raise ValueError(
            f"expected probabilities of shape (N, classes) for {labels.shape[0]} labels, found {probabilities.shape}"
        )
    clipped = np.clip(probabilities.astype(np.float64), CROSSENTROPY_EPSILON, 1.0 - CROSSENTROPY_EPSILON)
    true_class = clipped[np.arange(len(labels)), labels.astype(np.int64)]
    return float(np.mean(np.log(clipped.sum(axis=1)) - np.log(true_class)))


def evaluate(model: Any, images: np.ndarray, labels: np.ndarray) -> Evaluation:
    """Loss and accuracy (as Keras's evaluate gives them), the confusion matrix, per-class precision and recall: one predict."""
    probabilities = predict_probabilities(model, images)
    predicted = probabilities.argmax(axis=1)
    matrix = confusion_matrix(labels, predicted)
    precision, recall = precision_recall(matrix)
    accuracy = float(np.mean(predicted == labels))
    return Evaluation(sparse_crossentropy(probabilities, labels), accuracy, matrix, precision, recall)
