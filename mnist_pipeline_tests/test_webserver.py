"""The UI experience against the real thing: catalog, Launchpad jobs, runs, metadata, bad config, the daemon.

One `dg dev` for the module, started as ./scripts/dev starts it (webserver and
daemon, from the repository root), on a free port on 127.0.0.1 with a
temporary DAGSTER_HOME and the small synthetic data set; it is stopped (its
whole process group) when the module ends, whether the tests passed or not.
"""

import base64
import json
import os
import time
from pathlib import Path

import pytest
import requests
import yaml
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClientError

from mnist_pipeline.defs.model.config import hyperparameters_run_config
from mnist_pipeline_tests.synthetic import make_dataset, write_idx_dir
from mnist_pipeline_tests.pipeline_support import ALL_KEYS, LOCATION_KEYS
from mnist_pipeline_tests.webserver import Webserver, running_webserver

pytestmark = pytest.mark.slow  # the fast tier (-m 'not slow') leaves this module out

REPO = Path(__file__).resolve().parents[1]
LOCATION = "mnist_pipeline"
READY_TIMEOUT_S = 240
RUN_TIMEOUT_S = 420
TWO_EPOCHS = hyperparameters_run_config(epochs=2, batch_size=30)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_EMBEDDED_PNG_BYTES = 100_000  # half of 200 KB: every plot travels in the event log
EMBEDDED_PNG_PREFIX = "data:image/png;base64,"
PLOTS = {
    "overview", "sample_digit", "prediction_grid", "confident_mistakes", "probabilities_test_0",
    "probabilities_test_2", "confusion_matrix", "training_curves",
}

ASSET_NODES_QUERY = """
{
  assetNodes {
    assetKey { path }
    groupName
    description
    kinds
    owners { __typename ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
    tags { key value }
  }
}
"""

JOBS_QUERY = """
{
  repositoriesOrError {
    __typename
    ... on RepositoryConnection { nodes { name location { name } jobs { name description } } }
  }
}
"""

DEFAULT_CONFIG_QUERY = """
query DefaultConfig($selector: PipelineSelector!) {
  runConfigSchemaOrError(selector: $selector) {
    __typename
    ... on RunConfigSchema { rootDefaultYaml }
  }
}
"""

MATERIALIZATIONS_QUERY = """
query Materializations($assetKey: AssetKeyInput!) {
  assetOrError(assetKey: $assetKey) {
    __typename
    ... on Asset {
      assetMaterializations {
        runId
        metadataEntries {
          __typename
          label
          ... on FloatMetadataEntry { floatValue }
          ... on IntMetadataEntry { intRepr }
          ... on MarkdownMetadataEntry { mdStr }
          ... on JsonMetadataEntry { jsonString }
          ... on PathMetadataEntry { path }
        }
      }
    }
  }
}
"""

RUN_LOG_QUERY = """
query RunLog($runId: ID!) {
  logsForRun(runId: $runId, limit: 10000) {
    __typename
    ... on EventConnection {
      hasMore
      events {
        __typename
        ... on MessageEvent { message stepKey }
        ... on ExecutionStepFailureEvent { error { message causes { message } } }
        ... on MaterializationEvent { assetKey { path } }
      }
    }
  }
}
"""

DAEMON_HEALTH_QUERY = """
{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }
"""
DAEMON_TIMEOUT_S = 120

