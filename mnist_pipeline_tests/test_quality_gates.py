"""Quality gates: every check passing and failing, the blocking accuracy gate, promotion and rollback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from mnist_pipeline.ml.data import quality
from mnist_pipeline.ml.data.dataset import DigitDataset
from mnist_pipeline.ml.data.preprocessing import scale_images
from mnist_pipeline.definitions import all_assets, all_checks
from mnist_pipeline.ml.evaluation.predictions import rows_sum_to_one, table_complete
from mnist_pipeline.defs.evaluation.gates import QualityGates
from mnist_pipeline.ml.evaluation.predictions import build_predictions_table
from mnist_pipeline.defs.jobs import full_pipeline_job
from mnist_pipeline.ml.model.weights import weights_finite
from mnist_pipeline.defs.model.config import hyperparameters_run_config
from mnist_pipeline.registry.evaluations import EvaluationRecords
from mnist_pipeline.registry.promotion import PromotionRefused, check_promotable
from mnist_pipeline.registry.store import DamagedFileError, ModelRegistry
from mnist_pipeline_tests.synthetic import make_dataset
from mnist_pipeline_tests.registry_support import run_manifest, tiny_model, truncate
from mnist_pipeline_tests.pipeline_support import resources

pytestmark = pytest.mark.slow  # the fast tier (-m 'not slow') leaves this module out

REPO = Path(__file__).resolve().parents[1]


def replaced(dataset: DigitDataset, **arrays) -> DigitDataset:
    return DigitDataset(**{**dataset.arrays(), **arrays})


# --- data rules -----------------------------------------------------------------------------

def test_counts(synthetic_dataset):
    assert quality.counts(synthetic_dataset, (300, 100))[0]
    assert quality.counts(synthetic_dataset, None)[0]
    passed, found = quality.counts(synthetic_dataset, quality.MNIST_COUNTS)
    assert not passed and found == "expected 60000 train and 10000 test images, found 300 and 100"


def test_counts_catch_images_without_labels(synthetic_dataset):
    bad = replaced(synthetic_dataset, test_images=synthetic_dataset.test_images[:90])
    passed, found = quality.counts(bad, None)
    assert not passed and found == "test_images holds 90 images but test_labels holds 100 labels: expected the same count"


def test_shapes(synthetic_dataset):
    assert quality.shapes(synthetic_dataset)[0]
    passed, found = quality.shapes(replaced(synthetic_dataset, test_images=np.zeros((100, 27, 28), np.uint8)))
    assert not passed and found == "test_images: expected images of shape (N, 28, 28), found (100, 27, 28)"


def test_labels_in_range(synthetic_dataset):
    assert quality.labels_in_range(synthetic_dataset)[0]
    labels = synthetic_dataset.train_labels.copy()
    labels[3] = 11
    passed, found = quality.labels_in_range(replaced(synthetic_dataset, train_labels=labels))
    assert not passed and found == "train_labels: expected labels in 0..9, found 11 at index 3 (1 out of range)"


def test_every_class_present(synthetic_dataset):
    assert quality.every_class_present(synthetic_dataset)[0]
    labels = synthetic_dataset.test_labels.copy()
    labels[labels == 4] = 5
    passed, found = quality.every_class_present(replaced(synthetic_dataset, test_labels=labels))
    assert not passed and found == "expected all ten classes in both splits, missing {'test': ['4']}"


def test_scaled_range(synthetic_dataset):
    scaled = replaced(synthetic_dataset, train_images=scale_images(synthetic_dataset.train_images), test_images=scale_images(synthetic_dataset.test_images))
    assert quality.scaled_range(scaled)[0]
    assert quality.scaled_range(synthetic_dataset) == (False, "expected train_images as float32, found uint8")
    too_bright = scaled.test_images.copy()
    too_bright[0, 0, 0] = 1.5
    passed, found = quality.scaled_range(replaced(scaled, test_images=too_bright))
    assert not passed and found == "expected pixels in [0, 1], found [0.0, 1.5]"


def test_no_nan(synthetic_dataset):
    scaled = replaced(synthetic_dataset, train_images=scale_images(synthetic_dataset.train_images), test_images=scale_images(synthetic_dataset.test_images))
    assert quality.no_nan(scaled)[0]
    broken = scaled.train_images.copy()
    broken[1, 2, 3] = np.nan
    assert quality.no_nan(replaced(scaled, train_images=broken)) == (False, "expected no NaN pixels, found 1")


# --- model and output rules -----------------------------------------------------------------

def test_weights_finite():
    assert weights_finite([np.ones(3, np.float32), np.zeros((2, 2), np.float32)])[0]
    passed, found = weights_finite([np.ones(3, np.float32), np.array([1.0, np.inf, np.nan], np.float32)])
    assert not passed and "{1: 2}" in found


def probability_table(rows: int = 5) -> pd.DataFrame:
    probabilities = np.full((rows, 10), 0.1, dtype=np.float32)
    return build_predictions_table(probabilities, np.arange(rows, dtype=np.uint8) % 10)


def test_rows_sum_to_one():
    assert rows_sum_to_one(probability_table())[0]
    table = probability_table()
    table.loc[2, "prob_3"] = 0.5
    passed, found = rows_sum_to_one(table)
    assert not passed and "off by 4.00e-01" in found


def test_table_complete():
    assert table_complete(probability_table(5), 5)[0]
    assert table_complete(probability_table(5), 6) == (False, "expected 6 rows and no missing values, found 5 rows and 0 missing values")
    table = probability_table(5)
    table.loc[1, "confidence"] = np.nan
    assert not table_complete(table, 5)[0]


@pytest.mark.parametrize("accuracy, passes", [(0.97, True), (0.991, True), (0.9699, False)])
def test_accuracy_gate_threshold(accuracy, passes):
    passed, found = QualityGates().accuracy_passes(accuracy)
    assert passed is passes
    assert found.startswith("expected test accuracy >= 0.9700")


# --- the gates in a real run ----------------------------------------------------------------

LEARNS = {"epochs": 2, "batch_size": 30, "optimizer": "adam", "learning_rate": 0.003}
BARELY_LEARNS = {"epochs": 1, "batch_size": 30, "optimizer": "sgd", "learning_rate": 1e-6}


def run_with_gate(idx_dir, storage_dir, min_test_accuracy: float, hyperparameters: dict = LEARNS):
    defs = dg.Definitions(
        assets=all_assets, asset_checks=all_checks, jobs=[full_pipeline_job],
        resources=resources(idx_dir, storage_dir, min_test_accuracy=min_test_accuracy),
    )
    return defs.resolve_job_def(full_pipeline_job.name).execute_in_process(
        run_config=hyperparameters_run_config(**hyperparameters),
        raise_on_error=False,
    )


def check_results(result) -> dict[str, bool]:
    return {
        f"{e.asset_check_evaluation_data.asset_key.to_user_string()}:{e.asset_check_evaluation_data.check_name}": e.asset_check_evaluation_data.passed
        for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def test_every_gate_passes_and_the_model_is_promoted(idx_dir, storage_dir):
    result = run_with_gate(idx_dir, storage_dir, min_test_accuracy=0.5)
    assert result.success
    checks = check_results(result)
    assert len(checks) == 10 and all(checks.values()), checks
    served = json.loads((storage_dir / "production_model.json").read_text())
    assert served["version"] == result.output_for_node("evaluation_metrics")["model_version"]


def test_a_model_below_the_gate_is_never_served(idx_dir, storage_dir):
    result = run_with_gate(idx_dir, storage_dir, min_test_accuracy=0.5, hyperparameters=BARELY_LEARNS)
    assert result.output_for_node("evaluation_metrics")["test_accuracy"] < 0.5
    checks = check_results(result)
    assert checks["evaluation_metrics:accuracy_gate"] is False
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "evaluation_metrics" in materialized
    assert not {"production_model", "predictions_table", "digit_plots"} & materialized, "blocked downstream"
    assert not (storage_dir / "production_model.json").exists()


def test_a_failed_data_check_stops_training(tmp_path, storage_dir):
    from mnist_pipeline_tests.synthetic import write_idx_dir

    dataset = make_dataset()
    labels = dataset.test_labels.copy()
    labels[labels == 9] = 8  # no 9 in the test split
    idx_dir = write_idx_dir(replaced(dataset, test_labels=labels), tmp_path / "idx")
    result = run_with_gate(idx_dir, storage_dir, min_test_accuracy=0.0)
    assert check_results(result)["raw_mnist:every_class_present"] is False
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "raw_mnist" in materialized and "trained_model" not in materialized


def test_promotion_refuses_unevaluated_and_failing_versions(tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    evaluations = EvaluationRecords(tmp_path / "evaluations")
    registry.register("v1", tiny_model(), run_manifest())
    with pytest.raises(PromotionRefused, match="model v1: expected a recorded evaluation in .*v1.json, found none"):
        check_promotable(registry, evaluations, QualityGates(), "v1")
    evaluations.write("v1", {"test_accuracy": 0.95})
    with pytest.raises(PromotionRefused, match=r"model v1: expected test accuracy >= 0.9700, found 0.9500"):
        check_promotable(registry, evaluations, QualityGates(), "v1")
    assert check_promotable(registry, evaluations, QualityGates(min_test_accuracy=0.9), "v1")[0]["test_accuracy"] == 0.95


def test_rollback_with_one_command(idx_dir, tmp_path):
    home = tmp_path / "home"
    (home / "dagster_home").mkdir(parents=True)
    env = {
        **os.environ, "DAGSTER_HOME": str(home / "dagster_home"), "MNIST_PIPELINE_HOME": str(home),
        "MNIST_DATA_DIR": str(idx_dir), "MNIST_PIPELINE_ENV": "offline", "MNIST_MIN_TEST_ACCURACY": "0",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }

    def cli(*args):
        result = subprocess.run([sys.executable, "-m", "mnist_pipeline", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    cli("run", "--epochs", "1", "--batch-size", "30", "--seed", "1")
    first = json.loads((home / "storage" / "production_model.json").read_text())["version"]
    cli("run", "--epochs", "1", "--batch-size", "30", "--seed", "2")
    second = json.loads((home / "storage" / "production_model.json").read_text())
    assert second["version"] != first and second["previous_version"] == first

    assert f"Serving model {first}" in cli("models", "promote", first, "--reason", "second model misbehaves")
    served = json.loads((home / "storage" / "production_model.json").read_text())
    assert served["version"] == first and served["previous_version"] == second["version"]
    with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("production_model"))
        assert event.asset_materialization.metadata["version"].value == first
        promotion = instance.get_run_by_id(event.run_id)
        assert promotion.job_name == "mnist_promote_model" and promotion.is_success, "a real run, in the history"
        assert event.asset_materialization.metadata["reason"].value == "second model misbehaves"
    refused = subprocess.run(
        [sys.executable, "-m", "mnist_pipeline", "models", "promote", "0000000000000000"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert refused.returncode != 0 and "expected a registered model version '0000000000000000'" in refused.stderr


def test_a_damaged_served_model_is_refused_and_a_rerun_repairs_it(idx_dir, storage_dir):
    """Issue 10, item 1: a truncated model.keras of the served version is never promoted or served as it is."""
    first = run_with_gate(idx_dir, storage_dir, min_test_accuracy=0.5)
    assert first.success
    version = first.output_for_node("evaluation_metrics")["model_version"]
    registry = ModelRegistry(storage_dir / "model_registry")
    evaluations = EvaluationRecords(storage_dir / "evaluation_metrics.by_model_version")
    path = registry.version_dir(version) / "model.keras"
    truncate(path)
    with pytest.raises(DamagedFileError, match=rf"^{path}: expected the model file of version {version} with SHA-256 [0-9a-f]{{64}}, found SHA-256"):
        check_promotable(registry, evaluations, QualityGates(min_test_accuracy=0.5), version)

    # The same seed, data and code train the same version: registering it again rewrites the damaged file.
    again = run_with_gate(idx_dir, storage_dir, min_test_accuracy=0.5)
    assert again.success
    assert again.output_for_node("evaluation_metrics")["model_version"] == version
    manifest = json.loads((registry.version_dir(version) / "manifest.json").read_text())
    assert [repair["run_id"] for repair in manifest["repairs"]] == [again.run_id]
    assert check_promotable(registry, evaluations, QualityGates(min_test_accuracy=0.5), version)
    assert json.loads((storage_dir / "production_model.json").read_text())["version"] == version
