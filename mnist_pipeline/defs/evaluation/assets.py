"""evaluation_metrics and predictions_table: how the trained model does on the test set."""

import time

import dagster as dg

from mnist_pipeline.ml.data.dataset import DigitDataset
from mnist_pipeline.ml.evaluation.evaluate import evaluate, predict_probabilities
from mnist_pipeline.display import markdown_table, rounded
from mnist_pipeline.ml.evaluation.predictions import build_predictions_table, column_descriptions
from mnist_pipeline.ml.model.trained import TrainedModel
from mnist_pipeline.ml.content_versions import json_version, model_version, table_version


@dg.asset(
    # Also kept per model version, for the promotion gate and `models list` (defs/io_managers.py).
    io_manager_key="evaluation_io_manager",
    kinds={"keras", "json"},
)
def evaluation_metrics(
    context: dg.AssetExecutionContext,
    trained_model: TrainedModel,
    scaled_mnist: DigitDataset,
) -> dg.Output[dict]:
    """Test loss and accuracy from `evaluate` on the test set, per-class precision/recall, confusion matrix."""
    evaluation = evaluate(trained_model.model, scaled_mnist.test_images, scaled_mnist.test_labels)
    test_loss, test_accuracy, matrix = evaluation.test_loss, evaluation.test_accuracy, evaluation.confusion_matrix
    precision, recall = evaluation.precision, evaluation.recall
    # The version trained_model recorded (its content hash), not hashed again.
    metrics = evaluation.record(trained_model.version or model_version(trained_model.model), scaled_mnist.num_test)
    context.log.info(f"Test accuracy {test_accuracy:.4f}, test loss {test_loss:.4f}")
    names = scaled_mnist.names()
    per_class = [[names[i], precision[i], recall[i], int(matrix[i].sum())] for i in range(len(matrix))]
    return dg.Output(
        metrics,
        data_version=dg.DataVersion(json_version(metrics)),
        metadata={
            "model_version": metrics["model_version"],
            "test_accuracy": rounded(test_accuracy),
            "test_loss": rounded(test_loss),
            "num_test_images": int(scaled_mnist.num_test),
            "per_class": dg.MetadataValue.md(markdown_table(["class", "precision", "recall", "support"], per_class)),
            "confusion_matrix": dg.MetadataValue.md(
                markdown_table(["true \\ predicted", *names], [[names[i], *row] for i, row in enumerate(matrix.tolist())])
            ),
        },
    )


@dg.asset(
    io_manager_key="parquet_io_manager",
    kinds={"pandas", "parquet"},
    # Predictions are published only after the model's evaluation has run.
    deps=["evaluation_metrics"],
)
def predictions_table(
    context: dg.AssetExecutionContext, trained_model: TrainedModel, scaled_mnist: DigitDataset
) -> dg.Output:  # a pandas DataFrame (not in the annotation: loading the code location does not import pandas)
    """One row per test image: true and predicted label and class name, confidence, the ten class probabilities, correct."""
    started = time.perf_counter()
    probabilities = predict_probabilities(trained_model.model, scaled_mnist.test_images)
    table = build_predictions_table(probabilities, scaled_mnist.test_labels, scaled_mnist.names())
    seconds = time.perf_counter() - started
    descriptions = column_descriptions(scaled_mnist.names())
    preview = table.head(10)
    return dg.Output(
        table,
        data_version=dg.DataVersion(table_version(table)),
        metadata={
            "dagster/row_count": len(table),
            "dagster/column_schema": dg.TableSchema(
                columns=[
                    dg.TableColumn(str(name), str(dtype), description=descriptions[str(name)])
                    for name, dtype in table.dtypes.items()
                ]
            ),
            "accuracy": rounded(table["correct"].mean()),
            "mistakes": int((~table["correct"]).sum()),
            "prediction_seconds": rounded(seconds),
            "preview": dg.MetadataValue.md(markdown_table(list(preview.columns), preview.itertuples(index=False))),
        },
    )
