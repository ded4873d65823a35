"""Every figure of the report, from the data, the training history, the metrics and the predictions.

Free of Dagster, so a plain script (benchmarks/bare_keras.py) draws exactly the
figures the digit_plots asset does. Imports matplotlib: import it inside asset
bodies only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mnist_pipeline.data.dataset import DigitDataset
from mnist_pipeline.evaluation.predictions import PROBABILITY_COLUMNS
from mnist_pipeline.reports import plots

GRID_SIZE = 32
MISTAKES_SHOWN = 16
PROBABILITY_INDICES = (0, 2)  # the tutorial's examples: a 7 and a 1


def render_plots(
    dataset: DigitDataset, history: dict[str, list[float]], metrics: dict, table: pd.DataFrame
) -> dict[str, bytes]:
    """Every figure of the report, by name."""
    images = dataset.test_images
    figures = {
        "sample_digit": plots.sample_digit(dataset.train_images[0], int(dataset.train_labels[0])),
        "prediction_grid": plots.digit_grid(
            images[:GRID_SIZE],
            table["true_label"].to_numpy()[:GRID_SIZE],
            table["predicted_label"].to_numpy()[:GRID_SIZE],
            title="first test digits: predicted (true)",
        ),
        "confusion_matrix": plots.confusion_matrix_heatmap(np.asarray(metrics["confusion_matrix"])),
        "training_curves": plots.training_curves(history),
    }
    mistakes = table[~table["correct"]].sort_values("confidence", ascending=False).head(MISTAKES_SHOWN)
    figures["confident_mistakes"] = plots.digit_grid(
        images[mistakes["index"].to_numpy()],
        mistakes["true_label"].tolist(),
        mistakes["predicted_label"].tolist(),
        title="most confident mistakes: predicted (true), confidence",
        captions=[
            f"{p} ({t}) {c:.2f}"
            for p, t, c in zip(mistakes["predicted_label"], mistakes["true_label"], mistakes["confidence"])
        ],
    )
    for index in PROBABILITY_INDICES:
        if index < len(table):
            row = table.iloc[index]
            figures[f"probabilities_test_{index}"] = plots.class_probabilities(
                row[PROBABILITY_COLUMNS].to_numpy(dtype=float), int(row["true_label"]), index
            )
    return figures
