"""Materialize what changed: observe the data, then run only unsynced, missing or damaged assets.

An asset is unsynced when its code version, or the data version of anything
upstream, differs from when it was last materialized (unsynced.py decides it
from Dagster's public records). Hyperparameters are an asset too, so a new
value of them is a change like any other. An asset whose stored artifact is
missing, damaged or unrecorded (defs/io_managers.py) is treated as changed
too, though Dagster's records say it is in sync.

Dagster's UI offers the same as "Materialize unsynced"; this module gives it
to the command line (`mnist-pipeline update`), tests and schedules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import dagster as dg

from mnist_pipeline.defs.automation.unsynced import UnsyncedCause, kept_in_sync, latest_observed_version, sync_status
from mnist_pipeline.defs.io_managers import (
    SHA256_METADATA,
    ArtifactMissingError,
    DamagedArtifactError,
    FileIOManager,
)
from mnist_pipeline.defs.data.sources_read import SOURCE_VERSIONS_READ

HYPERPARAMETERS = dg.AssetKey("hyperparameters")


@dataclass
class UpdateResult:
    changed: list[dg.AssetKey] = field(default_factory=list)
    run: dg.ExecuteInProcessResult | None = None

    @property
    def success(self) -> bool:
        return self.run is None or self.run.success


@dataclass
class Changes:
    """What a graph needs, in graph order.

    `changed`: missing, unsynced or damaged assets plus everything downstream of them.
    `damaged`: the assets among them whose stored artifact is missing or damaged, with why.
    `rerecord`: assets Dagster calls unsynced only because a source was observed after they read it,
    with the data version they read: materializing them alone brings Dagster's lineage up to date,
    and, their content being the same, leaves everything downstream in sync.
    """

    changed: list[dg.AssetKey] = field(default_factory=list)
    damaged: dict[dg.AssetKey, str] = field(default_factory=dict)
    rerecord: list[dg.AssetKey] = field(default_factory=list)


def _latest_materialization(instance: dg.DagsterInstance, key: dg.AssetKey) -> dg.AssetMaterialization | None:
    event = instance.get_latest_materialization_event(key)
    return event.asset_materialization if event else None


def source_versions_read(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, str]:
    """The source data versions the asset's last materialization recorded reading (see sources_read.py)."""
    materialization = _latest_materialization(instance, key)
    entry = materialization.metadata.get(SOURCE_VERSIONS_READ) if materialization else None
    return dict(entry.value) if entry is not None else {}


def _unsynced_only_by_sources_already_read(
    instance: dg.DagsterInstance, asset_graph, key: dg.AssetKey, causes: list[UnsyncedCause]
) -> bool:
    """True when every reason `key` is unsynced is a new data version of an observable source that
    equals the version the asset recorded reading: the files it read are the files as observed now
    (they were first observed, or observed again, after it ran)."""
    read = source_versions_read(instance, key)
    for cause in causes:
        source = cause.dependency
        if cause.category != "data" or source is None or not asset_graph.get(source).is_external:
            return False
        if read.get(source.to_user_string()) != latest_observed_version(instance, source):
            return False
    return True


def damaged_artifacts(
    instance: dg.DagsterInstance, asset_graph, resources: Mapping[str, Any], keys: Sequence[dg.AssetKey]
) -> dict[dg.AssetKey, str]:
    """Among `keys`, the materialized assets whose stored artifact is missing, damaged or unrecorded, with why.

    Each artifact is checked as a load checks it, and against the SHA-256 its last
    materialization recorded. `resources` are a Definitions' (IO manager objects) or a
    repository's (resource definitions, built here).
    """
    names = {asset_graph.get(key).io_manager_key for key in keys} & set(resources)
    managers = {name: resources[name] for name in names if isinstance(resources[name], FileIOManager)}
    definitions = {name: resources[name] for name in names - set(managers)}
    if definitions:
        with dg.build_resources(definitions, instance=instance) as built:
            managers.update({name: getattr(built, name) for name in definitions})
    # One query for every asset's last materialization.
    last = {record.asset_entry.asset_key: record.asset_entry.last_materialization for record in instance.get_asset_records(list(keys))}
    damaged: dict[dg.AssetKey, str] = {}
    for key in keys:
        manager = managers.get(asset_graph.get(key).io_manager_key)
        materialization = last[key].asset_materialization if last.get(key) is not None else None
        if not isinstance(manager, FileIOManager) or materialization is None:
            continue  # not stored by this pipeline's IO managers, or never materialized (missing anyway)
        recorded = materialization.metadata.get(SHA256_METADATA)
        try:
            manager.verified_path(key, materialized_sha256=recorded.value if recorded is not None else None)
        except (ArtifactMissingError, DamagedArtifactError) as problem:
            damaged[key] = str(problem)
    return damaged


