"""Caching users can trust: a re-run with nothing changed does nothing, and one change
recomputes exactly the assets downstream of it."""

import json

import dagster as dg
import numpy as np
import pytest

from mnist_pipeline.defs.model.config import hyperparameters_config
from mnist_pipeline.ml.model.trained import TrainedModel
from mnist_pipeline.defs.resources import io_managers
from mnist_pipeline.registry.evaluations import EvaluationRecords
from mnist_pipeline.ml.content_versions import model_version
from mnist_pipeline.registry.store import ModelRegistry, UnknownModelVersionError
from mnist_pipeline.defs.automation.what_changed import unsynced_assets
from mnist_pipeline_tests.pipeline_support import FAST, build_defs, update

pytestmark = pytest.mark.slow  # the fast tier (-m 'not slow') leaves this module out

EVERYTHING = [
    "compiled_model", "digit_plots", "evaluation_metrics", "hyperparameters", "predictions_table", "production_model",
    "raw_mnist", "scaled_mnist", "trained_model",
]
RETRAINED = ["compiled_model", "digit_plots", "evaluation_metrics", "predictions_table", "production_model", "trained_model"]


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
    assert len(first) == 1
    assert EvaluationRecords(storage_dir / "evaluation_metrics.by_model_version").read(first[0]["version"]) is not None
    # Retrain from scratch in a fresh storage + instance: same seed, data, code -> same bytes.
    with dg.DagsterInstance.ephemeral() as other:
        again = build_defs(idx_dir, tmp_path / "other_storage")
        update(again, other, hyperparameters=FAST)
    a = io_managers(str(storage_dir))["registry_model_io_manager"].read(dg.AssetKey("trained_model"))
    b = io_managers(str(tmp_path / "other_storage"))["registry_model_io_manager"].read(dg.AssetKey("trained_model"))
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


# --- A damaged or missing stored artifact counts as changed ---------------------------------------

AFTER_TRAINING = ["digit_plots", "evaluation_metrics", "predictions_table", "production_model", "trained_model"]


def truncate(path, keep: int = 1000) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(keep)


def stored_model_file(storage_dir):
    """The trained model's one file: in the registry, under the version trained_model.json names."""
    version = json.loads((storage_dir / "trained_model.json").read_text())["version"]
    return storage_dir / "model_registry" / version / "model.keras"


def test_damaged_model_fails_the_predictions_job_naming_it_not_as_file_not_found(warm, instance, storage_dir):
    """The issue's case: a truncated trained model file under mnist_predictions_and_plots."""
    model_file = stored_model_file(storage_dir)
    truncate(model_file)
    result = warm.resolve_job_def("mnist_predictions_and_plots").execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    error, messages = failure.step_failure_data.error, []
    while error is not None:  # Dagster wraps it: "Error occurred while loading input ..."
        messages.append(error.message)
        error = error.cause
    message = "\n".join(messages)
    assert f"{model_file}: expected the model file of version {model_file.parent.name} with SHA-256" in message
    assert "the file is damaged" in message and "Rebuild it with `mnist-pipeline update`" in message
    assert "not found" not in message.lower()


def test_update_rebuilds_a_damaged_model_and_what_is_downstream(warm, instance, storage_dir):
    truncate(stored_model_file(storage_dir))
    assert unsynced_assets(instance, warm.resolve_asset_graph()) == [], "Dagster's own records still say in sync"
    said = []
    assert update(warm, instance, log=said.append) == AFTER_TRAINING
    assert any(line.startswith("Damaged: trained_model: ") and "model.keras" in line for line in said), said
    assert update(warm, instance) == [], "repaired: the next update does nothing"
    result = warm.resolve_job_def("mnist_predictions_and_plots").execute_in_process(instance=instance)
    assert result.success


def test_update_rebuilds_a_deleted_data_set_and_what_is_downstream(warm, instance, storage_dir):
    (storage_dir / "scaled_mnist.npz").unlink()
    assert update(warm, instance) == sorted(["scaled_mnist", "compiled_model", *AFTER_TRAINING])


def test_update_rebuilds_damaged_plots_only(warm, instance, storage_dir):
    plot = next((storage_dir / "digit_plots").glob("*.png"))
    truncate(plot, keep=10)
    assert update(warm, instance) == ["digit_plots"]


def test_update_rebuilds_an_artifact_replaced_outside_its_materialization(warm, instance, storage_dir):
    """A file and record that agree, but are not what the last materialization wrote (another run, a copy)."""
    from mnist_pipeline.defs.io_managers import JsonIOManager

    manager = JsonIOManager(base_dir=str(storage_dir))
    metrics = manager.load(storage_dir / "evaluation_metrics.json")
    manager.publish({**metrics, "test_accuracy": 0.0}, storage_dir / "evaluation_metrics.json")
    assert update(warm, instance) == ["digit_plots", "evaluation_metrics", "predictions_table", "production_model"]
