"""Where each model version's evaluation is kept (registry/evaluations.py), as a Dagster resource."""

from typing import Optional

import dagster as dg
from pydantic import Field

from mnist_pipeline.paths import STORAGE_DIR_RULE, configured_location, default_storage_dir
from mnist_pipeline.registry.evaluations import EvaluationRecords

# Beside evaluation_metrics.json, the current evaluation: one record per model version ever evaluated.
EVALUATIONS_DIR_NAME = "evaluation_metrics.by_model_version"


class EvaluationRecordsResource(dg.ConfigurableResource):
    """Every model version's evaluation, as evaluation_metrics recorded it."""

    root: Optional[str] = Field(default=None, description=f"Directory (or s3:// URL) of the records; unset: {EVALUATIONS_DIR_NAME} in the storage directory ({STORAGE_DIR_RULE}).")

    def records(self) -> EvaluationRecords:
        return EvaluationRecords(
            configured_location(self.root, lambda: default_storage_dir() / EVALUATIONS_DIR_NAME, f"{type(self).__name__}.root")
        )
