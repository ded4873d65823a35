"""The Celery app of the cluster's workers: dagster-celery's, with the pipeline loaded once per worker process.

scripts/cluster starts each worker with `dagster-celery worker start -A mnist_pipeline.cluster.worker
-y celery.yaml -q <queue>`: dagster-celery writes the broker and backend of celery.yaml into a
`dagster_celery_config` module that `dagster_celery.app` reads, and the app found here (`app`) is that
one, with its task `execute_plan` registered.

How dagster-celery runs a step (dagster_celery/tasks.py, 0.29.27): the task `execute_plan` runs it in
the Celery pool process that took the task, in-process (`execute_plan_iterator`), not in a subprocess;
it rebuilds the job from its code pointer, whose module stays imported for the life of that process.
The pool (prefork, --concurrency=1) keeps its process for every task (no --max-tasks-per-child), so
TensorFlow, Keras, matplotlib and the code location are imported once per worker process, here,
when the pool process starts (`worker_process_init`), and no step imports them again. Imported after
the fork, not in the parent before it: TensorFlow is not safe to fork once loaded.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import time

from celery.signals import worker_process_init
from dagster_celery.app import app

import mnist_pipeline.ml

__all__ = ["app"]

# Celery gives a new pool process 4 s to start before it replaces it; loading TensorFlow takes longer on
# a busy machine, and a replaced process would load it again.
app.conf.worker_proc_alive_timeout = 300
# A step's result reads STARTED, with this worker's name, once the worker runs it: the run's executor then
# knows whom to watch, and fails the step if that worker stops answering (mnist_pipeline/defs/lost_workers.py).
app.conf.task_track_started = True

logger = logging.getLogger(__name__)


def preload_pipeline() -> list[str]:
    """Imports every module the steps import lazily (the whole ML core: TensorFlow, Keras, matplotlib) and the
    code location; returns the modules loaded."""
    modules = [info.name for info in pkgutil.walk_packages(mnist_pipeline.ml.__path__, "mnist_pipeline.ml.")]
    for name in modules + ["mnist_pipeline.definitions", "mnist_pipeline.cli.main"]:
        importlib.import_module(name)
    from mnist_pipeline.definitions import defs

    defs().get_repository_def()  # builds the code location and resolves its jobs once in this process
    return modules


@worker_process_init.connect
def _preload_in_pool_process(**_) -> None:
    started = time.perf_counter()
    preload_pipeline()
    import keras
    import tensorflow

    # The cluster test reads this line: the pid of each process that may run a step, loaded once.
    logger.warning(
        "mnist_pipeline preloaded TensorFlow %s, Keras %s and the code location in pid %d in %.1f s",
        tensorflow.__version__,
        keras.__version__,
        os.getpid(),
        time.perf_counter() - started,
    )
