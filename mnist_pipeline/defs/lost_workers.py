"""Noticing, from the run's side, a step whose Celery worker died while running it.

dagster-celery's executor (dagster_celery/core_execution_loop.py, 0.29.27) submits each step as a
Celery task and polls its result once a second with no timeout. When the worker running a step
dies with its machine, nothing is left to report a result: the task was acknowledged when the
worker took it, so the broker no longer holds it, and the run would wait forever.

So each step's result is watched here: once a step has been out for WATCH_AFTER_SECONDS, the run
asks the workers who is alive (Celery's `control.ping()`, one broadcast per CENSUS_EVERY_SECONDS for
all the run's steps). A step that has STARTED (the workers record it, with
their name: `task_track_started` in mnist_pipeline/cluster/worker.py) is lost when its worker has not
answered for MNIST_WORKER_SILENCE_SECONDS (90 by default, read when the run starts). Its result then
reads as failed, with the reason, and the run fails like a run whose step raised: the executor's own
loop does the rest. A busy worker still answers: Celery's main process replies while its pool
process runs the step. A step no worker has started yet is left waiting: its task is still in the
broker's queue, and a worker that starts later takes it.
"""

from __future__ import annotations

import time
from typing import Callable, Optional

# A short step never pays for a broadcast.
WATCH_AFTER_SECONDS = 30.0
CENSUS_EVERY_SECONDS = 15.0
# How long a broadcast collects replies (Celery waits that long whatever the number of workers).
REPLY_TIMEOUT_SECONDS = 2.0

Clock = Callable[[], float]


class StepWorkerLost(RuntimeError):
    """The worker running a step is gone: the step will never report."""


class WorkerCensus:
    """The workers that answer: every worker is asked at most once per CENSUS_EVERY_SECONDS."""

    def __init__(self, app, clock: Clock = time.monotonic):
        self._app = app
        self._clock = clock
        self._taken_at: Optional[float] = None
        self._answering: frozenset[str] = frozenset()
        self.broker_error: Optional[str] = None

    def answering(self) -> frozenset[str]:
        """The names (e.g. `training@host`) of the workers that answered the last census."""
        from kombu.exceptions import OperationalError  # Celery's messaging library: the cluster extra's

        now = self._clock()
        if self._taken_at is None or now - self._taken_at >= CENSUS_EVERY_SECONDS:
            self._taken_at = now
            try:
                replies = self._app.control.ping(timeout=REPLY_TIMEOUT_SECONDS)
                self.broker_error = None
            except OperationalError as error:  # the broker is down: nobody answers, and the reason is kept
                replies, self.broker_error = [], f"{type(error).__name__}: {error}"
            self._answering = frozenset(name for reply in replies for name in reply)
        return self._answering


class WatchedStepResult:
    """A step's Celery result, as dagster-celery's loop uses it (ready, get, revoke), that also ends when the
    step's worker is gone: `ready()` is then true and `get()` raises StepWorkerLost with the reason."""

    def __init__(self, result, census: WorkerCensus, step_key: str, silence_seconds: float, clock: Clock = time.monotonic):
        self._result = result
        self._silence_seconds = silence_seconds
        self._census = census
        self._step_key = step_key
        self._clock = clock
        self._submitted_at = clock()
        self._worker: Optional[str] = None  # the worker that started the step, once it has
        self._last_answer = self._submitted_at
        self._checked_at: Optional[float] = None
        self._lost: Optional[str] = None

    def ready(self) -> bool:
        if self._result.ready():
            return True
        now = self._clock()
        # Checked at the census's pace: between censuses the answer could not change, and the loop asks every second.
        due = self._checked_at is None or now - self._checked_at >= CENSUS_EVERY_SECONDS
        if self._lost is None and due and now - self._submitted_at >= WATCH_AFTER_SECONDS:
            self._checked_at = now
            self._lost = self._check()
        return self._lost is not None

    def get(self):
        if self._lost is not None:
            raise StepWorkerLost(self._lost)
        return self._result.get()

    def revoke(self) -> None:
        """The loop's answer to SIGINT or SIGTERM: the step is revoked and, if a worker runs it, stopped. A plain
        revoke only keeps a task from starting; the training under way would go on to its end, and the command with
        it. The worker's pool process gets SIGINT, which Dagster turns into the step's interruption there."""
        self._result.revoke(terminate=True, signal="SIGINT")

    def _check(self) -> Optional[str]:
        """None while the step waits for a worker or its worker answers; else the reason it is given up."""
        if self._worker is None and self._result.state == "STARTED":
            started = self._result.info
            self._worker = started.get("hostname") if isinstance(started, dict) else None
            self._last_answer = self._clock()
        if self._worker is None:
            # Still in the broker's queue: a worker that starts later takes it, as a queued job waits for its
            # machine. Given up here, it would stay queued and run later for a run that had ended.
            return None
        now = self._clock()
        if self._worker in self._census.answering():
            self._last_answer = now
            return None
        silent = now - self._last_answer
        if silent < self._silence_seconds:
            return None
        broker = f" (the broker: {self._census.broker_error})" if self._census.broker_error else ""
        # The task was acknowledged when the worker took it: the broker no longer holds it, so no worker
        # will run it again; revoked all the same, in case the worker comes back with it.
        self._result.revoke()
        return (
            f"step {self._step_key}: its Celery worker {self._worker} has not answered for {silent:.0f} s{broker}: "
            "the worker or its machine is gone, and the step with it. Its training checkpoint (if any) is kept: "
            "start the worker again (`./scripts/cluster up` starts what is down) and rerun to resume."
        )


def watching_celery_executor(celery_executor, silence_seconds: float):
    """dagster-celery's executor, its loop and its step submission unchanged, with each step's result watched.

    Built on dagster-celery 0.29.27's `core_celery_execution_loop` and `_submit_task` (its executor's own
    `execute` is exactly that loop with that submission): the loop takes the submission as a parameter, which
    is where the watch goes in. Pinned with the rest of the Dagster family (pyproject.toml).
    """
    import dagster as dg
    from dagster_celery.core_execution_loop import core_celery_execution_loop
    from dagster_celery.executor import _submit_task

    class WatchingCeleryExecutor(dg.Executor):
        @property
        def retries(self):
            return celery_executor.retries

        def app_args(self):  # read by the loop, to make the Celery app it submits with
            return celery_executor.app_args()

        def execute(self, plan_context, execution_plan):
            census: list[WorkerCensus] = []  # one per run, made with the loop's Celery app

            def submit_watched(app, context, step, queue, priority, known_state):
                if not census:
                    census.append(WorkerCensus(app))
                result = _submit_task(app, context, step, queue, priority, known_state)
                return WatchedStepResult(result, census[0], step.key, silence_seconds)

            return core_celery_execution_loop(plan_context, execution_plan, step_execution_fn=submit_watched)

    return WatchingCeleryExecutor()
