"""The per-image predictions table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mnist_pipeline.data.dataset import NUM_CLASSES

PROBABILITY_COLUMNS = [f"prob_{digit}" for digit in range(NUM_CLASSES)]


def build_predictions_table(probabilities: np.ndarray, true_labels: np.ndarray) -> pd.DataFrame:
    """One row per image: index, true and predicted label, confidence, the ten probabilities, correct."""
    if probabilities.ndim != 2 or probabilities.shape[1] != NUM_CLASSES:
        raise ValueError(f"expected probabilities of shape (N, {NUM_CLASSES}), found {probabilities.shape}")
    if len(probabilities) != len(true_labels):
        raise ValueError(
            f"expected one probability row per label, found {len(probabilities)} rows and {len(true_labels)} labels"
        )
    predicted = probabilities.argmax(axis=1)
    table = pd.DataFrame(
        {
            "index": np.arange(len(true_labels), dtype=np.int64),
            "true_label": true_labels.astype(np.int64),
            "predicted_label": predicted.astype(np.int64),
            "confidence": probabilities.max(axis=1).astype(np.float32),
        }
    )
    for digit, column in enumerate(PROBABILITY_COLUMNS):
        table[column] = probabilities[:, digit].astype(np.float32)
    table["correct"] = table["true_label"] == table["predicted_label"]
    return table
