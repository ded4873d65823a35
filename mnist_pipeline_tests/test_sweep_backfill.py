"""A sweep launched as the UI launches it: a backfill of the job mnist_sweep_candidates, run by the daemon of `dg dev`.

Real processes only: `dg dev` (webserver, daemon, code server) on the instance settings
the scripts install (scripts/dagster.yaml), the backfill launched through the webserver's
GraphQL API as the job's *Launch backfill* does (its partition set), and each candidate's run started by the
daemon in its own process. Synthetic data, one epoch.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg
import pytest

from mnist_pipeline.cli import main as cli
from mnist_pipeline.defs.experiments.sweep import add_candidates
from mnist_pipeline.defs.jobs import TRAINING_RUN_TAG
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


def test_a_backfill_of_the_candidates_job_trains_and_evaluates_each_one_in_its_own_training_run(tmp_path, idx_dir, monkeypatch):
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
    candidates = expand_grid(["fast"], [0, 1], {"epochs": [1]})
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
        launched = server.graphql(
            LAUNCH_BACKFILL,
            {"params": {"partitionNames": keys, "selector": {"partitionSetName": "mnist_sweep_candidates_partition_set", "repositorySelector": {"repositoryName": "__repository__", "repositoryLocationName": LOCATION}}}},
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
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
                raise AssertionError(f"backfill {launched['backfillId']}: after {BACKFILL_TIMEOUT_S} s evaluated {sorted(evaluated)} of {keys}:\n{server.log_tail()}")
            trained = materialized_partitions(instance, "candidate_model")
            runs = {run_id: instance.get_run_by_id(run_id) for run_id in trained.values()}
    # One run per candidate, each launched by the backfill and naming its partition; both assets in that run.
    assert set(trained) == set(keys) and len(runs) == 2
    assert {run.tags["dagster/partition"] for run in runs.values()} == set(keys)
    assert all(run.tags["dagster/backfill"] == launched["backfillId"] for run in runs.values())
    assert all(evaluated[key] == trained[key] for key in keys)
    # The job's tag, which the run queue's limit on training runs counts (defs/jobs.py; the cluster's dagster.yaml).
    assert all(run.tags.get(TRAINING_RUN_TAG) == "true" for run in runs.values())
    # scripts/dagster.yaml lets one training run at a time through the daemon's queue: the two never overlapped.
    with dg.DagsterInstance.get() as instance:
        spans = sorted((r.start_time, r.end_time) for r in instance.get_run_records(dg.RunsFilter(run_ids=list(runs))))
    assert len(spans) == 2 and spans[0][1] <= spans[1][0], f"the candidates' runs overlapped: {spans}"
