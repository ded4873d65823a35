"""deploy/ (the Dockerfile, the Helm values, the workers' manifest) and the `gpu` extra agree with the code and with scripts/cluster.

Nothing in deploy/ can run here (no Kubernetes, no Docker registry), so these
fast tests check what can drift: the variables `scripts/cluster env` exports
(taken from the script itself) are set for the code server, the runs and the
workers; the queues are the executor's; the code location is pyproject's; the
training worker alone asks for a GPU.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from packaging.requirements import Requirement

from mnist_pipeline import settings
from mnist_pipeline.defs.executor import DEFAULT_QUEUE, TRAINING_QUEUE

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
GPU = "nvidia.com/gpu"


@pytest.fixture(scope="module")
def cluster_env(tmp_path_factory) -> dict[str, str]:
    """The variables `scripts/cluster env` exports, by name, for a cluster home with made-up credentials."""
    home = tmp_path_factory.mktemp("cluster_home")
    (home / "secrets.env").write_text(
        "postgres_password=pg\nredis_password=rd\ns3_access_key=mnistkey\ns3_secret_key=s3secret\n"
    )
    printed = subprocess.run(
        [str(REPO / "scripts" / "cluster"), "env"],
        env={"PATH": "/usr/bin:/bin", "MNIST_CLUSTER_HOME": str(home)},
        capture_output=True, text=True, check=True,
    ).stdout
    exported = dict(re.findall(r"^export (\w+)='?([^'\n]*)'?$", printed, flags=re.MULTILINE))
    assert {"MNIST_PIPELINE_ENV", "MNIST_CELERY_BROKER_URL", "DAGSTER_HOME"} <= set(exported), printed
    return exported


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())


@pytest.fixture(scope="module")
def user_deployment(values) -> dict:
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    return deployment


@pytest.fixture(scope="module")
def workers() -> dict[str, dict]:
    """Each worker Deployment's pod spec, by the queue its command consumes (`-q QUEUE`)."""
    by_queue = {}
    for manifest in yaml.safe_load_all((DEPLOY / "k8s" / "celery-workers.yaml").read_text()):
        assert manifest["kind"] == "Deployment"
        pod = manifest["spec"]["template"]["spec"]
        (queue,) = re.findall(r"\s-q (\S+)", pod["containers"][0]["args"][0])
        by_queue[queue] = pod
    return by_queue


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


def env_by_name(env: list[dict]) -> dict[str, dict]:
    """A container's env list, by variable: each entry without its name (a value or a valueFrom)."""
    return {entry["name"]: {key: value for key, value in entry.items() if key != "name"} for entry in env}


def dagster_tool_config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["dagster"]


def test_the_code_server_and_the_runs_get_every_variable_of_the_cluster(cluster_env, values, user_deployment):
    env = env_by_name(user_deployment["env"])
    # DAGSTER_HOME is the chart's own (global.dagsterHome, set on every pod it starts).
    assert set(cluster_env) - {"DAGSTER_HOME"} <= set(env)
    assert values["global"]["dagsterHome"]
    # The runs' pods get the deployment's env: the run's executor reads the broker there.
    assert user_deployment["includeConfigInLaunchedRuns"] == {"enabled": True}


def test_every_worker_gets_the_same_variables_as_the_code_server(cluster_env, values, user_deployment, workers):
    deployment_env = env_by_name(user_deployment["env"])
    for queue, pod in workers.items():
        env = env_by_name(pod["containers"][0]["env"])
        assert set(cluster_env) <= set(env), queue
        assert env["DAGSTER_HOME"] == {"value": values["global"]["dagsterHome"]}, queue
        for name, setting in deployment_env.items():
            assert env[name] == setting, f"{queue} worker: {name}"


def test_the_settings_have_the_form_the_code_checks(values, user_deployment):
    env = env_by_name(user_deployment["env"])
    assert settings.parse_pipeline_env(env[settings.PIPELINE_ENV]["value"]) == settings.CLUSTER_ENV
    storage = urlparse(env["MNIST_STORAGE_URL"]["value"])
    assert storage.scheme == "s3" and storage.netloc and storage.path.strip("/")
    # Credentials come from a Secret, never from the values file.
    for secret in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", settings.CELERY_BROKER_URL, settings.CELERY_BACKEND_URL):
        assert set(env[secret]) == {"valueFrom"}, secret
    # Compute logs in the artifacts' bucket, at the same endpoint, as scripts/cluster's dagster.yaml.
    logs = values["computeLogManager"]["config"]["s3ComputeLogManager"]
    assert logs["bucket"] == storage.netloc
    assert logs["endpointUrl"] == env["AWS_ENDPOINT_URL"]["value"]


