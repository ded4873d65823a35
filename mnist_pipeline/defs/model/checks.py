"""Blocking check on the trained model: no NaN or infinite weight (the rule: ml/model/weights.py)."""

import dagster as dg

from mnist_pipeline.ml.model.trained import TrainedModel
from mnist_pipeline.ml.model.weights import weights_finite


@dg.asset_check(asset="trained_model", blocking=True, description="Every weight of the trained model is finite.")
def trained_weights_finite(trained_model: TrainedModel) -> dg.AssetCheckResult:
    passed, found = weights_finite(trained_model.model.get_weights())
    return dg.AssetCheckResult(passed=passed, description=found)
