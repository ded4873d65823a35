"""The model registry as a Dagster resource."""

from pathlib import Path
from typing import Optional

import dagster as dg
from pydantic import Field

from mnist_pipeline.paths import STORAGE_DIR_RULE, configured_dir, default_storage_dir
from mnist_pipeline.registry.store import ModelRegistry


REGISTRY_DIR_NAME = "model_registry"


def default_registry_dir() -> Path:
    return default_storage_dir() / REGISTRY_DIR_NAME


class ModelRegistryResource(dg.ConfigurableResource):
    """Where every trained model version is kept."""

    root: Optional[str] = Field(default=None, description=f"Registry directory; unset: model_registry in the storage directory ({STORAGE_DIR_RULE}).")

    def registry(self) -> ModelRegistry:
        return ModelRegistry(configured_dir(self.root, default_registry_dir))


class TrainingCheckpoints(dg.ConfigurableResource):
    """Where unfinished training keeps its per-epoch checkpoints."""

    root: Optional[str] = Field(default=None, description=f"Checkpoint directory; unset: training_checkpoints in the storage directory ({STORAGE_DIR_RULE}).")

    def root_dir(self) -> Path:
        return configured_dir(self.root, lambda: default_storage_dir() / "training_checkpoints")

    def directory(self, training_key: str) -> Path:
        return self.root_dir() / training_key