def test_the_workers_consume_the_executors_queues_with_the_projects_celery_app(workers):
    assert set(workers) == {DEFAULT_QUEUE, TRAINING_QUEUE}
    for queue, pod in workers.items():
        command = pod["containers"][0]["args"][0]
        (app,) = re.findall(r"dagster-celery worker start -A (\S+)", command)
        assert importlib.util.find_spec(app) is not None, f"{queue} worker: no module {app}"
        assert app == "mnist_pipeline.cluster.worker"
        # celery.yaml is written from the variables the runs' executor reads.
        assert "$" + settings.CELERY_BROKER_URL in command and "$" + settings.CELERY_BACKEND_URL in command


def test_only_the_training_worker_asks_for_a_gpu_and_runs_on_gpu_nodes(workers):
    training = workers[TRAINING_QUEUE]
    assert training["containers"][0]["resources"]["limits"][GPU] == 1
    assert training["nodeSelector"] and any(toleration["key"] == GPU for toleration in training["tolerations"])
    assert training["containers"][0]["image"].endswith("-gpu")
    other = workers[DEFAULT_QUEUE]
    assert GPU not in other["containers"][0]["resources"].get("limits", {})
    assert "nodeSelector" not in other and "tolerations" not in other


def test_the_workers_open_the_charts_instance(values, workers):
    for queue, pod in workers.items():
        config_maps = [volume["configMap"]["name"] for volume in pod["volumes"] if "configMap" in volume]
        assert config_maps == [values["global"]["dagsterInstanceConfigMap"]], queue
        password = env_by_name(pod["containers"][0]["env"])["DAGSTER_PG_PASSWORD"]
        assert password["valueFrom"]["secretKeyRef"]["name"] == values["global"]["postgresqlSecretName"], queue


def test_the_run_queue_lets_one_run_that_trains_through_at_a_time_by_its_pool(values):
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator"
    # The chart's top-level `concurrency` renders `pools` into the instance's dagster.yaml, as scripts/cluster's.
    assert values["concurrency"] == {"enabled": True, "pools": {"defaultLimit": 1, "granularity": "run"}}
    assert "tagConcurrencyLimits" not in coordinator["config"]["queuedRunCoordinator"]


def test_the_code_location_is_pyprojects(user_deployment, dockerfile):
    tool = dagster_tool_config()
    expected = ["-m", tool["module_name"], "--location-name", tool["code_location_name"]]
    assert user_deployment["codeServerArgs"] == expected
    (command,) = re.findall(r"^CMD (\[.*\])$", dockerfile, flags=re.MULTILINE)
    assert json.loads(command)[:3] == ["dagster", "code-server", "start"]
    assert json.loads(command)[-4:] == expected
    assert str(user_deployment["port"]) in json.loads(command)


def test_the_image_installs_the_cluster_extra_pinned_and_runs_as_a_user(values, dockerfile):
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, flags=re.MULTILINE)
    assert 'pip install -c constraints.txt ".[cluster]"' in dockerfile
    (user,) = re.findall(r"^USER (\S+)$", dockerfile, flags=re.MULTILINE)
    assert user not in ("root", "0")
    assert f"DAGSTER_HOME={values['global']['dagsterHome']}" in dockerfile


def test_the_gpu_extra_is_the_cuda_libraries_the_installed_tensorflow_requires():
    """The extra lists what TensorFlow's own `and-cuda` extra does (tensorflow-cpu's metadata carries the same
    list), so upgrading TensorFlow without updating the extra fails here; and no TensorFlow distribution."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    gpu = {(requirement.name, requirement.specifier) for requirement in map(Requirement, extras["gpu"])}
    tensorflow_and_cuda = {
        (requirement.name, requirement.specifier)
        for requirement in map(Requirement, importlib.metadata.requires("tensorflow-cpu"))
        if requirement.marker is not None and requirement.marker.evaluate({"extra": "and-cuda"})
    }
    assert gpu == tensorflow_and_cuda
    assert not any(name.startswith("tensorflow") for name, _ in gpu)