RUN_IDS_QUERY = """
{ runsOrError { __typename ... on Runs { results { runId } } } }
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("webserver")
    idx_dir = write_idx_dir(make_dataset(), root / "idx")
    env = {name: value for name, value in os.environ.items() if name not in {"MNIST_CACHE_DIR", "MNIST_STORAGE_DIR"}}
    env.update(
        MNIST_DATA_DIR=str(idx_dir),
        MNIST_PIPELINE_HOME=str(root / "pipeline_home"),
        MNIST_PIPELINE_ENV="offline",
        MNIST_MIN_TEST_ACCURACY="0",  # a two-epoch model on synthetic data; the gate is tested elsewhere
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    with running_webserver(
        REPO, root / "dagster_home", env, root / "webserver.log", LOCATION, READY_TIMEOUT_S
    ) as running:
        yield running


def run_events(server: Webserver, run_id: str) -> list[dict]:
    log = server.graphql(RUN_LOG_QUERY, {"runId": run_id})["logsForRun"]
    assert log["__typename"] == "EventConnection", log
    assert not log["hasMore"], "the run log has more events than one page"
    return log["events"]


def error_text(event: dict) -> str:
    """A failure as the run log shows it: the error and the errors that caused it."""
    error = event.get("error")
    if not error:
        return event["message"]
    return "\n".join([error["message"], *(cause["message"] for cause in error.get("causes") or [])])


def failure_messages(events: list[dict]) -> list[str]:
    return [
        f"{event.get('stepKey')}: {error_text(event)}"
        for event in events
        if event["__typename"] in ("ExecutionStepFailureEvent", "RunFailureEvent")
    ]


@pytest.fixture(scope="module")
def full_run(server) -> str:
    """The id of a successful mnist_full_pipeline run launched through the server (two epochs)."""
    run_id = server.client.submit_job_execution("mnist_full_pipeline", run_config=TWO_EPOCHS)
    status = server.wait_for_run(run_id, RUN_TIMEOUT_S)
    assert status == DagsterRunStatus.SUCCESS, (
        f"run {run_id} ended {status}: {failure_messages(run_events(server, run_id))}\n{server.log_tail()}"
    )
    return run_id


def metadata_of_run(server: Webserver, asset_key: str, run_id: str) -> dict[str, dict]:
    """The metadata entries, by label, of `asset_key`'s materialization in run `run_id`."""
    asset = server.graphql(MATERIALIZATIONS_QUERY, {"assetKey": {"path": [asset_key]}})["assetOrError"]
    assert asset["__typename"] == "Asset", asset
    materializations = [m for m in asset["assetMaterializations"] if m["runId"] == run_id]
    assert len(materializations) == 1, f"{asset_key}: expected one materialization in run {run_id}, found {len(materializations)}"
    return {entry["label"]: entry for entry in materializations[0]["metadataEntries"]}


def test_the_ui_pages_are_served(server):
    for page in ("/assets", "/jobs", "/runs"):
        response = requests.get(server.base_url + page, timeout=60)
        assert response.status_code == 200, page
        assert response.text.lstrip().lower().startswith("<!doctype html>"), page


def test_dg_dev_runs_the_daemon_beside_the_webserver(server):
    """What ./scripts/dev gives: the sensors and schedule can run (the daemon's every required loop is healthy)."""
    deadline = time.monotonic() + DAEMON_TIMEOUT_S
    while True:
        statuses = server.graphql(DAEMON_HEALTH_QUERY)["instance"]["daemonHealth"]["allDaemonStatuses"]
        unhealthy = sorted(status["daemonType"] for status in statuses if status["required"] and not status["healthy"])
        required = [status for status in statuses if status["required"]]
        if required and not unhealthy:
            break
        assert time.monotonic() < deadline, (
            f"daemon loops not healthy {DAEMON_TIMEOUT_S} s after the webserver answered: {unhealthy or 'none required'}\n"
            f"{server.log_tail()}"
        )
        time.sleep(2)
    assert "SENSOR" in {status["daemonType"] for status in required}


def test_catalog_shows_groups_descriptions_kinds_owners_and_tags(server):
    nodes = {"/".join(node["assetKey"]["path"]): node for node in server.graphql(ASSET_NODES_QUERY)["assetNodes"]}
    assert set(nodes) == LOCATION_KEYS
    expected = {
        "candidate_model": ("experiments", "keras"), "candidate_evaluation": ("experiments", "json"),
        "leaderboard": ("experiments", "pandas"),
        "hyperparameters": ("model", "json"),
        "production_model": ("serving", "json"),
        "raw_mnist": ("data", "numpy"), "scaled_mnist": ("data", "numpy"),
        "compiled_model": ("model", "keras"), "trained_model": ("model", "keras"),
        "evaluation_metrics": ("evaluation", "keras"), "predictions_table": ("evaluation", "pandas"),
        "digit_plots": ("reports", "matplotlib"),
        "mnist_files": ("data", "idx"),  # the observable source: annotated like the assets
    }
    for key, (group, kind) in expected.items():
        node = nodes[key]
        assert node["groupName"] == group, key
        assert kind in node["kinds"], (key, node["kinds"])
        assert node["description"] and len(node["description"]) > 20, (key, node["description"])
        assert {"__typename": "TeamAssetOwner", "team": "ml-platform"} in node["owners"], (key, node["owners"])
        assert {"key": "domain", "value": group} in node["tags"], (key, node["tags"])


