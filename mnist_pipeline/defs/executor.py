"""Where a run's steps execute: chosen by MNIST_PIPELINE_ENV when the run starts, never at import.

  local, offline  every step in the run's own process (Dagster's in-process executor), so a run
                  imports TensorFlow once
  cluster         every step a Celery task (dagster-celery's executor), taken by a worker that
                  consumes its queue: trained_model's on `training`, every other step's on `dagster`
                  (scripts/cluster starts one worker per queue; mnist_pipeline/cluster/worker.py
                  is their Celery app). The broker and the result backend are
                  MNIST_CELERY_BROKER_URL and MNIST_CELERY_BACKEND_URL (`scripts/cluster env`).

The steps that train are also in the concurrency pool `training`
(TRAINING_POOL), which the run queue lets through one run at a time.

Every job runs on `pipeline_executor`. Dagster calls its creation function in
the process that orchestrates the run (the command line's, or the run worker
the daemon or the webserver launches) when the run starts, so the variables
are read then. dagster-celery (the `cluster` extra) is imported only for
`cluster`.
"""

from __future__ import annotations

import warnings
from typing import Mapping

import dagster as dg

from mnist_pipeline import settings

# dagster-celery's op tag naming a step's queue (dagster_celery.tags.DAGSTER_CELERY_QUEUE_TAG, spelled
# out here because dagster-celery is optional); a step without it goes to the default queue, `dagster`.
CELERY_QUEUE_TAG = "dagster-celery/queue"
DEFAULT_QUEUE = "dagster"
TRAINING_QUEUE = "training"
# trained_model's op tags: training has a queue of its own, so a GPU machine can serve only that one.
TRAINING_STEP_TAGS = {CELERY_QUEUE_TAG: TRAINING_QUEUE}
# The concurrency pool of the steps that train (trained_model, candidate_model). The instance settings
# (scripts/dagster.yaml, scripts/cluster, deploy/helm/values.yaml) give each pool one slot, counted per
# run: the run queue starts one run that trains at a time, whoever launched it (a job, a schedule, a
# backfill from an asset's page). Commands run outside the queue (`sweep --parallel N` is their limit).
TRAINING_POOL = "training"


def register_training_pool(instance: dg.DagsterInstance) -> None:
    """Store the training pool's limit (the instance's default one) now, unless the pool has a limit already.

    Dagster's run queue stores a new pool's default limit itself, the first time it sees a run of that
    pool, but in that same pass it lets every queued run of the pool through, unlimited (it reads
    which pools have limits before it stores the new one): the first backfill of a sweep's candidates
    would start them all at once. A pool with a limit of its own, or an instance without a default
    limit, is left as it is.
    """
    storage = instance.event_log_storage
    if instance.global_op_concurrency_default_limit is None or TRAINING_POOL in storage.get_concurrency_keys():
        return
    storage.initialize_concurrency_limit_to_default(TRAINING_POOL)


CLUSTER_EXTRA_MISSING = (
    f"{settings.PIPELINE_ENV}={settings.CLUSTER_ENV} runs the steps with dagster-celery's executor, and "
    "dagster-celery is not installed: install the project's `cluster` extra (`./scripts/cluster up` "
    "installs it into .venv)"
)


class StepExecutorError(dg.DagsterError):
    """The steps' executor cannot be made: the run fails at its start, with this message, before any step."""


def pipeline_env() -> str:
    """The deployment environment MNIST_PIPELINE_ENV names now (unset or empty: local), checked by settings.py's rule."""
    return settings.parse_pipeline_env(dg.EnvVar(settings.PIPELINE_ENV).get_value() or settings.DEFAULT_PIPELINE_ENV)


def runs_on_celery_workers() -> bool:
    return pipeline_env() == settings.CLUSTER_ENV


def _celery_url(variable: str, what: str) -> str:
    found = dg.EnvVar(variable).get_value()
    if not found:
        raise settings.ConfigurationError(
            f"{variable}: expected the URL of the cluster's Celery {what} (e.g. redis://:PASSWORD@HOST:PORT/0; "
            f'`eval "$(./scripts/cluster env)"` sets it), found {found!r}'
        )
    return found


def celery_executor_config(executor_config: Mapping[str, object]) -> dict[str, object]:
    """dagster-celery's executor config: the broker and backend from their variables, the run's retry setting kept."""
    return {
        "broker": _celery_url(settings.CELERY_BROKER_URL, "broker"),
        "backend": _celery_url(settings.CELERY_BACKEND_URL, "result backend"),
        "retries": executor_config["retries"],
    }


def _celery_executor_definition() -> dg.ExecutorDefinition:
    try:
        from dagster_celery import celery_executor
    except ImportError as missing:
        raise settings.ConfigurationError(CLUSTER_EXTRA_MISSING) from missing
    return celery_executor


def _requirements(executor_config: Mapping[str, object]) -> list[dg.ExecutorRequirement]:
    """What Dagster checks before the run starts: Celery's steps run elsewhere, so the job must be reconstructable,
    the instance shared and the outputs stored. A bad MNIST_PIPELINE_ENV is left to the creation function, which
    fails the run with its message (an error here would escape as a traceback, before the run exists)."""
    try:
        on_workers = runs_on_celery_workers()
    except settings.ConfigurationError:
        return []
    return list(dg.multiple_process_executor_requirements()) if on_workers else []


@dg.executor(
    name="mnist_pipeline",
    # The in-process executor's (retries, mainly), so a run's config is the same in every environment.
    config_schema=dg.in_process_executor.config_schema,
    requirements=_requirements,
)
def pipeline_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """The in-process executor for `local` and `offline`; dagster-celery's executor for `cluster` (module docstring)."""
    try:
        if not runs_on_celery_workers():
            return dg.in_process_executor.executor_creation_fn(init_context)
        celery_executor = _celery_executor_definition()
        # dagster-celery registers its task again for every step it submits (dagster_celery/executor.py,
        # _submit_task) and Celery warns each time; the first registration is the one used, so it says nothing.
        warnings.filterwarnings("ignore", message="Task name 'execute_plan' is already registered")
        celery_context = dg.InitExecutorContext(
            job=init_context.job,
            executor_def=celery_executor,
            executor_config=celery_executor_config(init_context.executor_config),
            instance=init_context.instance,
        )
        from mnist_pipeline.defs.lost_workers import watching_celery_executor

        # So a run whose step's worker dies fails, instead of waiting on it forever (defs/lost_workers.py).
        silence = dg.EnvVar(settings.WORKER_SILENCE_SECONDS).get_value()
        silence_seconds = (
            settings.parse_worker_silence_seconds(silence) if silence else settings.DEFAULT_WORKER_SILENCE_SECONDS
        )
        return watching_celery_executor(celery_executor.executor_creation_fn(celery_context), silence_seconds)
    except settings.ConfigurationError as error:
        # A DagsterError is what Dagster turns into a failed run (a job initialization failure) with this message.
        raise StepExecutorError(str(error)) from error
