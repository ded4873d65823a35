"""Which assets are missing or unsynced, decided from Dagster's public records.

Dagster has no public call for an asset's sync status: the UI's "Unsynced" tag and
`RunRequest(stale_assets_only=True)` (resolved inside the sensor and schedule daemons) use an
internal resolver; the request to expose it, dagster-io/dagster#19368, is closed, and 1.13
still has none. The declarative automation conditions are no substitute: `code_version_changed()`
compares with the previous evaluation, not with the last materialization (dagster-io/dagster#33708),
and `newly_updated()` / `any_deps_updated()` ignore data versions (dagster-io/dagster#25439).

The rules themselves are simple for unpartitioned assets, and everything they read is public:
every materialization records, in its tags, the code version it ran and the data version each
input had; `DagsterInstance.get_latest_materialization_code_versions`, `get_asset_records` and
`fetch_observations` return those records and the sources' observed data versions. An asset is
unsynced, as Dagster's UI says, when its code version differs from the one its last
materialization ran, when its dependencies were added or removed since, or when the data version
of a direct dependency differs from the one it read. Children of an unsynced asset are not
unsynced themselves until it is rematerialized; what_changed.py adds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import dagster as dg

# The tags Dagster writes on every materialization (its data provenance). Dagster exports no
# public names for them; they are part of the stored event format, shown in the UI's event view.
CODE_VERSION_TAG = "dagster/code_version"
DATA_VERSION_TAG = "dagster/data_version"
INPUT_DATA_VERSION_TAG_PREFIX = "dagster/input_data_version/"
# The data versions Dagster assumes for a source never observed (or an event recording none),
# and for an asset never materialized.
INITIAL_DATA_VERSION = "INITIAL"
NO_DATA_VERSION = "NULL"


@dataclass(frozen=True)
class UnsyncedCause:
    """Why an asset is unsynced: `code` (new code version), `dependencies` (`dependency` added or
    removed since it ran) or `data` (`dependency` has a data version other than the one it read)."""

    category: str
    dependency: dg.AssetKey | None = None


@dataclass
class SyncStatus:
    """The materializable assets that were never materialized, and why each unsynced one is."""

    missing: list[dg.AssetKey] = field(default_factory=list)
    unsynced: dict[dg.AssetKey, list[UnsyncedCause]] = field(default_factory=dict)


def latest_observed_version(instance: dg.DagsterInstance, source_key: dg.AssetKey) -> str | None:
    """The data version of the source's last observation; None if it was never observed."""
    records = instance.fetch_observations(source_key, limit=1).records
    observation = records[0].asset_observation if records else None
    return observation.data_version if observation else None


def latest_materializations(
    instance: dg.DagsterInstance, keys: list[dg.AssetKey]
) -> dict[dg.AssetKey, dg.AssetMaterialization]:
    """Each asset's last materialization (assets never materialized are left out), in one query."""
    latest: dict[dg.AssetKey, dg.AssetMaterialization] = {}
    for record in instance.get_asset_records(keys):
        entry = record.asset_entry.last_materialization
        if entry is not None and entry.asset_materialization is not None:
            latest[record.asset_entry.asset_key] = entry.asset_materialization
    return latest


def input_data_versions(materialization: dg.AssetMaterialization) -> dict[dg.AssetKey, str]:
    """The data version each input had when the materialization read it, as its tags record."""
    return {
        dg.AssetKey.from_user_string(tag[len(INPUT_DATA_VERSION_TAG_PREFIX) :]): value
        for tag, value in (materialization.tags or {}).items()
        if tag.startswith(INPUT_DATA_VERSION_TAG_PREFIX)
    }


def _versions_differ(read: str, current: str) -> bool:
    # Dagster records an external asset with no record as INITIAL and a managed one as NULL; the
    # same asset seen both ways (two code locations) has not changed. Dagster's own rule, kept.
    return read != current and not (read == INITIAL_DATA_VERSION and current == NO_DATA_VERSION)


# Sweep candidates and their leaderboard: `mnist-pipeline sweep` decides which are stale
# (defs/experiments/sweep.py), per candidate; "what changed" is the main chain's.
SWEPT_GROUP = "experiments"


def kept_in_sync(asset_graph, key: dg.AssetKey) -> bool:
    """Whether `update` ("what changed") materializes `key` when it is missing or unsynced."""
    node = asset_graph.get(key)
    return node.is_materializable and node.group_name != SWEPT_GROUP


def sync_status(instance: dg.DagsterInstance, asset_graph) -> SyncStatus:
    """Missing and unsynced materializable assets of `asset_graph` (a Definitions' or repository's)."""
    order = [key for level in asset_graph.toposorted_asset_keys_by_level for key in level]
    materializable = [key for key in order if kept_in_sync(asset_graph, key)]
    sources = [key for key in order if asset_graph.get(key).is_external]
    latest = latest_materializations(instance, materializable)
    code_versions_run = instance.get_latest_materialization_code_versions(list(latest))

    current: dict[dg.AssetKey, str] = {}
    for key in sources:
        current[key] = latest_observed_version(instance, key) or INITIAL_DATA_VERSION
    for key in materializable:
        materialization = latest.get(key)
        if materialization is None:
            current[key] = NO_DATA_VERSION
        else:  # a materialization that recorded no data version counts as INITIAL, as in Dagster
            current[key] = (materialization.tags or {}).get(DATA_VERSION_TAG, INITIAL_DATA_VERSION)

    status = SyncStatus()
    for key in materializable:
        if key not in latest:
            status.missing.append(key)
            continue
        causes = _unsynced_causes(asset_graph.get(key), latest[key], code_versions_run.get(key), current)
        if causes:
            status.unsynced[key] = causes
    return status


def _unsynced_causes(
    node, materialization: dg.AssetMaterialization, code_version_run: str | None, current: Mapping[dg.AssetKey, str]
) -> list[UnsyncedCause]:
    causes = []
    # An asset without a code version gets a new one (its run id) on every run: never a change by itself.
    if node.code_version is not None and node.code_version != code_version_run:
        causes.append(UnsyncedCause("code"))
    read = input_data_versions(materialization)
    parents = set(node.parent_keys)
    for dependency in sorted(set(read) - parents, key=lambda key: key.to_user_string()):
        causes.append(UnsyncedCause("dependencies", dependency))
    for dependency in sorted(parents, key=lambda key: key.to_user_string()):
        if dependency not in read:
            causes.append(UnsyncedCause("dependencies", dependency))
        elif _versions_differ(read[dependency], current.get(dependency, NO_DATA_VERSION)):
            causes.append(UnsyncedCause("data", dependency))
    return causes
