"""The watch on each step's Celery result (defs/lost_workers.py): when it gives a step up, and what it says.

Fast: the decision logic, on a clock the test moves and a stand-in for the two things it reads of Celery
(a task's state, and the workers' answers to a broadcast). test_cluster_crash.py kills a real worker.
"""

from __future__ import annotations

import pytest

# Celery's messaging library comes with the cluster extra (scripts/cluster up installs it).
OperationalError = pytest.importorskip("kombu.exceptions", reason="the cluster extra is not installed").OperationalError

from mnist_pipeline.defs.lost_workers import (  # noqa: E402  (needs kombu)
    CENSUS_EVERY_SECONDS,
    WATCH_AFTER_SECONDS,
    StepWorkerLost,
    WatchedStepResult,
    WorkerCensus,
)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TaskResult:
    """What dagster-celery's loop and the watch read of a Celery AsyncResult."""

    def __init__(self, state="PENDING", info=None):
        self.state, self.info, self.done, self.revoked = state, info, False, False

    def ready(self):
        return self.done

    def get(self):
        return ["event"]

    def revoke(self):
        self.revoked = True


class Workers:
    """The app's `control.ping(timeout)`: a reply per live worker, or the broker's error."""

    def __init__(self, queues_by_worker=None):
        self.queues_by_worker = queues_by_worker or {}
        self.broker_down = False
        self.broadcasts = 0
        self.control = self

    def ping(self, timeout):
        self.broadcasts += 1
        if self.broker_down:
            raise OperationalError("Error 111 connecting to 127.0.0.1:47401. Connection refused.")
        return [{worker: {"ok": "pong"}} for worker in self.queues_by_worker]


SILENT_FOR_SECONDS = 90.0  # MNIST_WORKER_SILENCE_SECONDS's default (settings.py)


def watched(result, workers, clock):
    return WatchedStepResult(result, WorkerCensus(workers, clock=clock), "trained_model", SILENT_FOR_SECONDS, clock=clock)


def advance_while_watching(step, clock, seconds, every=1.0):
    """The loop's polling: ready() once a second for `seconds`; True as soon as it says ready."""
    end = clock.now + seconds
    while clock.now < end:
        clock.now += every
        if step.ready():
            return True
    return False


def test_a_step_whose_started_worker_goes_silent_is_given_up_naming_the_step_and_the_worker():
    clock, workers = Clock(), Workers({"training@host": ["training"], "dagster@host": ["dagster"]})
    result = TaskResult("STARTED", {"pid": 42, "hostname": "training@host"})
    step = watched(result, workers, clock)
    assert not advance_while_watching(step, clock, WATCH_AFTER_SECONDS + 60)  # answering: still running
    del workers.queues_by_worker["training@host"]  # the worker's machine dies
    lost_at = clock.now
    assert advance_while_watching(step, clock, SILENT_FOR_SECONDS + 2 * CENSUS_EVERY_SECONDS)
    # Given up once silent for SILENT_FOR_SECONDS, counted from its last answer (at most one census earlier).
    assert SILENT_FOR_SECONDS - CENSUS_EVERY_SECONDS <= clock.now - lost_at <= SILENT_FOR_SECONDS + CENSUS_EVERY_SECONDS
    with pytest.raises(StepWorkerLost, match=r"^step trained_model: its Celery worker training@host has not answered for \d+ s: "
                       r"the worker or its machine is gone"):
        step.get()
    assert result.revoked  # so no worker runs it later


def test_a_busy_worker_that_answers_keeps_its_step_for_as_long_as_the_step_takes():
    clock, workers = Clock(), Workers({"training@host": ["training"]})
    result = TaskResult("STARTED", {"pid": 42, "hostname": "training@host"})
    step = watched(result, workers, clock)
    assert not advance_while_watching(step, clock, 3600)
    result.done = True
    assert step.ready() and step.get() == ["event"]


def test_a_step_no_worker_has_started_waits_for_one_even_with_no_worker_on_its_queue():
    # Its task is still in the broker's queue: a worker started later takes it (given up, it would run later
    # for a run that had ended).
    clock, workers = Clock(), Workers({"dagster@host": ["dagster"]})  # nobody on `training`
    assert not advance_while_watching(watched(TaskResult("PENDING"), workers, clock), clock, 3600)


def test_a_step_queued_behind_another_while_its_queues_worker_answers_waits():
    clock, workers = Clock(), Workers({"training@host": ["training"]})
    assert not advance_while_watching(watched(TaskResult("PENDING"), workers, clock), clock, 3600)


def test_a_short_step_never_costs_a_broadcast():
    clock, workers = Clock(), Workers()
    step = watched(TaskResult("STARTED", {"hostname": "training@host"}), workers, clock)
    assert not advance_while_watching(step, clock, WATCH_AFTER_SECONDS - 2)
    assert workers.broadcasts == 0


def test_the_steps_of_a_run_share_one_broadcast_per_census_interval():
    clock, workers = Clock(), Workers({"training@host": ["training"], "dagster@host": ["dagster"]})
    census = WorkerCensus(workers, clock=clock)
    steps = [WatchedStepResult(TaskResult("STARTED", {"hostname": f"{queue}@host"}), census, key, SILENT_FOR_SECONDS,
                               clock=clock)
             for key, queue in [("trained_model", "training"), ("raw_mnist", "dagster")]]
    for _ in range(int(WATCH_AFTER_SECONDS + 10 * CENSUS_EVERY_SECONDS)):
        clock.now += 1
        assert not any(step.ready() for step in steps)
    assert workers.broadcasts == pytest.approx(10, abs=1)


def test_a_broker_that_is_down_is_named_in_the_reason():
    clock, workers = Clock(), Workers({"training@host": ["training"]})
    step = watched(TaskResult("STARTED", {"hostname": "training@host"}), workers, clock)
    workers.broker_down = True
    assert advance_while_watching(step, clock, WATCH_AFTER_SECONDS + SILENT_FOR_SECONDS + CENSUS_EVERY_SECONDS)
    with pytest.raises(StepWorkerLost, match=r"\(the broker: OperationalError: Error 111 connecting to 127.0.0.1:47401"):
        step.get()


def test_a_waiting_step_s_state_is_read_at_the_census_pace_not_every_second():
    class CountedStateResult(TaskResult):
        reads = 0

        @property
        def state(self):
            CountedStateResult.reads += 1
            return "PENDING"

        @state.setter
        def state(self, value):
            pass

    clock, workers = Clock(), Workers({"training@host": ["training"]})
    step = watched(CountedStateResult(), workers, clock)
    assert not advance_while_watching(step, clock, WATCH_AFTER_SECONDS + 10 * CENSUS_EVERY_SECONDS)
    assert CountedStateResult.reads == pytest.approx(11, abs=1)  # not one per second (about 180)
