"""An unchanged `update` after any kind of full run trains nothing, and the weekly schedule skips.

A run that does not observe the `mnist_files` source first (`dagster asset
materialize --select 'not group:experiments'`, *Materialize all* in the UI) records it as never
observed; the first observation afterwards must not count as a change of the
files. Each starting point is run for real: the CLI's `run` and `dagster asset
materialize` in subprocesses, the full job in this process.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from mnist_pipeline.defs.automation.what_changed import what_changed
from mnist_pipeline_tests.pipeline_support import build_defs, change_a_label, evaluate_schedule, evaluate_sensor, FAST, update

pytestmark = pytest.mark.slow  # the fast tier (-m 'not slow') leaves this module out

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EVERYTHING = [
    "compiled_model", "digit_plots", "evaluation_metrics", "hyperparameters", "predictions_table", "production_model",
    "raw_mnist", "scaled_mnist", "trained_model",
]
MODEL_ASSETS = {"compiled_model", "trained_model"}


@pytest.fixture
def dagster_home(tmp_path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    return home


def pipeline_env(dagster_home: Path, idx_dir: Path, storage_dir: Path) -> dict:
    """The environment of a user's shell: the same data and storage the tests' definitions use."""
    return {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "MNIST_DATA_DIR": str(idx_dir),
        "MNIST_STORAGE_DIR": str(storage_dir),
        "MNIST_PIPELINE_ENV": "offline",
        "MNIST_MIN_TEST_ACCURACY": "0",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }


def run_command(args: list[str], env: dict) -> None:
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"



def materialized_keys(instance: dg.DagsterInstance) -> set[str]:
    return {key.to_user_string() for key in instance.get_asset_keys() if instance.get_latest_materialization_event(key)}


def assert_unchanged_update_does_nothing(defs, instance, idx_dir) -> None:
    """The schedule skips, before and after the first observation; `update` trains nothing, fast."""
    skipped = evaluate_schedule(defs, instance, idx_dir)
    assert isinstance(skipped, dg.SkipReason), f"the schedule requested {skipped}"
    started = time.perf_counter()
    said: list[str] = []
    materialized = update(defs, instance, log=said.append)
    seconds = time.perf_counter() - started
    assert not MODEL_ASSETS & set(materialized), f"update retrained: {materialized}; it said {said}"
    assert set(materialized) <= {"raw_mnist"}, f"update rebuilt {materialized}; it said {said}"
    assert seconds < 15, f"an unchanged update took {seconds:.1f} s"
    assert update(defs, instance) == [], "a second update does nothing at all"
    after = what_changed(instance, defs.resolve_asset_graph())
    assert after.changed == [] and after.rerecord == [], "Dagster's own records (the UI) say everything is in sync too"
    sensor_outcome, _ = evaluate_sensor(defs, instance, idx_dir)
    assert isinstance(sensor_outcome, dg.SkipReason), sensor_outcome
    assert isinstance(evaluate_schedule(defs, instance, idx_dir), dg.SkipReason)


def test_after_dagster_asset_materialize_everything(dagster_home, idx_dir, storage_dir, tmp_path, open_instance):
    config = tmp_path / "run_config.yaml"
    config.write_text(json.dumps({"ops": {"hyperparameters": {"config": FAST}}}))  # JSON is YAML
    run_command(
        # Every asset of the main chain: '*' would include the sweep's partitioned candidates, which need --partition.
        [str(BIN / "dagster"), "asset", "materialize", "--select", "not group:experiments", "-m", "mnist_pipeline.definitions", "-c", str(config)],
        pipeline_env(dagster_home, idx_dir, storage_dir),
    )
    with open_instance(dagster_home) as instance:
        assert materialized_keys(instance) == set(EVERYTHING)
        assert instance.get_latest_data_version_record(dg.AssetKey("mnist_files"), is_source=True) is None, (
            "the command never observes the files: the case this test is about"
        )
        assert_unchanged_update_does_nothing(build_defs(idx_dir, storage_dir), instance, idx_dir)


def test_after_the_cli_run(dagster_home, idx_dir, storage_dir, open_instance):
    run_command(
        [sys.executable, "-m", "mnist_pipeline", "run", "--epochs", "1", "--batch-size", "30"],
        pipeline_env(dagster_home, idx_dir, storage_dir),
    )
    with open_instance(dagster_home) as instance:
        assert materialized_keys(instance) == set(EVERYTHING)
        assert_unchanged_update_does_nothing(build_defs(idx_dir, storage_dir), instance, idx_dir)


def test_after_the_full_job(dagster_home, idx_dir, storage_dir, open_instance):
    defs = build_defs(idx_dir, storage_dir)
    with open_instance(dagster_home) as instance:
        result = defs.resolve_job_def("mnist_full_pipeline").execute_in_process(
            instance=instance, run_config={"ops": {"hyperparameters": {"config": FAST}}}
        )
        assert result.success
        assert_unchanged_update_does_nothing(defs, instance, idx_dir)


def test_after_materializing_everything_but_the_observation_in_process(dagster_home, idx_dir, storage_dir, open_instance):
    """What the UI's *Materialize all* does, without a subprocess: every asset, the source never observed."""
    defs = build_defs(idx_dir, storage_dir)
    with open_instance(dagster_home) as instance:
        job = defs.resolve_job_def("mnist_full_pipeline")
        everything = [dg.AssetKey(name) for name in EVERYTHING]
        result = job.execute_in_process(
            instance=instance, asset_selection=everything, run_config={"ops": {"hyperparameters": {"config": FAST}}}
        )
        assert result.success
        assert_unchanged_update_does_nothing(defs, instance, idx_dir)


def test_files_changed_after_an_unobserved_run_still_retrain(dagster_home, idx_dir, storage_dir, open_instance):
    """The record of what raw_mnist read must not hide a real change."""
    defs = build_defs(idx_dir, storage_dir)
    with open_instance(dagster_home) as instance:
        everything = [dg.AssetKey(name) for name in EVERYTHING]
        defs.resolve_job_def("mnist_full_pipeline").execute_in_process(
            instance=instance, asset_selection=everything, run_config={"ops": {"hyperparameters": {"config": FAST}}}
        )
        change_a_label(idx_dir)
        request = evaluate_schedule(defs, instance, idx_dir)
        assert isinstance(request, dg.RunRequest) and dg.AssetKey("trained_model") in request.asset_selection
        assert "trained_model" in update(defs, instance)
