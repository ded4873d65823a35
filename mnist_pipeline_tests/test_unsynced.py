"""unsynced.py decides, from Dagster's public records, what Dagster's UI calls missing or unsynced.

A three-asset graph with no IO (files -> raw -> child), so each case runs in well under a second:
a source observed or not, code versions and data versions that change or stay.
"""

import warnings

import dagster as dg
import pytest

from mnist_pipeline.defs.automation.unsynced import UnsyncedCause, sync_status

FILES, RAW, CHILD, OTHER = (dg.AssetKey(name) for name in ("files", "raw", "child", "other"))


def build_defs(code_versions=None, data_versions=None, child_deps=("raw",)) -> dg.Definitions:
    """`code_versions` / `data_versions`: by asset name, the code version each has and the data version it produces."""
    code_versions = {"raw": "1", "child": "1", **(code_versions or {})}
    data_versions = {"raw": "r1", "child": "c1", "other": "o1", **(data_versions or {})}

    def asset(name, deps):
        @dg.asset(name=name, deps=list(deps), code_version=code_versions.get(name))
        def produce() -> dg.MaterializeResult:
            return dg.MaterializeResult(data_version=dg.DataVersion(data_versions[name]))

        return produce

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)

        @dg.observable_source_asset(name="files")  # as mnist_files: its data version comes from observations
        def files() -> dg.DataVersion:
            raise AssertionError("observed with observe(), never by a run")

    return dg.Definitions(assets=[files, asset("raw", ["files"]), asset("child", child_deps), asset("other", [])])


def materialize(defs: dg.Definitions, instance, *keys: dg.AssetKey) -> None:
    job = dg.define_asset_job("materialize", selection=dg.AssetSelection.assets(*keys))
    result = dg.Definitions.merge(defs, dg.Definitions(jobs=[job])).resolve_job_def("materialize").execute_in_process(instance=instance)
    assert result.success


def observe(instance, version: str) -> None:
    instance.report_runless_asset_event(dg.AssetObservation(asset_key=FILES, tags={"dagster/data_version": version}))


def status(defs, instance):
    found = sync_status(instance, defs.resolve_asset_graph())
    assert_same_as_dagsters_ui(defs, instance, found)
    return found


def assert_same_as_dagsters_ui(defs, instance, found) -> None:
    """What Dagster's own (internal) resolver, behind the UI's Unsynced tag, says: the oracle these rules copy.
    Tests may use Dagster's internals; the package may not (test_public_dagster_api.py)."""
    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus

    graph = defs.resolve_asset_graph()
    resolver = CachingStaleStatusResolver(instance, graph, AssetGraphView.for_test(defs, instance))
    keys = sorted(key for key in graph.materializable_asset_keys)
    dagster = {key: resolver.get_status(key) for key in keys}
    ours = {key: StaleStatus.MISSING if key in found.missing else StaleStatus.STALE if key in found.unsynced else StaleStatus.FRESH for key in keys}
    assert ours == dagster


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture
def built(instance):
    """Everything materialized once, the source never observed (as after `dagster asset materialize --select '*'`)."""
    defs = build_defs()
    materialize(defs, instance, RAW, CHILD, OTHER)
    return defs


def test_never_materialized_assets_are_missing(instance):
    found = status(build_defs(), instance)
    assert set(found.missing) == {RAW, CHILD, OTHER} and found.missing.index(RAW) < found.missing.index(CHILD), "graph order"
    assert found.unsynced == {}


def test_everything_materialized_is_in_sync_though_the_source_was_never_observed(built, instance):
    found = status(built, instance)
    assert (found.missing, found.unsynced) == ([], {})


def test_the_first_observation_after_the_run_makes_the_reader_unsynced_not_its_children(built, instance):
    observe(instance, "files-v1")
    assert status(built, instance).unsynced == {RAW: [UnsyncedCause("data", FILES)]}


def test_files_observed_before_the_run_and_unchanged_since_are_in_sync(instance):
    defs = build_defs()
    observe(instance, "files-v1")
    materialize(defs, instance, RAW, CHILD, OTHER)
    observe(instance, "files-v1")
    assert status(defs, instance).unsynced == {}
    observe(instance, "files-v2")
    assert status(defs, instance).unsynced == {RAW: [UnsyncedCause("data", FILES)]}


def test_a_new_code_version_makes_that_asset_unsynced(built, instance):
    edited = build_defs(code_versions={"raw": "2"})
    assert status(edited, instance).unsynced == {RAW: [UnsyncedCause("code")]}


def test_a_new_data_version_upstream_makes_the_direct_child_unsynced(built, instance):
    changed = build_defs(data_versions={"raw": "r2"})
    materialize(changed, instance, RAW)
    assert status(changed, instance).unsynced == {CHILD: [UnsyncedCause("data", RAW)]}


def test_rematerializing_with_the_same_data_version_leaves_children_in_sync(built, instance):
    materialize(built, instance, RAW)
    assert status(built, instance).unsynced == {}


def test_an_added_or_removed_dependency_makes_the_asset_unsynced(built, instance):
    added = build_defs(child_deps=("raw", "other"))
    assert status(added, instance).unsynced == {CHILD: [UnsyncedCause("dependencies", OTHER)]}
    removed = build_defs(child_deps=())
    assert status(removed, instance).unsynced == {CHILD: [UnsyncedCause("dependencies", RAW)]}