def test_launchpad_offers_the_jobs_with_default_hyperparameters(server):
    repositories = server.graphql(JOBS_QUERY)["repositoriesOrError"]
    assert repositories["__typename"] == "RepositoryConnection", repositories
    [repository] = [node for node in repositories["nodes"] if node["location"]["name"] == LOCATION]
    jobs = {job["name"]: job["description"] for job in repository["jobs"]}
    expected_configured_assets = {
        "mnist_full_pipeline": {"hyperparameters"},
        "mnist_train_evaluate_report": {"hyperparameters"},
        "mnist_predictions_and_plots": set(),
    }
    assert set(expected_configured_assets) <= set(jobs), jobs
    for job, configured in expected_configured_assets.items():
        assert jobs[job], f"{job} has no description"
        selector = {"repositoryLocationName": LOCATION, "repositoryName": repository["name"], "pipelineName": job}
        schema = server.graphql(DEFAULT_CONFIG_QUERY, {"selector": selector})["runConfigSchemaOrError"]
        assert schema["__typename"] == "RunConfigSchema", schema
        defaults = yaml.safe_load(schema["rootDefaultYaml"]) or {}
        ops = defaults.get("ops", {})
        assert set(ops) == configured, (job, ops)
        if "hyperparameters" in ops:
            # Every hyperparameter, at the value the default (tutorial) preset trains with.
            assert ops["hyperparameters"]["config"] == {
                "preset": {"tutorial": {"optimizer": "sgd", "learning_rate": 0.01, "epochs": 10, "batch_size": 32}},
                "validation_fraction": 0.1,
                "seed": 0,
            }
        # Nothing internal is offered: no storage format (extension), no deployment settings pre-filled.
        assert "extension" not in schema["rootDefaultYaml"], (job, schema["rootDefaultYaml"])
        assert not defaults.get("resources"), (job, defaults.get("resources"))


def test_full_job_launched_through_the_server_materializes_every_asset(server, full_run):
    events = run_events(server, full_run)
    materialized = {"/".join(e["assetKey"]["path"]) for e in events if e["__typename"] == "MaterializationEvent"}
    assert materialized == ALL_KEYS - {"mnist_files"}


def test_run_log_shows_progress_per_epoch(server, full_run):
    messages = [event["message"] for event in run_events(server, full_run) if event.get("stepKey") == "trained_model"]
    assert any(message.startswith("epoch 1/2:") for message in messages), messages
    assert any(message.startswith("epoch 2/2:") for message in messages), messages


@pytest.mark.parametrize(
    "asset_key, label, entry_type",
    [
        ("evaluation_metrics", "test_accuracy", "FloatMetadataEntry"),
        ("evaluation_metrics", "test_loss", "FloatMetadataEntry"),
        ("trained_model", "training_seconds", "FloatMetadataEntry"),
        ("compiled_model", "parameter_count", "IntMetadataEntry"),
    ],
)
def test_model_history_metadata_is_numeric_under_stable_keys(server, full_run, asset_key, label, entry_type):
    entry = metadata_of_run(server, asset_key, full_run)[label]
    assert entry["__typename"] == entry_type, entry
    value = entry["floatValue"] if entry_type == "FloatMetadataEntry" else int(entry["intRepr"])
    assert value is not None and value >= 0, entry


def test_trained_and_evaluated_model_metadata(server, full_run):
    trained = metadata_of_run(server, "trained_model", full_run)
    assert int(trained["epochs"]["intRepr"]) == 2
    assert trained["training_seconds"]["floatValue"] > 0
    assert len(json.loads(trained["history"]["jsonString"])["loss"]) == 2
    assert trained["path"]["path"].endswith("/model.keras") and "/model_registry/" in trained["path"]["path"], "stored once, in the registry"
    evaluation = metadata_of_run(server, "evaluation_metrics", full_run)
    assert 0.0 <= evaluation["test_accuracy"]["floatValue"] <= 1.0
    assert evaluation["test_loss"]["floatValue"] > 0
    assert int(evaluation["num_test_images"]["intRepr"]) == 100
    assert evaluation["per_class"]["mdStr"].startswith("| class | precision | recall | support |")