def what_changed(
    instance: dg.DagsterInstance,
    asset_graph,
    resources: Mapping[str, Any] | None = None,
    also_changed: Sequence[dg.AssetKey] = (),
) -> Changes:
    """What must be materialized to bring the graph up to date (see `Changes`).

    Dagster marks an asset unsynced only when a direct parent changed; its
    children learn of it once it is rematerialized. Adding the downstream
    closure lets one run bring the whole graph up to date, and never touches
    anything upstream of a change. `also_changed` adds keys known to have
    changed that Dagster has not seen yet (unobserved source files).
    `resources` (a Definitions' or repository's) locate the stored artifacts;
    without them artifacts are not checked. `asset_graph` is a Definitions' or repository's.
    """
    status = sync_status(instance, asset_graph)
    order = [key for level in asset_graph.toposorted_asset_keys_by_level for key in level]
    materializable = [key for key in order if kept_in_sync(asset_graph, key)]
    rerecord = [
        key
        for key, causes in status.unsynced.items()
        if _unsynced_only_by_sources_already_read(instance, asset_graph, key, causes)
    ]
    changed = {*status.missing, *status.unsynced} - set(rerecord)
    damaged = damaged_artifacts(instance, asset_graph, resources, materializable) if resources is not None else {}
    changed.update(damaged)
    changed.update(also_changed)
    if not changed:
        return Changes(rerecord=rerecord)
    affected = dg.AssetSelection.assets(*changed).downstream().resolve(asset_graph)
    return Changes(
        changed=[key for key in materializable if key in affected],
        damaged=damaged,
        rerecord=[key for key in rerecord if key not in affected],
    )


def unsynced_assets(
    instance: dg.DagsterInstance, asset_graph, also_changed: Sequence[dg.AssetKey] = ()
) -> list[dg.AssetKey]:
    """Materializable assets that are missing or unsynced, plus everything downstream of them, in graph order
    (`what_changed(...).changed`, without checking stored artifacts)."""
    return what_changed(instance, asset_graph, also_changed=also_changed).changed


def materialize_what_changed(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    *,
    job_name: str,
    observe_job_name: str,
    hyperparameters: dict | None = None,
    log: Callable[[str], None] = lambda message: None,
    tags: dict[str, str] | None = None,
    run_config: dict | None = None,
) -> UpdateResult:
    """Observe the source files, set new hyperparameters if given, then run what is unsynced or damaged.

    `run_config` goes to every run it launches (the command line's loggers).
    Returns the assets that were unsynced or damaged and the run that materialized them
    (None when nothing had changed).
    """
    run_config = run_config or {}
    observation = defs.resolve_job_def(observe_job_name).execute_in_process(
        instance=instance, tags=tags, run_config=run_config, raise_on_error=False
    )
    if not observation.success:
        return UpdateResult(run=observation)
    job = defs.resolve_job_def(job_name)
    if hyperparameters is not None:
        setting = job.execute_in_process(
            instance=instance,
            asset_selection=[HYPERPARAMETERS],
            run_config={**run_config, "ops": {"hyperparameters": {"config": hyperparameters}}},
            raise_on_error=False,
            tags=tags,
        )
        if not setting.success:
            return UpdateResult(changed=[HYPERPARAMETERS], run=setting)
    changes = what_changed(instance, defs.resolve_asset_graph(), defs.resources)
    for key, problem in changes.damaged.items():
        log(f"Damaged: {key.to_user_string()}: {problem}")
    if changes.rerecord:
        log(
            "Recording what these read, as observed now (their content, and what is downstream, stays as it is): "
            + ", ".join(key.to_user_string() for key in changes.rerecord)
        )
    if not changes.changed and not changes.rerecord:
        log("Nothing changed: every asset is in sync with its code, data and hyperparameters.")
        return UpdateResult()
    if changes.changed:
        log("Unsynced: " + ", ".join(key.to_user_string() for key in changes.changed))
    selection = [*changes.rerecord, *changes.changed]
    run = job.execute_in_process(
        instance=instance, asset_selection=selection, raise_on_error=False, tags=tags, run_config=run_config
    )
    return UpdateResult(changed=changes.changed, run=run)


def keys_materialized(result: dg.ExecuteInProcessResult) -> Sequence[str]:
    return sorted(event.asset_key.to_user_string() for event in result.get_asset_materialization_events())
