"""Runs whose process died are marked failed.

Dagster's run monitoring (enabled in scripts/dagster.yaml, run by the daemon
of `dagster dev`) fails a run stuck *starting* and cancels one stuck
*canceling*. A run that is *started* it can only check through the run
launcher, and Dagster's default run launcher has no such check
(`supports_check_run_worker_health` is False). A run launched from the UI or
the daemon is still failed when its process dies, by the code server that
started it, but only while that code server lives; a run started in the
command line's own process (`mnist-pipeline run` and `update`, which call
`execute_job` / `execute_in_process`) has no one to notice. Killed with
SIGKILL, either would stay STARTED forever.

`dead_runs_failed` closes that gap: a sensor, so the same daemon evaluates it,
that finds the process of each started run (the process that logged the run's
start) and, when no such process is alive on this machine, marks the run
failed with the reason. It assumes what the scripts set up: every run of the
instance runs on the machine whose daemon evaluates the sensor.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

# Process start times are whole clock ticks after a boot time given in whole seconds.
START_TIME_SLACK_SECONDS = 2.0


def _linux_process_start(pid: int) -> tuple[str, float] | None:
    """(state letter, start time in seconds since the epoch) of a process, from /proc; None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (command name) "; the name may hold spaces
    state, start_ticks = fields[0], int(fields[19])
    return state, int(boot.split()[1]) + start_ticks / os.sysconf("SC_CLK_TCK")


def process_alive(pid: int, started_by: float) -> bool:
    """Whether process `pid` runs on this machine, and is the one that existed at time `started_by`
    (a process id can be reused by a later process once the first one is gone)."""
    if Path("/proc/self/stat").exists():
        found = _linux_process_start(pid)
        if found is None:
            return False
        state, started = found
        # Z: killed but not yet reaped by its parent; X: being removed. Neither runs anything.
        return state not in ("Z", "X") and started <= started_by + START_TIME_SLACK_SECONDS
    try:  # elsewhere: whether some process has that id (a reused id passes as alive)
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_process(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """(process id, time) of the latest start event of the run: the process that executes it."""
    starts = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_START)
    if not starts or starts[-1].dagster_event is None or starts[-1].dagster_event.pid is None:
        return None
    return starts[-1].dagster_event.pid, starts[-1].timestamp


def fail_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark every started run whose process is gone as failed; returns their run ids."""
    failed = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        run = record.dagster_run
        process = run_process(instance, run.run_id)
        if process is None:
            continue  # started, but its start not logged yet
        pid, started_at = process
        if process_alive(pid, started_at):
            continue
        # Read again now that the process is known to be gone: an end it logged before exiting counts.
        run = instance.get_run_by_id(run.run_id)
        if run is None or run.status != dg.DagsterRunStatus.STARTED:
            continue
        instance.report_run_failed(
            run,
            message=(
                f"Run {run.run_id}: expected its process {pid} (which started it) to be running, found none: "
                "it was killed or crashed without recording an end. Marked failed; materialize its assets again "
                "(`mnist-pipeline update` runs what is missing or unsynced)."
            ),
        )
        failed.append(run.run_id)
    return failed


@dg.sensor(
    name="dead_runs_failed",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Marks a started run whose process is gone (killed, crashed) as failed, which Dagster's run "
        "monitoring cannot do with the default run launcher. Runs no job."
    ),
)
def dead_runs_failed(context: dg.SensorEvaluationContext):
    failed = fail_dead_runs(context.instance)
    if failed:
        return dg.SkipReason(f"Marked {len(failed)} run(s) whose process is gone as failed: {', '.join(failed)}")
    return dg.SkipReason("Every started run's process is alive.")
