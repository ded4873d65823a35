"""Blocking checks on the evaluation and the predictions: the accuracy gate and table integrity."""

import dagster as dg

from mnist_pipeline.display import rounded
from mnist_pipeline.defs.evaluation.gates import QualityGates
from mnist_pipeline.ml.evaluation.predictions import rows_sum_to_one, table_complete
from mnist_pipeline.settings import DEFAULT_MIN_TEST_ACCURACY, MIN_TEST_ACCURACY


@dg.asset_check(
    asset="evaluation_metrics", blocking=True,
    description=f"Test accuracy at least the configured gate (${MIN_TEST_ACCURACY}; {DEFAULT_MIN_TEST_ACCURACY} by default).",
)
def accuracy_gate(evaluation_metrics: dict, quality_gates: QualityGates) -> dg.AssetCheckResult:
    """The same verdict production_model and `models promote` reach: all three ask QualityGates.accuracy_passes."""
    passed, found = quality_gates.accuracy_passes(evaluation_metrics["test_accuracy"])
    return dg.AssetCheckResult(
        passed=passed, description=found,
        metadata={"test_accuracy": rounded(evaluation_metrics["test_accuracy"]), "threshold": quality_gates.threshold()},
    )


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec("rows_sum_to_one", asset="predictions_table", blocking=True, description="Each row's ten probabilities sum to 1."),
        dg.AssetCheckSpec(
            "complete", asset="predictions_table", blocking=True, additional_deps=["evaluation_metrics"],
            description="One row per test image, no missing values.",
        ),
    ],
    ins={"predictions_table": dg.AssetIn("predictions_table"), "evaluation_metrics": dg.AssetIn("evaluation_metrics")},
)
# predictions_table is a pandas DataFrame, left unannotated so that loading the code location does not import pandas.
def predictions_table_checks(predictions_table, evaluation_metrics: dict):
    for name, (passed, found) in (
        ("rows_sum_to_one", rows_sum_to_one(predictions_table)),
        ("complete", table_complete(predictions_table, evaluation_metrics["num_test_images"])),
    ):
        yield dg.AssetCheckResult(asset_key="predictions_table", check_name=name, passed=passed, description=found)
