"""evaluation_metrics and predictions_table: how the trained model does on the test set."""


import time

import dagster as dg
import numpy as np
import pandas as pd

from mnist_pipeline.data.dataset import DigitDataset
from mnist_pipeline.evaluation.metrics import confusion_matrix, precision_recall
from mnist_pipeline.evaluation.predictions import build_predictions_table
from mnist_pipeline.model.trained import TrainedModel

GROUP = "evaluation"
PREDICT_BATCH_SIZE = 1000


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


@dg.asset(
    group_name=GROUP,
    io_manager_key="json_io_manager",
    kinds={"keras", "json"},
    owners=["team:ml-platform"],
    tags={"domain": "evaluation"},
)
def evaluation_metrics(
    context: dg.AssetExecutionContext, trained_model: TrainedModel, scaled_mnist: DigitDataset
) -> dict:
    """Test loss and accuracy from `evaluate` on the test set, per-class precision/recall, confusion matrix."""
    model = trained_model.model
    test_loss, test_accuracy = model.evaluate(
        scaled_mnist.test_images, scaled_mnist.test_labels, batch_size=PREDICT_BATCH_SIZE, verbose=0
    )
    probabilities = model.predict(scaled_mnist.test_images, batch_size=PREDICT_BATCH_SIZE, verbose=0)
    matrix = confusion_matrix(scaled_mnist.test_labels, probabilities.argmax(axis=1))
    precision, recall = precision_recall(matrix)
    metrics = {
        "test_loss": float(test_loss),
        "test_accuracy": float(test_accuracy),
        "num_test_images": int(scaled_mnist.num_test),
        "precision": [float(p) for p in precision],
        "recall": [float(r) for r in recall],
        "confusion_matrix": matrix.tolist(),
    }
    context.log.info(f"Test accuracy {test_accuracy:.4f}, test loss {test_loss:.4f}")
    per_class = [[digit, f"{precision[digit]:.4f}", f"{recall[digit]:.4f}", int(matrix[digit].sum())] for digit in range(len(matrix))]
    context.add_output_metadata(
        {
            "test_accuracy": float(test_accuracy),
            "test_loss": float(test_loss),
            "num_test_images": int(scaled_mnist.num_test),
            "per_class": dg.MetadataValue.md(markdown_table(["digit", "precision", "recall", "support"], per_class)),
            "confusion_matrix": dg.MetadataValue.md(
                markdown_table(["true \\ predicted", *map(str, range(len(matrix)))], [[i, *row] for i, row in enumerate(matrix.tolist())])
            ),
        }
    )
    return metrics


@dg.asset(
    group_name=GROUP,
    io_manager_key="parquet_io_manager",
    kinds={"pandas", "parquet"},
    owners=["team:ml-platform"],
    tags={"domain": "evaluation"},
    # Predictions are published only after the model's evaluation has run.
    deps=["evaluation_metrics"],
)
def predictions_table(
    context: dg.AssetExecutionContext, trained_model: TrainedModel, scaled_mnist: DigitDataset
) -> pd.DataFrame:
    """One row per test image: true and predicted label, confidence, the ten class probabilities, correct."""
    started = time.perf_counter()
    probabilities = trained_model.model.predict(
        scaled_mnist.test_images, batch_size=PREDICT_BATCH_SIZE, verbose=0
    )
    table = build_predictions_table(np.asarray(probabilities), scaled_mnist.test_labels)
    seconds = time.perf_counter() - started
    preview = table.head(10).round(4)
    context.add_output_metadata(
        {
            "dagster/row_count": len(table),
            "accuracy": float(table["correct"].mean()),
            "mistakes": int((~table["correct"]).sum()),
            "prediction_seconds": round(seconds, 3),
            "preview": dg.MetadataValue.md(markdown_table(list(preview.columns), preview.values.tolist())),
        }
    )
    return table
