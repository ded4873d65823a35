"""A sweep launched as the UI launches it: backfills run by the daemon of `dg dev`, from the job and from the assets' page.

Real processes only: `dg dev` (webserver, daemon, code server) on the instance settings
the scripts install (scripts/dagster.yaml), both backfills launched through the webserver's
GraphQL API at once: the job mnist_sweep_candidates' *Launch backfill* (its partition set) and an asset
backfill of the candidate assets' partitions, as the assets' page launches it. Each candidate's run is
started by the daemon in its own process. Synthetic data, one epoch.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg
import pytest

from mnist_pipeline.cli import main as cli
from mnist_pipeline.defs.experiments.sweep import add_candidates
from mnist_pipeline.defs.resources import resources_for_env
from mnist_pipeline.ml.model.candidates import expand_grid
from mnist_pipeline_tests.webserver import running_webserver

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SCRIPTS_SETTINGS = REPO / "scripts" / "dagster.yaml"
LOCATION = "mnist_pipeline"
READY_TIMEOUT_S = 240
BACKFILL_TIMEOUT_S = 600

LAUNCH_BACKFILL = """
mutation Backfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey invalidOutputName }
    ... on UnauthorizedError { message }
  }
}
"""


def materialized_partitions(instance: dg.DagsterInstance, asset: str) -> dict[str, str]:
    """partition key -> run id of the asset's materializations."""
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=100).records
    return {record.partition_key: record.run_id for record in records}


def test_backfills_from_the_job_and_from_the_assets_page_train_each_candidate_in_its_own_run_one_at_a_time(tmp_path, idx_dir, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "MNIST_PIPELINE_HOME": str(tmp_path / "pipeline"),
        "MNIST_DATA_DIR": str(idx_dir),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    for name in ("DAGSTER_HOME", "MNIST_PIPELINE_HOME", "MNIST_DATA_DIR"):
        monkeypatch.setenv(name, env[name])
    (home / "dagster.yaml").write_text(SCRIPTS_SETTINGS.read_text())

    # What `mnist-pipeline sweep` does before it launches anything: the data the candidates train on, and
    # each candidate's config record and partition.
    candidates = expand_grid(["fast"], [0, 1, 2, 3], {"epochs": [1]})
    with dg.DagsterInstance.get() as instance:
        with dg.execute_job(
            dg.reconstructable(cli.full_pipeline), instance, asset_selection=[dg.AssetKey("raw_mnist"), dg.AssetKey("scaled_mnist")]
        ) as loaded:
            assert loaded.success
        keys = add_candidates(instance, resources_for_env()["experiment_store"], candidates)
    assert keys == [candidate.key for candidate in candidates]

    with running_webserver(
        REPO, home, env, tmp_path / "dg_dev.log", LOCATION, READY_TIMEOUT_S, instance_yaml=SCRIPTS_SETTINGS.read_text()
    ) as server:
        from_job, from_assets = keys[:2], keys[2:]
        job_backfill = server.graphql(
            LAUNCH_BACKFILL,
            {"params": {"partitionNames": from_job, "selector": {"partitionSetName": "mnist_sweep_candidates_partition_set", "repositorySelector": {"repositoryName": "__repository__", "repositoryLocationName": LOCATION}}}},
        )["launchPartitionBackfill"]
        assert job_backfill["__typename"] == "LaunchBackfillSuccess", job_backfill
        # As the assets' page does: the assets and their partitions, no job; its runs carry nothing a job sets.
        asset_backfill = server.graphql(
            LAUNCH_BACKFILL,
            {"params": {"partitionNames": from_assets, "assetSelection": [{"path": ["candidate_model"]}, {"path": ["candidate_evaluation"]}]}},
        )["launchPartitionBackfill"]
        assert asset_backfill["__typename"] == "LaunchBackfillSuccess", asset_backfill
        deadline = time.monotonic() + BACKFILL_TIMEOUT_S
        with dg.DagsterInstance.get() as instance:
            while time.monotonic() < deadline:
                evaluated = materialized_partitions(instance, "candidate_evaluation")
                if set(evaluated) == set(keys):
                    break
                failed = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
                assert not failed, f"backfill run {failed[0].run_id} failed:\n{server.log_tail()}"
                time.sleep(2)
            else:
                raise AssertionError(f"after {BACKFILL_TIMEOUT_S} s evaluated {sorted(evaluated)} of {keys}:\n{server.log_tail()}")
            trained = materialized_partitions(instance, "candidate_model")
            runs = {run_id: instance.get_run_by_id(run_id) for run_id in trained.values()}
    # One run per candidate, each launched by its backfill and naming its partition.
    assert set(trained) == set(keys) and len(runs) == 4
    assert {run.tags["dagster/partition"] for run in runs.values()} == set(keys)
    backfill_of = {trained[key]: backfill["backfillId"] for keys_of, backfill in ((from_job, job_backfill), (from_assets, asset_backfill)) for key in keys_of}
    assert all(run.tags["dagster/backfill"] == backfill_of[run_id] for run_id, run in runs.items())
    assert all(evaluated[key] == trained[key] for key in from_job), "the job's runs hold both assets"
    # scripts/dagster.yaml lets one run in the training pool (candidate_model's, defs/executor.py) through the
    # daemon's queue at a time, from either backfill: no two of the four overlapped.
    with dg.DagsterInstance.get() as instance:
        spans = sorted((r.start_time, r.end_time) for r in instance.get_run_records(dg.RunsFilter(run_ids=list(runs))))
    assert len(spans) == 4 and all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:])), f"the candidates' runs overlapped: {spans}"
