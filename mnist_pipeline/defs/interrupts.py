"""What a signal does to a run: Dagster turns SIGINT and SIGTERM (mapped to SIGINT's handler) into a
DagsterExecutionInterruptedError, which fails the step running, or the run between steps. Its message is
its class's path, nothing more; the command line says "interrupted" and stops (cli/sweep.py, cli/main.py).
"""

from collections.abc import Iterable

import dagster as dg


def is_interruption(error) -> bool:
    """Whether a run's error (Dagster's SerializableErrorInfo) is a signal's interruption, or caused by one."""
    while error is not None:
        if error.cls_name == dg.DagsterExecutionInterruptedError.__name__:
            return True
        error = error.cause
    return False


def was_interrupted(events: Iterable[dg.DagsterEvent]) -> bool:
    """Whether a signal stopped the run whose events these are."""
    for event in events:
        data = event.step_failure_data if event.is_step_failure else event.job_failure_data if event.is_run_failure else None
        if data is not None and is_interruption(data.error):
            return True
    return False
