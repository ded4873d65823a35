"""What a finished run comes to: its metrics and artifacts and, when it failed, why, in one line.

Dagster wraps the error a step raised (in "Error occurred while executing op
...", or "Exceeded max_retries of 3" once retries ran out); the cause chain
leads back to the error our code raised, whose message names the file or
field. A blocking check that fails is the other kind of failure: the step
fails with Dagster's "blocking asset check failed", and the check's own
evaluation says what was expected and found.

Used by the command line (cli.py) for its last line and its --json file; the
display (cli_display.py) uses `root_cause` for its step lines.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import dagster as dg

from mnist_pipeline.defs.evaluation.checks import accuracy_gate
from mnist_pipeline.defs.interrupts import is_interruption
from mnist_pipeline.settings import MIN_TEST_ACCURACY

ACCURACY_GATE = next(iter(accuracy_gate.check_keys))
GATE_VARIABLE = MIN_TEST_ACCURACY
INTERRUPTED = "interrupted (SIGINT or SIGTERM)"
INTERRUPTED_EXIT_CODE = 130  # the shell's for a process stopped by SIGINT
# Pydantic ends each validation error with a link to its docs; the line before already says what is wrong.
_PYDANTIC_FOOTER = re.compile(r"^For further information visit https?://")


@dataclass
class RunFailure:
    step: str | None  # the step that failed, e.g. "raw_mnist" or "evaluation_metrics_accuracy_gate"
    check: str | None  # "asset:check" when a blocking check failed
    message: str  # one line: the root cause
    gate: dict[str, Any] | None = None  # test_accuracy, threshold, model_version: when the accuracy gate refused the model
    interrupted: bool = False  # SIGINT or SIGTERM stopped the run


@dataclass
class RunOutcome:
    run_id: str | None
    success: bool
    metrics: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    failure: RunFailure | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "success": self.success,
            "metrics": self.metrics,
            "paths": self.paths,
            "failure": asdict(self.failure) if self.failure else None,
        }


def _is_dagsters_own(error) -> bool:
    """Dagster's wrappers around the error a step raised (and its retry bookkeeping)."""
    return error.cls_name.startswith(("Dagster", "RetryRequested")) or error.message.startswith("dagster.")


def root_error(error):
    """The first error in the cause chain that is not Dagster's own wrapper: the one our code (or a library) raised."""
    while _is_dagsters_own(error) and (error.cause or error.context) is not None:
        error = error.cause or error.context
    return error


def one_line(error) -> str:
    """The error's message as one line, without the module path (and, for the project's errors, the class name).

    Multi-line messages are joined: an indented line continues the one before
    it (pydantic puts a field's name and its error on two lines), a list item
    follows on, anything else is a new clause.
    """
    if is_interruption(error):  # its message is its class's path, nothing more
        return INTERRUPTED
    message = error.message.strip()
    head, separator, rest = message.partition(": ")
    if separator and head.rsplit(".", 1)[-1] == error.cls_name and " " not in head:
        message = rest if head.startswith("mnist_pipeline.") else f"{error.cls_name}: {rest}"
    text = ""
    for raw in message.splitlines():
        line = raw.strip()
        if not line or _PYDANTIC_FOOTER.match(line):
            continue
        if not text:
            text = line
        elif text.endswith(":") or line.startswith(("-", "*")):
            text += " " + line
        elif raw[:1].isspace():
            text += ": " + line
        else:
            text += "; " + line
    return text


def root_cause(error) -> str:
    return one_line(root_error(error))


def _metadata_value(metadata, name: str):
    entry = metadata.get(name)
    return getattr(entry, "value", entry)


def _collect(result) -> tuple[dict[str, Any], dict[str, str]]:
    paths: dict[str, str] = {}
    metrics: dict[str, Any] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        metadata = materialization.metadata
        key = materialization.asset_key.to_user_string()
        if "path" in metadata:
            paths[key] = metadata["path"].value
        if key == "evaluation_metrics":
            metrics.update({name: metadata[name].value for name in ("test_accuracy", "test_loss", "model_version") if name in metadata})
        if key == "trained_model":
            metrics["training_seconds"] = metadata["training_seconds"].value
            metrics.setdefault("model_version", metadata["model_version"].value)
    return metrics, paths


def _failed_check(result) -> dg.AssetCheckEvaluation | None:
    return next((evaluation for evaluation in result.get_asset_check_evaluations() if not evaluation.passed), None)


def failure_of(result, metrics: dict[str, Any]) -> RunFailure:
    """Why `result` failed: the first failed step's root cause, or the blocking check that stopped the run."""
    failed_step = next(iter(result.get_step_failure_events()), None)
    error = failed_step.step_failure_data.error if failed_step is not None else None
    if error is None:
        # No step failed: the run itself did (e.g. a resource could not be initialized).
        for event in result.all_events:
            data = event.event_specific_data
            if (event.is_resource_init_failure or event.event_type == dg.DagsterEventType.RUN_FAILURE) and getattr(data, "error", None):
                error = data.error
                break
    step = failed_step.step_key if failed_step is not None else None
    cause = root_error(error) if error is not None else None
    check = _failed_check(result)
    if check is not None and (cause is None or _is_dagsters_own(cause)):
        return _check_failure(step, check, metrics)
    return RunFailure(
        step=step, check=None, message=one_line(cause) if cause else "see the run's event log (--verbose, or the UI)",
        interrupted=is_interruption(cause),
    )  # fmt: skip


def _check_failure(step: str | None, check: dg.AssetCheckEvaluation, metrics: dict[str, Any]) -> RunFailure:
    name = f"{check.asset_key.to_user_string()}:{check.check_name}"
    message = f"check {name} failed: {check.description or 'no description'}"
    gate = None
    if (check.asset_key, check.check_name) == (ACCURACY_GATE.asset_key, ACCURACY_GATE.name):
        gate = {
            "test_accuracy": _metadata_value(check.metadata, "test_accuracy"),
            "threshold": _metadata_value(check.metadata, "threshold"),
            "model_version": metrics.get("model_version"),
        }
    return RunFailure(step=step, check=name, message=message, gate=gate)


def outcome_of(result) -> RunOutcome:
    metrics, paths = _collect(result)
    failure = None if result.success else failure_of(result, metrics)
    return RunOutcome(run_id=result.run_id, success=result.success, metrics=metrics, paths=paths, failure=failure)
