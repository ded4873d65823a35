"""pipeline_executor (defs/executor.py): the executor each MNIST_PIPELINE_ENV gets, decided when a run starts.

Fast: no cluster. The executors are made by Dagster's own creation path
(InitExecutorContext, as a run's start makes them); test_cluster.py runs the
pipeline on the real workers.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from mnist_pipeline.cli.main import full_pipeline
from mnist_pipeline.definitions import defs
from mnist_pipeline.defs.executor import (
    CELERY_QUEUE_TAG,
    DEFAULT_QUEUE,
    TRAINING_POOL,
    TRAINING_QUEUE,
    StepExecutorError,
    pipeline_executor,
    register_training_pool,
)

REPO = Path(__file__).resolve().parents[1]
BROKER = "redis://:secret@127.0.0.1:6379/0"
BACKEND = "redis://:secret@127.0.0.1:6379/1"
UNKNOWN_ENV = "MNIST_PIPELINE_ENV: expected one of ['cluster', 'local', 'offline'], found 'cloud'"


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def make_executor(instance: dg.DagsterInstance) -> dg.Executor:
    """The executor a run of the full job gets, made as Dagster makes it when the run starts."""
    context = dg.InitExecutorContext(
        job=dg.reconstructable(full_pipeline),
        executor_def=pipeline_executor,
        executor_config={"retries": {"enabled": {}}},
        instance=instance,
    )
    return pipeline_executor.executor_creation_fn(context)


@pytest.mark.parametrize("env", [None, "", "local", "offline"])
def test_local_and_offline_run_every_step_in_the_runs_process(monkeypatch, instance, env):
    if env is None:
        monkeypatch.delenv("MNIST_PIPELINE_ENV", raising=False)
    else:
        monkeypatch.setenv("MNIST_PIPELINE_ENV", env)
    assert type(make_executor(instance)).__name__ == "InProcessExecutor"
    assert pipeline_executor.get_requirements({}) == []  # a job not loaded reconstructably still runs


def test_cluster_sends_the_steps_to_celery_with_the_broker_and_backend_of_its_variables(monkeypatch, instance):
    pytest.importorskip("dagster_celery", reason="the cluster extra is not installed (scripts/cluster up installs it)")
    monkeypatch.setenv("MNIST_PIPELINE_ENV", "cluster")
    monkeypatch.setenv("MNIST_CELERY_BROKER_URL", BROKER)
    monkeypatch.setenv("MNIST_CELERY_BACKEND_URL", BACKEND)
    executor = make_executor(instance)
    # dagster-celery's executor, with each step's result watched for a lost worker (defs/lost_workers.py).
    assert type(executor).__name__ == "WatchingCeleryExecutor"
    assert (executor.app_args()["broker"], executor.app_args()["backend"]) == (BROKER, BACKEND)
    assert executor.retries.enabled  # the run's retry setting is kept
    assert set(pipeline_executor.get_requirements({})) == set(dg.multiple_process_executor_requirements())


@pytest.mark.parametrize("silence", ["abc", "29", "nan", "inf"])
def test_a_bad_worker_silence_fails_the_run_at_its_start_naming_the_variable(monkeypatch, instance, silence):
    pytest.importorskip("dagster_celery", reason="the cluster extra is not installed (scripts/cluster up installs it)")
    monkeypatch.setenv("MNIST_PIPELINE_ENV", "cluster")
    monkeypatch.setenv("MNIST_CELERY_BROKER_URL", BROKER)
    monkeypatch.setenv("MNIST_CELERY_BACKEND_URL", BACKEND)
    monkeypatch.setenv("MNIST_WORKER_SILENCE_SECONDS", silence)
    with pytest.raises(StepExecutorError, match=re.escape(
        "MNIST_WORKER_SILENCE_SECONDS: expected seconds, a number of at least 30, that a step's Celery worker may "
        f"stay silent before the run gives the step up (default 90), found {silence!r}"
    )):
        make_executor(instance)


def test_the_queue_tag_and_default_queue_are_dagster_celerys():
    pytest.importorskip("dagster_celery", reason="the cluster extra is not installed (scripts/cluster up installs it)")
    from dagster_celery.defaults import task_default_queue
    from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG

    assert (CELERY_QUEUE_TAG, DEFAULT_QUEUE) == (DAGSTER_CELERY_QUEUE_TAG, task_default_queue)


@pytest.mark.parametrize(
    "variable, other",
    [("MNIST_CELERY_BROKER_URL", "MNIST_CELERY_BACKEND_URL"), ("MNIST_CELERY_BACKEND_URL", "MNIST_CELERY_BROKER_URL")],
)
def test_cluster_without_a_celery_url_names_the_variable(monkeypatch, instance, variable, other):
    pytest.importorskip("dagster_celery", reason="the cluster extra is not installed (scripts/cluster up installs it)")
    monkeypatch.setenv("MNIST_PIPELINE_ENV", "cluster")
    monkeypatch.setenv(other, BROKER)
    monkeypatch.delenv(variable, raising=False)
    with pytest.raises(StepExecutorError) as refused:
        make_executor(instance)
    assert str(refused.value).startswith(f"{variable}: expected the URL of the cluster's Celery ")
    assert str(refused.value).endswith('`eval "$(./scripts/cluster env)"` sets it), found None')


def test_cluster_without_dagster_celery_names_the_cluster_extra(monkeypatch, instance):
    monkeypatch.setenv("MNIST_PIPELINE_ENV", "cluster")
    monkeypatch.setitem(sys.modules, "dagster_celery", None)  # what Python does for a package not installed: ImportError
    with pytest.raises(StepExecutorError) as refused:
        make_executor(instance)
    assert str(refused.value) == (
        "MNIST_PIPELINE_ENV=cluster runs the steps with dagster-celery's executor, and dagster-celery is not "
        "installed: install the project's `cluster` extra (`./scripts/cluster up` installs it into .venv)"
    )


def test_an_unknown_environment_fails_the_run_at_its_start_naming_the_variable(monkeypatch, instance):
    monkeypatch.setenv("MNIST_PIPELINE_ENV", "cloud")
    with pytest.raises(StepExecutorError, match=f"^{re.escape(UNKNOWN_ENV)}$"):
        make_executor(instance)
    # As a run: it fails before any step, with the message, not a traceback out of execute_job.
    with dg.execute_job(dg.reconstructable(full_pipeline), instance, raise_on_error=False) as result:
        assert not result.success
        failure = result.get_run_failure_event()
        assert failure.job_failure_data.error.message.strip() == f"mnist_pipeline.defs.executor.StepExecutorError: {UNKNOWN_ENV}"
        assert [event for event in result.all_events if event.is_step_start] == []


def test_training_goes_to_the_training_queue_and_every_other_step_to_the_default_queue():
    job = defs().resolve_job_def("mnist_full_pipeline")
    queues = {node.name: node.tags.get(CELERY_QUEUE_TAG, DEFAULT_QUEUE) for node in job.graph.node_defs}
    assert queues.pop("trained_model") == TRAINING_QUEUE
    assert set(queues.values()) == {DEFAULT_QUEUE}


def test_the_steps_that_train_and_only_they_are_in_the_training_pool():
    pools = {
        node.name: node.pool for job in ("mnist_full_pipeline", "mnist_sweep_candidates") for node in defs().resolve_job_def(job).graph.node_defs
    }
    assert {name for name, pool in pools.items() if pool is not None} == {"trained_model", "candidate_model"}
    assert pools["trained_model"] == pools["candidate_model"] == TRAINING_POOL


POOL_LIMIT = "  pools:\n    granularity: run\n    default_limit: 1\n"


def test_every_instance_the_scripts_write_gives_each_pool_one_run_at_a_time(tmp_path):
    """Counted per run, so the run queue holds a second run that trains, however it was launched."""
    with scripts_instance(tmp_path) as instance:
        pools = instance.get_concurrency_config().pool_config
        assert (pools.pool_granularity.value, pools.default_pool_limit) == ("run", 1)
    # scripts/cluster writes the same limit into the cluster's dagster.yaml (test_cluster.py runs it).
    assert f"concurrency:\n  runs:\n    max_concurrent_runs: 4\n{POOL_LIMIT}" in (REPO / "scripts" / "cluster").read_text()


def scripts_instance(tmp_path, settings: str | None = None):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "scripts" / "dagster.yaml").read_text() if settings is None else settings)
    return dg.DagsterInstance.from_config(str(home))


def test_the_training_pool_gets_the_default_limit_before_any_run_and_a_limit_of_its_own_is_kept(tmp_path):
    with scripts_instance(tmp_path) as instance:
        storage = instance.event_log_storage
        assert storage.get_pool_limits() == []
        register_training_pool(instance)
        register_training_pool(instance)
        assert [(pool.name, pool.limit) for pool in storage.get_pool_limits()] == [(TRAINING_POOL, 1)]
        storage.set_concurrency_slots(TRAINING_POOL, 3)  # as `dagster instance concurrency set training 3`
        register_training_pool(instance)
        assert [(pool.name, pool.limit) for pool in storage.get_pool_limits()] == [(TRAINING_POOL, 3)]


def test_an_instance_without_a_default_pool_limit_gets_no_limit_on_training(tmp_path):
    with scripts_instance(tmp_path, settings="telemetry:\n  enabled: false\n") as instance:
        register_training_pool(instance)
        assert instance.event_log_storage.get_pool_limits() == []


def test_importing_the_definitions_imports_neither_dagster_celery_nor_celery():
    code = "import sys, mnist_pipeline.definitions; print(sorted(m for m in ('dagster_celery', 'celery') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "[]"
