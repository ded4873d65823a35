"""Every figure of the report, from the data, the training history, the metrics and the predictions.

Free of Dagster, so a plain script (benchmarks/bare_keras.py) draws exactly the
figures the digit_plots asset does. Imports matplotlib: import it inside asset
bodies only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mnist_pipeline.ml.data.dataset import DigitDataset
from mnist_pipeline.ml.evaluation.predictions import PROBABILITY_COLUMNS
from mnist_pipeline.ml.reports import plots

GRID_SIZE = 32
MISTAKES_SHOWN = 16
OVERVIEW_FIRST, OVERVIEW_MISTAKES = 5, 5  # the overview's two rows of predictions
PROBABILITY_INDICES = (0, 2)  # the tutorial's examples: a 7 and a 1


def headline(metrics: dict, table: pd.DataFrame) -> str:
    mistakes = int((~table["correct"]).sum())
    return (
        f"test accuracy {metrics['test_accuracy']:.2%}   test loss {metrics['test_loss']:.4f}   "
        f"{mistakes:,} of {len(table):,} test images misclassified"
    )


def render_figures(
    dataset: DigitDataset, history: dict[str, list[float]], metrics: dict, table: pd.DataFrame
) -> dict[str, Figure]:
    """Every figure of the report, by name, the overview first. Call inside `plots.style()`."""
    images, names = dataset.test_images, dataset.names()
    matrix = np.asarray(metrics["confusion_matrix"])
    mistakes = table[~table["correct"]].sort_values("confidence", ascending=False)

    def named(labels) -> list[str]:
        return [names[int(label)] for label in labels]

    # Fewer mistakes than places for them (a good model): more of the first test images instead.
    first = OVERVIEW_FIRST + OVERVIEW_MISTAKES - min(len(mistakes), OVERVIEW_MISTAKES)
    shown = pd.concat([table.head(first), mistakes.head(OVERVIEW_MISTAKES)])
    figures = {
        "overview": plots.overview(
            headline(metrics, table),
            images[shown["index"].to_numpy()],
            named(shown["true_label"]),
            named(shown["predicted_label"]),
            shown["confidence"].tolist(),
            matrix,
            names,
            history,
        ),
        "sample_digit": plots.sample_digit(dataset.train_images[0], names[int(dataset.train_labels[0])]),
        "prediction_grid": plots.digit_grid(
            images[:GRID_SIZE],
            named(table["true_label"][:GRID_SIZE]),
            named(table["predicted_label"][:GRID_SIZE]),
            title="first test images: predicted class (and the true class, in red, where it differs)",
        ),
        "confusion_matrix": plots.confusion_matrix_heatmap(matrix, names),
        "training_curves": plots.training_curves(history),
    }
    top_mistakes = mistakes.head(MISTAKES_SHOWN)
    figures["confident_mistakes"] = plots.digit_grid(
        images[top_mistakes["index"].to_numpy()],
        named(top_mistakes["true_label"]),
        named(top_mistakes["predicted_label"]),
        title="most confident mistakes: predicted class, true class, confidence",
        confidences=top_mistakes["confidence"].tolist(),
    )
    for index in PROBABILITY_INDICES:
        if index < len(table):
            row = table.iloc[index]
            figures[f"probabilities_test_{index}"] = plots.class_probabilities(
                row[PROBABILITY_COLUMNS].to_numpy(dtype=float), int(row["true_label"]), index, names
            )
    return figures


def render_plots(
    dataset: DigitDataset, history: dict[str, list[float]], metrics: dict, table: pd.DataFrame
) -> dict[str, bytes]:
    """Every figure of the report as PNG bytes, by name, the overview first."""
    with plots.style():
        return {name: plots.to_png(figure) for name, figure in render_figures(dataset, history, metrics, table).items()}
