"""Building and running the pipeline on the synthetic data set, for the test modules that need it.

Shared helpers live in support modules like this one (fixtures in conftest.py), so that no test
module imports another.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from mnist_pipeline.defs.automation.retraining import mnist_files_changed, weekly_retraining_schedule
from mnist_pipeline.defs.automation.what_changed import keys_materialized, materialize_what_changed
from mnist_pipeline.defs.data.resources import MnistSource
from mnist_pipeline.defs.evaluation.gates import QualityGates
from mnist_pipeline.defs.serving.resources import ServedModel
from mnist_pipeline.defs.jobs import full_pipeline_job, observe_sources_job, predictions_and_plots_job
from mnist_pipeline.defs.model.config import hyperparameters_config, hyperparameters_run_config
from mnist_pipeline.defs.resources import storage_resources
from mnist_pipeline.definitions import all_assets, all_checks

ASSET_KEYS = ["raw_mnist", "scaled_mnist", "compiled_model", "trained_model", "evaluation_metrics", "predictions_table", "digit_plots"]
ALL_KEYS = {"mnist_files", "hyperparameters", *ASSET_KEYS, "production_model"}  # the main chain: all_assets, the full job
EXPERIMENT_KEYS = {"candidate_model", "candidate_evaluation", "leaderboard", "champion_model"}  # sweeps: in the code location only
LOCATION_KEYS = ALL_KEYS | EXPERIMENT_KEYS
FAST_TRAINING = hyperparameters_run_config(epochs=2, batch_size=30)
FAST = hyperparameters_config(epochs=1, batch_size=30)


def resources(idx_dir: Path, storage_dir: Path, min_test_accuracy: float = 0.0) -> dict:
    """Synthetic data; the accuracy gate is off unless a test sets it."""
    return {
        "mnist_source": MnistSource(data_dir=str(idx_dir), download_sources=[]),
        "quality_gates": QualityGates(min_test_accuracy=min_test_accuracy),
        "served_model": ServedModel(source="main"),
        **storage_resources(str(storage_dir)),
    }


def build_defs(idx_dir, storage_dir, replace_code_version: dict[str, str] | None = None) -> dg.Definitions:
    assets = []
    for asset in all_assets:
        if isinstance(asset, dg.AssetsDefinition) and replace_code_version:
            key = asset.key.to_user_string()
            if key in replace_code_version:
                asset = asset.map_asset_specs(lambda spec: spec.replace_attributes(code_version=replace_code_version[key]))
        assets.append(asset)
    return dg.Definitions(
        assets=assets,
        asset_checks=all_checks,
        jobs=[full_pipeline_job, observe_sources_job, predictions_and_plots_job],
        resources={
            "mnist_source": MnistSource(data_dir=str(idx_dir), download_sources=[]),
            "quality_gates": QualityGates(min_test_accuracy=0.0),
            "served_model": ServedModel(source="main"),
            **storage_resources(str(storage_dir)),
        },
    )


def update(defs, instance, hyperparameters=None, log=lambda message: None):
    outcome = materialize_what_changed(
        defs, instance, job_name=full_pipeline_job.name, observe_job_name=observe_sources_job.name,
        hyperparameters=hyperparameters, log=log,
    )
    assert outcome.success
    return keys_materialized(outcome.run) if outcome.run else []


def change_a_label(idx_dir: Path) -> None:
    labels = idx_dir / "train-labels-idx1-ubyte"
    raw = bytearray(labels.read_bytes())
    raw[8] = (raw[8] + 1) % 10
    labels.write_bytes(bytes(raw))


# The contexts are closed at once (not left to the garbage collector), so the instance
# state they hold is released in order, within the test that made them.
def evaluate_schedule(defs, instance, idx_dir):
    with dg.build_schedule_context(
        instance=instance, repository_def=defs.get_repository_def(),
        resources={"mnist_source": MnistSource(data_dir=str(idx_dir), download_sources=[])},
    ) as context:
        return weekly_retraining_schedule()(context)


def evaluate_sensor(defs, instance, idx_dir, cursor=None):
    with dg.build_sensor_context(
        instance=instance, repository_def=defs.get_repository_def(), cursor=cursor,
        resources={"mnist_source": MnistSource(data_dir=str(idx_dir) if idx_dir else None, download_sources=[])},
    ) as context:
        return mnist_files_changed(context), context.cursor
