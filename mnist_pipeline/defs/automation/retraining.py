"""Retraining triggers: a weekly schedule and a sensor on the data directory.

Both request only what changed: assets whose code, hyperparameters or inputs
moved on, assets whose stored artifact is missing or damaged, plus everything
downstream of the MNIST files when those changed. Both start switched off;
switch them on in the UI (Automation).

Why a schedule and a sensor that compute their selection, rather than Dagster's public
shortcuts (Dagster 1.13):
- `RunRequest(stale_assets_only=True)` narrows the selection in the daemon, with Dagster's
  internal resolver, to the assets that are themselves missing or unsynced: not what is
  downstream of them (their children become unsynced only after the run, so a change would
  take a run per level of the graph, a week each on the weekly schedule), and never an asset
  whose stored artifact is damaged. What it selects is also invisible to a test that evaluates
  the request.
- Declarative automation (`automation_condition=AutomationCondition.eager()` and the default
  automation sensor) reacts to events since its previous evaluation: `code_version_changed()`
  compares with the last evaluation, not with the last materialization (dagster-io/dagster#33708;
  `code_version_outdated()` is proposed in dagster-io/dagster#33711), `any_deps_updated()` fires
  on a new materialization with an unchanged data version (dagster-io/dagster#25439), and no
  condition sees a damaged artifact. `mnist-pipeline update` must give the same answer with no
  daemon and no cursor, so the schedule, the sensor and the command share what_changed.py.
"""

import os

import dagster as dg

from mnist_pipeline import settings
from mnist_pipeline.defs.data.resources import MnistSource
from mnist_pipeline.defs.jobs import full_pipeline_job
from mnist_pipeline.defs.automation.unsynced import latest_observed_version
from mnist_pipeline.defs.automation.what_changed import source_versions_read, what_changed

MNIST_FILES = dg.AssetKey("mnist_files")
RAW_MNIST = dg.AssetKey("raw_mnist")


def last_observed_files_version(instance: dg.DagsterInstance) -> str | None:
    return latest_observed_version(instance, MNIST_FILES)


def files_version_in_use(instance: dg.DagsterInstance) -> str | None:
    """The files' data version the stored data was built from.

    What raw_mnist recorded reading, which a run that never observed the files
    (`dagster asset materialize --select '*'`, Materialize all) records too; for a
    raw_mnist stored before it recorded that, the last observation.
    """
    read = source_versions_read(instance, RAW_MNIST).get(MNIST_FILES.to_user_string())
    return read or last_observed_files_version(instance)


def retraining_selection(repository_def: dg.RepositoryDefinition, instance: dg.DagsterInstance, files_version: str) -> list[dg.AssetKey]:
    """What a retraining run must materialize, in graph order: empty when nothing changed."""
    files_changed = files_version != files_version_in_use(instance)
    changes = what_changed(
        instance,
        repository_def.asset_graph,
        repository_def.get_top_level_resources(),
        also_changed=[MNIST_FILES] if files_changed else [],
    )
    # The run observes the files first, so its lineage records what it read.
    return [MNIST_FILES, *changes.changed] if changes.changed else []


def describe(selection: list[dg.AssetKey]) -> str:
    return ", ".join(key.to_user_string() for key in selection)


def weekly_retraining_schedule(cron: str | None = None) -> dg.ScheduleDefinition:
    """The retraining schedule on `cron`; by default MNIST_RETRAIN_CRON's, read now, else Mondays at 03:00.

    Built when the code location loads (definitions.py), not at import: a schedule's cron is part
    of its definition, and a malformed value must fail with the variable's name, not break imports.
    """
    source = "the cron given"
    if cron is None:
        cron, source = os.environ.get(settings.RETRAIN_CRON) or settings.DEFAULT_RETRAIN_CRON, settings.RETRAIN_CRON
    try:

        @dg.schedule(
            name="weekly_retraining",
            cron_schedule=cron,
            job=full_pipeline_job,
            default_status=dg.DefaultScheduleStatus.STOPPED,
            description=f"Materialize what changed, on cron '{cron}' (set {settings.RETRAIN_CRON} to change it).",
        )
        def weekly_retraining(context: dg.ScheduleEvaluationContext, mnist_source: MnistSource):
            selection = retraining_selection(context.repository_def, context.instance, mnist_source.files_version())
            if not selection:
                return dg.SkipReason("Nothing changed since the last materialization: no retraining needed.")
            return dg.RunRequest(asset_selection=selection, tags={"mnist/trigger": "schedule"})

    except dg.DagsterInvalidDefinitionError as error:
        raise settings.ConfigurationError(
            f"{source}: expected a cron expression of 5 fields, e.g. '{settings.DEFAULT_RETRAIN_CRON}' "
            f"(Mondays at 03:00), found {cron!r}"
        ) from error
    return weekly_retraining


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
    files_version = mnist_source.files_version()
    known = context.cursor or files_version_in_use(context.instance)
    if files_version == known:
        return dg.SkipReason(f"The files in {data_dir} are unchanged.")
    context.update_cursor(files_version)
    selection = retraining_selection(context.repository_def, context.instance, files_version)
    if not selection:
        return dg.SkipReason(f"The files in {data_dir} changed back to what the stored data was built from.")
    context.log.info(f"Files in {data_dir} changed: requesting {describe(selection)}")
    return dg.RunRequest(asset_selection=selection, tags={"mnist/trigger": "files_changed", "mnist/files_version": files_version})
