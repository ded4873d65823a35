"""Which model version is served, and the one command that changes it by hand.

The served version is the `production_model` asset: a small JSON pointer
into the model registry. The pipeline moves it forward only when every gate
passes; `mnist-pipeline models promote VERSION` moves it to any registered
version that passed the accuracy gate (a rollback), and records that in
Dagster as a materialization of `production_model`.
"""

from __future__ import annotations

import time
from typing import Any

from mnist_pipeline.evaluation.gates import QualityGates
from mnist_pipeline.versioning.registry import ModelRegistry

PRODUCTION_ASSET = "production_model"


class PromotionRefused(RuntimeError):
    """A model version may not be served."""


def pointer(version: str, test_accuracy: float, reason: str, run_id: str | None, previous: str | None) -> dict[str, Any]:
    return {
        "version": version,
        "test_accuracy": test_accuracy,
        "reason": reason,
        "run_id": run_id,
        "previous_version": previous,
        "promoted_at": time.time(),
    }


def check_promotable(registry: ModelRegistry, gates: QualityGates, version: str) -> dict[str, Any]:
    """The version's evaluation, if it passed the accuracy gate; else PromotionRefused."""
    evaluation = registry.manifest(version)["evaluation"]
    if evaluation is None:
        raise PromotionRefused(f"model {version}: expected a recorded evaluation, found none (it was never evaluated)")
    passed, found = gates.accuracy_passes(evaluation["test_accuracy"])
    if not passed:
        raise PromotionRefused(f"model {version}: {found}")
    return evaluation
