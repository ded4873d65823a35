"""Materialize what changed: observe the data, then run only unsynced or missing assets.

An asset is unsynced when its code version, or the data version of anything
upstream, differs from when it was last materialized. Hyperparameters are an
asset too, so a new value of them is a change like any other.

Dagster's UI offers the same as "Materialize unsynced"; this module gives it
to the command line (`mnist-pipeline update`), tests and schedules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import dagster as dg

# Dagster has no public call for "which assets are unsynced"; this is the one
# its sensors use (RunRequest(stale_assets_only=True)), isolated here.
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._time import get_current_datetime

HYPERPARAMETERS = dg.AssetKey("hyperparameters")


@dataclass
class UpdateResult:
    changed: list[dg.AssetKey] = field(default_factory=list)
    run: dg.ExecuteInProcessResult | None = None

    @property
    def success(self) -> bool:
        return self.run is None or self.run.success


def unsynced_assets(
    instance: dg.DagsterInstance, asset_graph, also_changed: Sequence[dg.AssetKey] = ()
) -> list[dg.AssetKey]:
    """Materializable assets that are missing or unsynced, plus everything downstream of them, in graph order.

    Dagster marks an asset unsynced only when a direct parent changed; its
    children learn of it once it is rematerialized. Adding the downstream
    closure lets one run bring the whole graph up to date, and never touches
    anything upstream of a change. `also_changed` adds keys known to have
    changed that Dagster has not seen yet (unobserved source files).
    `asset_graph` is a Definitions' or repository's.
    """
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=asset_graph,
    )
    resolver = CachingStaleStatusResolver(instance=instance, asset_graph=asset_graph, loading_context=view)
    order = [key for level in asset_graph.toposorted_asset_keys_by_level for key in level]
    materializable = [key for key in order if asset_graph.get(key).is_materializable]
    changed = {key for key in materializable if resolver.get_status(key) in (StaleStatus.STALE, StaleStatus.MISSING)}
    changed.update(also_changed)
    if not changed:
        return []
    affected = dg.AssetSelection.assets(*changed).downstream().resolve(asset_graph)
    return [key for key in materializable if key in affected]


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
    """Observe the source files, set new hyperparameters if given, then run what is unsynced.

    `run_config` goes to every run it launches (the command line's loggers).
    Returns the assets that were unsynced and the run that materialized them
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
    changed = unsynced_assets(instance, defs.resolve_asset_graph())
    if not changed:
        log("Nothing changed: every asset is in sync with its code, data and hyperparameters.")
        return UpdateResult()
    log("Unsynced: " + ", ".join(key.to_user_string() for key in changed))
    run = job.execute_in_process(
        instance=instance, asset_selection=changed, raise_on_error=False, tags=tags, run_config=run_config
    )
    return UpdateResult(changed=changed, run=run)


def keys_materialized(result: dg.ExecuteInProcessResult) -> Sequence[str]:
    return sorted(event.asset_key.to_user_string() for event in result.get_asset_materialization_events())
