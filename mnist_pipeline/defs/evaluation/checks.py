"""Blocking checks on the evaluation and the predictions: the accuracy gate and table integrity."""

import dagster as dg
import numpy as np
import pandas as pd

from mnist_pipeline.display import rounded
from mnist_pipeline.defs.evaluation.gates import QualityGates
from mnist_pipeline.ml.evaluation.predictions import PROBABILITY_COLUMNS
from mnist_pipeline.settings import DEFAULT_MIN_TEST_ACCURACY, MIN_TEST_ACCURACY

Outcome = tuple[bool, str]
ROW_SUM_TOLERANCE = 1e-4


def rows_sum_to_one(table: pd.DataFrame) -> Outcome:
    sums = table[PROBABILITY_COLUMNS].to_numpy(dtype=np.float64).sum(axis=1)
    worst = float(np.max(np.abs(sums - 1.0))) if len(sums) else 0.0
    return worst <= ROW_SUM_TOLERANCE, f"expected every row's probabilities to sum to 1 (within {ROW_SUM_TOLERANCE}), worst is off by {worst:.2e}"


def table_complete(table: pd.DataFrame, expected_rows: int) -> Outcome:
    missing = int(table.isna().sum().sum())
    passed = len(table) == expected_rows and missing == 0
    return passed, f"expected {expected_rows} rows and no missing values, found {len(table)} rows and {missing} missing values"


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
def predictions_table_checks(predictions_table: pd.DataFrame, evaluation_metrics: dict):
    for name, (passed, found) in (
        ("rows_sum_to_one", rows_sum_to_one(predictions_table)),
        ("complete", table_complete(predictions_table, evaluation_metrics["num_test_images"])),
    ):
        yield dg.AssetCheckResult(asset_key="predictions_table", check_name=name, passed=passed, description=found)
