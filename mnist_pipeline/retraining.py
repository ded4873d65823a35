"""Retraining triggers: a weekly schedule and a sensor on the data directory.

Both request only what changed: assets whose code, hyperparameters or inputs
moved on, plus everything downstream of the MNIST files when those changed.
Both start switched off; switch them on in the UI (Automation).
"""

import os

import dagster as dg

from mnist_pipeline.data.resources import MnistSource
from mnist_pipeline.jobs import full_pipeline_job
from mnist_pipeline.versioning.content import json_version
from mnist_pipeline.versioning.what_changed import unsynced_assets

MNIST_FILES = dg.AssetKey("mnist_files")
DEFAULT_RETRAIN_CRON = "0 3 * * 1"  # Mondays at 03:00
RETRAIN_CRON = os.environ.get("MNIST_RETRAIN_CRON") or DEFAULT_RETRAIN_CRON


def last_observed_files_version(instance: dg.DagsterInstance) -> str | None:
    record = instance.get_latest_data_version_record(MNIST_FILES, is_source=True)
    observation = record.event_log_entry.asset_observation if record else None
    return observation.data_version if observation else None


def retraining_selection(instance: dg.DagsterInstance, asset_graph, files_version: str) -> list[dg.AssetKey]:
    """What a retraining run must materialize, in graph order: empty when nothing changed."""
    files_changed = files_version != last_observed_files_version(instance)
    changed = unsynced_assets(instance, asset_graph, also_changed=[MNIST_FILES] if files_changed else [])
    # The run observes the files first, so its lineage records what it read.
    return [MNIST_FILES, *changed] if changed else []


def describe(selection: list[dg.AssetKey]) -> str:
    return ", ".join(key.to_user_string() for key in selection)


@dg.schedule(
    name="weekly_retraining",
    cron_schedule=RETRAIN_CRON,
    job=full_pipeline_job,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description=f"Materialize what changed, on cron '{RETRAIN_CRON}' (set MNIST_RETRAIN_CRON to change it).",
)
def weekly_retraining(context: dg.ScheduleEvaluationContext, mnist_source: MnistSource):
    files_version = json_version(mnist_source.fingerprint())
    selection = retraining_selection(context.instance, context.repository_def.asset_graph, files_version)
    if not selection:
        return dg.SkipReason("Nothing changed since the last materialization: no retraining needed.")
    return dg.RunRequest(asset_selection=selection, tags={"mnist/trigger": "schedule"})


@dg.sensor(
    name="mnist_files_changed",
    job=full_pipeline_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Retrain when the IDX files in MNIST_DATA_DIR are added or changed.",
)
def mnist_files_changed(context: dg.SensorEvaluationContext, mnist_source: MnistSource):
    data_dir = mnist_source.resolved_data_dir()
    if data_dir is None:
        return dg.SkipReason("No data directory configured: MNIST is identified by its published hashes and cannot change.")
    files_version = json_version(mnist_source.fingerprint())
    known = context.cursor or last_observed_files_version(context.instance)
    if files_version == known:
        return dg.SkipReason(f"The files in {data_dir} are unchanged.")
    context.update_cursor(files_version)
    selection = retraining_selection(context.instance, context.repository_def.asset_graph, files_version)
    context.log.info(f"Files in {data_dir} changed: requesting {describe(selection)}")
    return dg.RunRequest(asset_selection=selection, tags={"mnist/trigger": "files_changed", "mnist/files_version": files_version})
