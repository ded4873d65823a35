"""The retraining schedule and the data-directory sensor, evaluated with Dagster's test contexts."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from mnist_pipeline.defs.automation.retraining import mnist_files_changed, weekly_retraining_schedule
from mnist_pipeline.settings import DEFAULT_RETRAIN_CRON
from mnist_pipeline_tests.pipeline_support import build_defs, change_a_label, evaluate_schedule, evaluate_sensor, FAST, update

pytestmark = pytest.mark.slow  # the fast tier (-m 'not slow') leaves this module out

REPO = Path(__file__).resolve().parents[1]
DOWNSTREAM_OF_FILES = ["mnist_files"] + sorted([
    "raw_mnist", "scaled_mnist", "compiled_model", "trained_model",
    "evaluation_metrics", "predictions_table", "digit_plots", "production_model",
])


@pytest.fixture
def instance():
    """A persistent test instance: schedule and sensor contexts need one."""
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def warm(idx_dir, storage_dir, instance):
    defs = build_defs(idx_dir, storage_dir)
    update(defs, instance, hyperparameters=FAST)
    return defs


def names(request: dg.RunRequest) -> list[str]:
    """The requested assets: the files' observation first, then the rest (order within a level is free)."""
    keys = [key.to_user_string() for key in request.asset_selection]
    return keys[:1] + sorted(keys[1:])


def test_schedule_is_weekly_and_off_until_switched_on():
    schedule = weekly_retraining_schedule()
    assert schedule.cron_schedule == DEFAULT_RETRAIN_CRON == "0 3 * * 1"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert mnist_files_changed.default_status == dg.DefaultSensorStatus.STOPPED


def test_schedule_cron_is_configurable():
    code = "from mnist_pipeline.definitions import defs; print(defs().get_schedule_def('weekly_retraining').cron_schedule)"
    env = {**os.environ, "MNIST_RETRAIN_CRON": "30 2 * * *"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "30 2 * * *"


def test_schedule_skips_when_nothing_changed(warm, instance, idx_dir):
    outcome = evaluate_schedule(warm, instance, idx_dir)
    assert isinstance(outcome, dg.SkipReason)
    assert "Nothing changed" in outcome.skip_message


def test_schedule_requests_exactly_what_a_code_change_affects(warm, instance, idx_dir, storage_dir):
    edited = build_defs(idx_dir, storage_dir, replace_code_version={"predictions_table": "edited"})
    request = evaluate_schedule(edited, instance, idx_dir)
    assert isinstance(request, dg.RunRequest)
    assert names(request) == ["mnist_files", "digit_plots", "predictions_table", "production_model"]


def test_schedule_requests_everything_downstream_of_changed_files(warm, instance, idx_dir):
    change_a_label(idx_dir)
    request = evaluate_schedule(warm, instance, idx_dir)
    assert isinstance(request, dg.RunRequest)
    assert names(request) == DOWNSTREAM_OF_FILES


def test_sensor_skips_without_a_data_directory(warm, instance):
    outcome, _ = evaluate_sensor(warm, instance, None)
    assert isinstance(outcome, dg.SkipReason) and "No data directory configured" in outcome.skip_message


def test_sensor_skips_unchanged_files(warm, instance, idx_dir):
    outcome, _ = evaluate_sensor(warm, instance, idx_dir)
    assert isinstance(outcome, dg.SkipReason) and "unchanged" in outcome.skip_message


def test_sensor_requests_retraining_once_per_change(warm, instance, idx_dir):
    change_a_label(idx_dir)
    request, cursor = evaluate_sensor(warm, instance, idx_dir)
    assert isinstance(request, dg.RunRequest)
    assert names(request) == DOWNSTREAM_OF_FILES
    assert request.tags["mnist/trigger"] == "files_changed"
    again, _ = evaluate_sensor(warm, instance, idx_dir, cursor=cursor)
    assert isinstance(again, dg.SkipReason), "the same change is not requested twice"


def test_the_requested_run_brings_everything_back_in_sync(warm, instance, idx_dir):
    change_a_label(idx_dir)
    request, _ = evaluate_sensor(warm, instance, idx_dir)
    job = warm.resolve_job_def(request.job_name or "mnist_full_pipeline")
    result = job.execute_in_process(instance=instance, asset_selection=request.asset_selection)
    assert result.success
    assert isinstance(evaluate_schedule(warm, instance, idx_dir), dg.SkipReason)
