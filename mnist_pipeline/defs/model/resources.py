"""The model registry as a Dagster resource."""

from typing import Optional

import dagster as dg
from pydantic import Field

from mnist_pipeline.paths import STORAGE_DIR_RULE, configured_location, default_storage_dir
from mnist_pipeline.registry.store import ModelRegistry
from mnist_pipeline.storage.location import StoragePath


REGISTRY_DIR_NAME = "model_registry"


def default_registry_dir() -> StoragePath:
    return default_storage_dir() / REGISTRY_DIR_NAME


class ModelRegistryResource(dg.ConfigurableResource):
    """Where every trained model version is kept."""

    root: Optional[str] = Field(default=None, description=f"Registry directory or s3:// URL; unset: model_registry in the storage directory ({STORAGE_DIR_RULE}).")

    def registry(self) -> ModelRegistry:
        return ModelRegistry(configured_location(self.root, default_registry_dir, f"{type(self).__name__}.root"))


class TrainingCheckpoints(dg.ConfigurableResource):
    """Where unfinished training keeps its per-epoch checkpoints."""

    root: Optional[str] = Field(default=None, description=f"Checkpoint directory or s3:// URL; unset: training_checkpoints in the storage directory ({STORAGE_DIR_RULE}).")

    def root_dir(self) -> StoragePath:
        return configured_location(self.root, lambda: default_storage_dir() / "training_checkpoints", f"{type(self).__name__}.root")

    def directory(self, training_key: str) -> StoragePath:
        return self.root_dir() / training_key
