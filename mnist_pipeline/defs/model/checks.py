"""Blocking check on the trained model: no NaN or infinite weight."""

import dagster as dg
import numpy as np

from mnist_pipeline.ml.model.trained import TrainedModel


def weights_finite(weights: list[np.ndarray]) -> tuple[bool, str]:
    bad = {index: int((~np.isfinite(w)).sum()) for index, w in enumerate(weights) if not np.isfinite(w).all()}
    return not bad, f"expected every weight finite, found non-finite values in weight arrays {bad}" if bad else "every weight is finite"


@dg.asset_check(asset="trained_model", blocking=True, description="Every weight of the trained model is finite.")
def trained_weights_finite(trained_model: TrainedModel) -> dg.AssetCheckResult:
    passed, found = weights_finite(trained_model.model.get_weights())
    return dg.AssetCheckResult(passed=passed, description=found)
