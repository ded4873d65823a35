"""Caching users can trust: a re-run with nothing changed does nothing, and one change
recomputes exactly the assets downstream of it."""

import dagster as dg
import numpy as np
import pytest

from mnist_pipeline.data.resources import MnistSource
from mnist_pipeline.definitions import all_assets, all_checks
from mnist_pipeline.evaluation.gates import QualityGates
from mnist_pipeline.jobs import full_pipeline_job, observe_sources_job
from mnist_pipeline.model.config import hyperparameters_config
from mnist_pipeline.model.trained import TrainedModel
from mnist_pipeline.resources import storage_resources
from mnist_pipeline.storage.io_managers import KerasModelIOManager
from mnist_pipeline.versioning.content import model_version
from mnist_pipeline.versioning.registry import ModelRegistry, UnknownModelVersionError
from mnist_pipeline.versioning.what_changed import keys_materialized, materialize_what_changed, unsynced_assets

FAST = hyperparameters_config(epochs=1, batch_size=30)
EVERYTHING = [
    "compiled_model", "digit_plots", "evaluation_metrics", "hyperparameters", "predictions_table", "production_model",
    "raw_mnist", "scaled_mnist", "trained_model",
]
RETRAINED = ["compiled_model", "digit_plots", "evaluation_metrics", "predictions_table", "production_model", "trained_model"]


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
        jobs=[full_pipeline_job, observe_sources_job],
        resources={
            "mnist_source": MnistSource(data_dir=str(idx_dir), download_sources=[]),
            "quality_gates": QualityGates(min_test_accuracy=0.0),
            **storage_resources(str(storage_dir)),
        },
    )


def update(defs, instance, hyperparameters=None):
    outcome = materialize_what_changed(
        defs, instance, job_name=full_pipeline_job.name, observe_job_name=observe_sources_job.name, hyperparameters=hyperparameters
    )
    assert outcome.success
    return keys_materialized(outcome.run) if outcome.run else []


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture
def warm(idx_dir, storage_dir, instance):
    """A pipeline materialized once with fast hyperparameters."""
    defs = build_defs(idx_dir, storage_dir)
    assert update(defs, instance, hyperparameters=FAST) == [k for k in EVERYTHING if k != "hyperparameters"]
    return defs


def test_second_run_with_nothing_changed_does_nothing(warm, instance):
    assert unsynced_assets(instance, warm.resolve_asset_graph()) == []
    assert update(warm, instance) == []


def test_changed_data_file_recomputes_everything_downstream_of_the_data(warm, instance, idx_dir):
    labels = idx_dir / "train-labels-idx1-ubyte"
    raw = bytearray(labels.read_bytes())
    raw[8] = (raw[8] + 1) % 10  # relabel the first training image
    labels.write_bytes(bytes(raw))
    assert update(warm, instance) == [k for k in EVERYTHING if k != "hyperparameters"]


def test_changed_code_of_one_asset_recomputes_it_and_its_downstream_only(warm, instance, idx_dir, storage_dir):
    edited = build_defs(idx_dir, storage_dir, replace_code_version={"evaluation_metrics": "edited"})
    assert update(edited, instance) == ["digit_plots", "evaluation_metrics", "predictions_table", "production_model"]


def test_changed_hyperparameter_retrains_but_leaves_the_data_alone(warm, instance):
    assert update(warm, instance, hyperparameters=hyperparameters_config(epochs=1, batch_size=30, learning_rate=0.02)) == RETRAINED


def test_changed_seed_retrains_but_leaves_the_data_alone(warm, instance):
    assert update(warm, instance, hyperparameters={**FAST, "seed": 7}) == RETRAINED


def test_setting_the_same_hyperparameters_again_changes_nothing(warm, instance):
    assert update(warm, instance, hyperparameters=FAST) == []


def test_training_is_deterministic_and_every_version_is_kept(warm, instance, idx_dir, storage_dir, tmp_path):
    registry = ModelRegistry(storage_dir / "model_registry")
    first = registry.list()
    assert len(first) == 1 and first[0]["evaluation"] is not None
    # Retrain from scratch in a fresh storage + instance: same seed, data, code -> same bytes.
    with dg.DagsterInstance.ephemeral() as other:
        again = build_defs(idx_dir, tmp_path / "other_storage")
        update(again, other, hyperparameters=FAST)
    a = KerasModelIOManager(base_dir=str(storage_dir)).load(storage_dir / "trained_model.keras")
    b = KerasModelIOManager(base_dir=str(tmp_path / "other_storage")).load(tmp_path / "other_storage" / "trained_model.keras")
    assert isinstance(a, TrainedModel) and isinstance(b, TrainedModel)
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights()):
        assert wa.tobytes() == wb.tobytes()
    assert model_version(a.model) == model_version(b.model) == first[0]["version"]
    # A new seed gives a second version; the first stays loadable.
    update(warm, instance, hyperparameters={**FAST, "seed": 7})
    versions = [entry["version"] for entry in registry.list()]
    assert len(versions) == 2 and versions[0] == first[0]["version"]
    restored = registry.load(versions[0])
    for wa, wr in zip(a.model.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(wa, wr)


def test_unknown_model_version_is_a_clear_error(tmp_path):
    with pytest.raises(UnknownModelVersionError, match=r"expected a registered model version 'abc', found none \(registered: none\)"):
        ModelRegistry(tmp_path / "registry").load("abc")
