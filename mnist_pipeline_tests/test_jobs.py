"""The Launchpad jobs: what each selects, how it executes, its default config, and runs on stored artifacts."""

import json
from pathlib import Path

import dagster as dg
import pytest

from mnist_pipeline.definitions import all_assets, defs
from mnist_pipeline.defs.executor import pipeline_executor
from mnist_pipeline.defs.jobs import JOBS
from mnist_pipeline.defs.model.config import Hyperparameters, hyperparameters_run_config
from mnist_pipeline.ml.model.presets import PRESETS
from mnist_pipeline_tests.synthetic import make_dataset, write_idx_dir
from mnist_pipeline_tests.pipeline_support import ALL_KEYS, resources

SELECTIONS = {
    "mnist_full_pipeline": ALL_KEYS,
    "mnist_train_evaluate_report": {
        "hyperparameters", "compiled_model", "trained_model", "evaluation_metrics", "predictions_table", "digit_plots", "production_model",
    },
    "mnist_predictions_and_plots": {"predictions_table", "digit_plots"},
    "mnist_observe_sources": {"mnist_files"},
    "mnist_promote_model": {"production_model"},
    "mnist_sweep_candidates": {"candidate_model", "candidate_evaluation"},
    "mnist_leaderboard": {"leaderboard", "champion_model"},
}
ONE_EPOCH = hyperparameters_run_config(epochs=1, batch_size=30)


def selected_assets(job: dg.JobDefinition) -> set[str]:
    layer = job.asset_layer
    return {key.to_user_string() for key in layer.executable_asset_keys}


def test_definitions_offer_the_launchpad_jobs():
    experiments = {"mnist_sweep_candidates", "mnist_leaderboard"}  # defined by their domain (defs/experiments/definitions.py)
    assert set(SELECTIONS) - experiments <= {job.name for job in JOBS}
    assert {job.name for job in defs().resolve_all_job_defs()} >= set(SELECTIONS)


@pytest.mark.parametrize("name, expected", sorted(SELECTIONS.items()))
def test_each_job_selects_its_assets_and_runs_on_the_pipeline_executor(name, expected):
    job = defs().resolve_job_def(name)
    assert selected_assets(job) == expected
    assert job.executor_def is pipeline_executor  # in-process unless MNIST_PIPELINE_ENV=cluster (test_executor.py)
    assert job.description


# What the tutorial preset trains with, as the Launchpad must show it: every hyperparameter, at its value.
LAUNCHPAD_HYPERPARAMETERS = {
    "preset": {"tutorial": {"optimizer": "sgd", "learning_rate": 0.01, "epochs": 10, "batch_size": 32}},
    "validation_fraction": 0.1,
    "seed": 0,
}


def config_keys(value) -> set[str]:
    """Every key at any depth of a config dict."""
    if not isinstance(value, dict):
        return set()
    return set(value) | {key for nested in value.values() for key in config_keys(nested)}


@pytest.mark.parametrize("name", sorted(SELECTIONS))
def test_each_job_launches_with_no_config_at_every_hyperparameters_effective_value(name):
    """What a launch with no config runs with: each hyperparameter at the default preset's value, no storage internals."""
    job = defs().resolve_job_def(name)
    config = dg.validate_run_config(job, {})
    configured = {op: values["config"] for op, values in config.get("ops", {}).items() if values.get("config")}
    expected = {"hyperparameters": LAUNCHPAD_HYPERPARAMETERS} if "hyperparameters" in SELECTIONS[name] else {}
    if "production_model" in SELECTIONS[name]:  # empty: serve the version trained_model produced, gates permitting
        expected["production_model"] = {"version": None, "reason": None}
    assert configured == expected
    assert Hyperparameters(**LAUNCHPAD_HYPERPARAMETERS).resolved() == Hyperparameters().resolved()
    assert "extension" not in config_keys(config.get("resources", {}))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_choosing_a_preset_takes_all_of_its_values(preset):
    """`preset: {fast: {}}` runs the fast preset's recipe, never the default preset's values."""
    job = defs().resolve_job_def("mnist_train_evaluate_report")
    config = dg.validate_run_config(job, {"ops": {"hyperparameters": {"config": {"preset": {preset: {}}}}}})
    recipe = PRESETS[preset]
    augmentation = {} if recipe.augmentation is None else {"augmentation": recipe.augmentation}
    assert config["ops"]["hyperparameters"]["config"]["preset"] == {
        preset: {"optimizer": recipe.optimizer, "learning_rate": recipe.learning_rate, "epochs": recipe.epochs,
                 "batch_size": recipe.batch_size, **augmentation}  # fmt: skip
    }


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """Definitions over a storage directory that already holds every asset (one full run, one epoch)."""
    root = tmp_path_factory.mktemp("jobs")
    idx_dir = write_idx_dir(make_dataset(), root / "idx")
    storage_dir = root / "storage"
    stored_defs = dg.Definitions(assets=all_assets, jobs=JOBS, resources=resources(idx_dir, storage_dir))
    assert stored_defs.resolve_job_def("mnist_full_pipeline").execute_in_process(run_config=ONE_EPOCH).success
    return stored_defs, storage_dir


@pytest.mark.slow
def test_train_evaluate_report_retrains_on_the_stored_data(stored):
    stored_defs, storage_dir = stored
    untouched = {name: (storage_dir / name).read_bytes() for name in ("raw_mnist.npz", "scaled_mnist.npz")}
    result = stored_defs.resolve_job_def("mnist_train_evaluate_report").execute_in_process(
        run_config=hyperparameters_run_config(epochs=2, batch_size=30)
    )
    assert result.success
    materialized = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
    assert materialized == SELECTIONS["mnist_train_evaluate_report"]
    assert len(result.asset_materializations_for_node("trained_model")[0].metadata["history"].value["loss"]) == 2
    assert {name: (storage_dir / name).read_bytes() for name in untouched} == untouched


@pytest.mark.slow
def test_predictions_and_plots_do_not_train(stored):
    stored_defs, storage_dir = stored
    model_file = Path(json.loads((storage_dir / "trained_model.json").read_text())["model_file"])
    model_before = model_file.read_bytes()
    result = stored_defs.resolve_job_def("mnist_predictions_and_plots").execute_in_process()
    assert result.success
    materialized = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
    assert materialized == SELECTIONS["mnist_predictions_and_plots"]
    assert model_file.read_bytes() == model_before
    assert {event.step_key for event in result.all_events if event.is_step_start} == SELECTIONS["mnist_predictions_and_plots"]
