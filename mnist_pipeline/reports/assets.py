"""digit_plots: the PNG figures a user looks at in the UI."""


import base64

import dagster as dg
import numpy as np
import pandas as pd

from mnist_pipeline.data.dataset import DigitDataset
from mnist_pipeline.evaluation.predictions import PROBABILITY_COLUMNS
from mnist_pipeline.model.trained import TrainedModel
from mnist_pipeline.reports import plots
from mnist_pipeline.versioning.code_version import code_version
from mnist_pipeline.versioning.content import files_version

GROUP = "reports"
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


def embedded_png(name: str, content: bytes) -> dg.MetadataValue:
    return dg.MetadataValue.md(f"![{name}](data:image/png;base64,{base64.b64encode(content).decode()})")


@dg.asset(
    group_name=GROUP,
    io_manager_key="png_io_manager",
    kinds={"matplotlib", "png"},
    owners=["team:ml-platform"],
    tags={"domain": "reports"},
    code_version=code_version(__name__, "digit_plots"),
)
def digit_plots(
    context: dg.AssetExecutionContext,
    scaled_mnist: DigitDataset,
    trained_model: TrainedModel,
    evaluation_metrics: dict,
    predictions_table: pd.DataFrame,
) -> dg.Output[dict]:
    """A sample digit, predicted vs true grid, confident mistakes, class probabilities, confusion matrix, training curves."""
    figures = render_plots(scaled_mnist, trained_model.history, evaluation_metrics, predictions_table)
    metadata: dict[str, object] = {f"plot_{name}": embedded_png(name, png) for name, png in figures.items()}
    metadata["largest_png_bytes"] = max(len(png) for png in figures.values())
    return dg.Output(figures, data_version=dg.DataVersion(files_version(figures)), metadata=metadata)