def test_plots_are_embedded_pngs_small_enough_for_the_event_log(server, full_run):
    metadata = metadata_of_run(server, "digit_plots", full_run)
    embedded = {label.removeprefix("plot_"): entry for label, entry in metadata.items() if label.startswith("plot_")}
    assert set(embedded) == PLOTS
    for name, entry in embedded.items():
        assert entry["__typename"] == "MarkdownMetadataEntry", name
        prefix = f"![{name}]({EMBEDDED_PNG_PREFIX}"
        assert entry["mdStr"].startswith(prefix) and entry["mdStr"].endswith(")"), name
        png = base64.b64decode(entry["mdStr"][len(prefix):-1], validate=True)
        assert png.startswith(PNG_SIGNATURE), name
        assert len(png) < MAX_EMBEDDED_PNG_BYTES, f"{name}: {len(png)} bytes"


def test_predictions_table_is_previewed(server, full_run):
    metadata = metadata_of_run(server, "predictions_table", full_run)
    assert int(metadata["dagster/row_count"]["intRepr"]) == 100
    assert metadata["dagster/column_schema"]["__typename"] == "TableSchemaMetadataEntry"
    preview = metadata["preview"]["mdStr"].splitlines()
    assert preview[0].startswith("| index | true_label | predicted_label | true_class | predicted_class | confidence |")
    assert len(preview) == 2 + 10, "header, rule and ten rows"


def test_unknown_optimizer_is_rejected_at_launch_naming_the_field(server):
    runs_before = server.graphql(RUN_IDS_QUERY)["runsOrError"]["results"]
    with pytest.raises(DagsterGraphQLClientError) as rejected:
        server.client.submit_job_execution(
            "mnist_full_pipeline", run_config=hyperparameters_run_config(optimizer="rmsprop")
        )
    kind, errors = rejected.value.args
    assert kind == "RunConfigValidationInvalid", rejected.value.args
    messages = [error["message"] for error in errors]
    assert any("optimizer" in message and "rmsprop" in message for message in messages), messages
    assert server.graphql(RUN_IDS_QUERY)["runsOrError"]["results"] == runs_before, "no run was created"


def test_zero_epochs_fails_the_hyperparameters_step_naming_the_field(server, full_run):
    # Launched after the full run, so the retraining job finds the stored data.
    run_id = server.client.submit_job_execution(
        "mnist_train_evaluate_report", run_config=hyperparameters_run_config(epochs=0)
    )
    assert server.wait_for_run(run_id, RUN_TIMEOUT_S) == DagsterRunStatus.FAILURE
    events = run_events(server, run_id)
    failures = [event for event in events if event["__typename"] == "ExecutionStepFailureEvent"]
    assert [event["stepKey"] for event in failures] == ["hyperparameters"], failure_messages(events)
    message = error_text(failures[0])
    assert "epochs" in message and "input_value=0" in message, message
    assert not [event for event in events if event["__typename"] == "MaterializationEvent"], "nothing was materialized"


RESOURCE_QUERY = """
query Resource($selector: ResourceSelector!) {
  topLevelResourceDetailsOrError(resourceSelector: $selector) {
    __typename
    ... on ResourceDetails { configFields { name description } configuredValues { key value type } }
    ... on PythonError { message }
  }
}
"""


def test_the_resource_page_shows_which_variable_sets_each_field(server):
    from mnist_pipeline.defs.data.resources import MnistSource
    from mnist_pipeline.defs.evaluation.gates import QualityGates

    repositories = server.graphql(JOBS_QUERY)["repositoriesOrError"]
    [repository] = [node for node in repositories["nodes"] if node["location"]["name"] == LOCATION]
    for name, resource in (("quality_gates", QualityGates), ("mnist_source", MnistSource)):
        selector = {"repositoryLocationName": LOCATION, "repositoryName": repository["name"], "resourceName": name}
        details = server.graphql(RESOURCE_QUERY, {"selector": selector})["topLevelResourceDetailsOrError"]
        assert details["__typename"] == "ResourceDetails", details
        shown = {field["name"]: field["description"] for field in details["configFields"]}
        for field, variable in resource.ENVIRONMENT.items():
            assert f"Unset: ${variable}, read when used" in shown[field], (name, field, shown[field])
        # Not bound in code: the variables are read when used, so no value of theirs is shown (nor required at launch).
        assert not [value for value in details["configuredValues"] if value["type"] == "ENV_VAR"], details["configuredValues"]
