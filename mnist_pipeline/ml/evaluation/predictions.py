"""The per-image predictions table and what each of its columns means."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from mnist_pipeline.ml.data.dataset import DIGIT_CLASS_NAMES, NUM_CLASSES

if TYPE_CHECKING:  # pandas is imported where a table is built: the code location loads without it
    import pandas as pd

PROBABILITY_COLUMNS = [f"prob_{digit}" for digit in range(NUM_CLASSES)]
ROW_SUM_TOLERANCE = 1e-4

Outcome = tuple[bool, str]  # passed, and what was expected and found


def build_predictions_table(
    probabilities: np.ndarray, true_labels: np.ndarray, class_names: Sequence[str] = DIGIT_CLASS_NAMES
) -> pd.DataFrame:
    """One row per image: index, true and predicted label and class name, confidence, the ten probabilities, correct."""
    import pandas as pd

    if probabilities.ndim != 2 or probabilities.shape[1] != NUM_CLASSES:
        raise ValueError(f"expected probabilities of shape (N, {NUM_CLASSES}), found {probabilities.shape}")
    if len(probabilities) != len(true_labels):
        raise ValueError(
            f"expected one probability row per label, found {len(probabilities)} rows and {len(true_labels)} labels"
        )
    if len(class_names) != NUM_CLASSES:
        raise ValueError(f"expected {NUM_CLASSES} class names, found {len(class_names)}")
    predicted = probabilities.argmax(axis=1)
    names = list(class_names)
    table = pd.DataFrame(
        {
            "index": np.arange(len(true_labels), dtype=np.int64),
            "true_label": true_labels.astype(np.int64),
            "predicted_label": predicted.astype(np.int64),
            # Categorical: the ten names are stored once, in class order, however many rows there are.
            "true_class": pd.Categorical.from_codes(true_labels.astype(np.int64), categories=names),
            "predicted_class": pd.Categorical.from_codes(predicted.astype(np.int64), categories=names),
            "confidence": probabilities.max(axis=1).astype(np.float32),
        }
    )
    for digit, column in enumerate(PROBABILITY_COLUMNS):
        table[column] = probabilities[:, digit].astype(np.float32)
    table["correct"] = table["true_label"] == table["predicted_label"]
    return table


def column_descriptions(class_names: Sequence[str] = DIGIT_CLASS_NAMES) -> dict[str, str]:
    """What each column of the table holds, as the UI shows it beside the column's name and type."""
    descriptions = {
        "index": "position of the image in the test set (0-based)",
        "true_label": "the image's class index, 0..9, as in the label file",
        "predicted_label": "the class index the model gives the highest probability",
        "true_class": "the name of the true class",
        "predicted_class": "the name of the predicted class",
        "confidence": "the highest of the ten probabilities (that of the predicted class)",
    }
    for index, (column, name) in enumerate(zip(PROBABILITY_COLUMNS, class_names)):
        descriptions[column] = f"probability of class {index}" + (f" ({name})" if name != str(index) else "")
    descriptions["correct"] = "whether the predicted label is the true one"
    return descriptions


def rows_sum_to_one(table: pd.DataFrame) -> Outcome:
    """Each row's class probabilities sum to 1, within ROW_SUM_TOLERANCE."""
    sums = table[PROBABILITY_COLUMNS].to_numpy(dtype=np.float64).sum(axis=1)
    worst = float(np.max(np.abs(sums - 1.0))) if len(sums) else 0.0
    return worst <= ROW_SUM_TOLERANCE, f"expected every row's probabilities to sum to 1 (within {ROW_SUM_TOLERANCE}), worst is off by {worst:.2e}"


def table_complete(table: pd.DataFrame, expected_rows: int) -> Outcome:
    """One row per test image and no missing value."""
    missing = int(table.isna().sum().sum())
    passed = len(table) == expected_rows and missing == 0
    return passed, f"expected {expected_rows} rows and no missing values, found {len(table)} rows and {missing} missing values"
