"""What `mnist-pipeline run` and `update` show while a run goes: one line per step, not the event log.

The command line runs its jobs in its own process (the in-process executor),
so its display is process-local. Dagster hands every event and message of a
run to the run's loggers; in the command line's jobs only, `console_logger`
takes the place of Dagster's console logger, under the same key and with the
same config, so a run's config stays valid in the UI. It passes each record to
the active StepDisplay, which prints one line per finished step (the time,
the outcome, how long it took, its checks or the root cause of its failure)
and the steps' own messages (one line per epoch). On a terminal the lines are
coloured, the running step has a spinner, and training has a progress bar
with the running loss and accuracy (rich; model/progress.py feeds it).
Anything else (CI, a pipe) gets the same lines, plain. With --verbose there
is no display: Dagster's console logger prints the full event log, as the UI
shows it.

On the cluster (MNIST_PIPELINE_ENV=cluster) the steps run in Celery workers,
whose events never reach this process's loggers: the workers write them to
the instance. There the display follows the run's events in the instance
(`follow_steps_in`) and shows the same lines; the training bar, which needs
the training loop in this process, is left out (the epoch lines remain).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import defaultdict
from contextlib import ExitStack
from typing import Any, Mapping, TextIO

import dagster as dg

from mnist_pipeline.cli.run_outcome import root_cause

CONSOLE_LOGGER = "console"  # Dagster's key for its console logger; the UI's jobs know it too
STEP_COLUMN = 36
EVENT = dg.DagsterEventType


def logger_run_config() -> dict[str, Any]:
    """The run config that turns the console logger on, at DEBUG (step events are DEBUG), as Dagster's default is."""
    return {"loggers": {CONSOLE_LOGGER: {"config": {"log_level": "DEBUG"}}}}


def is_terminal(stream: TextIO) -> bool:
    return stream.isatty() and os.environ.get("TERM", "") not in ("dumb", "unknown")


class _PlainOutput:
    """Lines on a stream that is not a terminal: no colour, no bar, no escape codes."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def line(self, text: str, style: str | None = None) -> None:
        print(text, file=self._stream, flush=True)

    def step_running(self, step: str) -> None:
        pass

    def step_done(self, step: str) -> None:
        pass

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class _TerminalOutput:
    """The same lines, coloured, above a live area: the running step, and while training a bar (rich).

    Drawn only when something happens (a step starts or ends, an epoch starts
    or ends, a batch update at most every 0.25 s), on the thread that reports
    it, never by a refresh thread of its own: a thread that takes Python's lock
    to redraw while training runs slows training (measured: benchmarks/progress_bar.py).
    The two rows are shown or hidden rather than added and removed, and the
    area is redrawn before each line printed above it, so no stale row is left.
    """

    def __init__(self, stream: TextIO):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
        from rich.text import Text

        class WhileTraining:
            """A column for the training row only (the one with a total): the step row is not redrawn, so a bar or
            a clock there would freeze."""

            def render(self, task):
                return super().render(task) if task.total is not None else Text("")

        class Bar(WhileTraining, BarColumn):
            pass

        class Elapsed(WhileTraining, TimeElapsedColumn):
            pass

        self._console = Console(file=stream, highlight=False)
        self._progress = Progress(
            TextColumn("{task.description}"),
            Bar(bar_width=24),
            TextColumn("{task.fields[detail]}"),
            Elapsed(),
            console=self._console,
            transient=True,
            auto_refresh=False,
            # Leave sys.stdout and sys.stderr to Dagster, which keeps what a step prints in the step's log.
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._step = self._progress.add_task("", total=None, detail="", visible=False)
        self._training = self._progress.add_task("", total=None, detail="", visible=False)
        self._steps_per_epoch = 0

    def line(self, text: str, style: str | None = None) -> None:
        from rich.text import Text

        self._progress.refresh()
        self._progress.console.print(Text(text, style=style or ""))

    def step_running(self, step: str) -> None:
        self._progress.update(self._step, description=f"{step} running since {_clock()}", visible=True)
        self._progress.refresh()

    def step_done(self, step: str) -> None:
        self._progress.update(self._step, visible=False)
        self._progress.update(self._training, visible=False)

    def start(self) -> None:
        self._progress.start()

    def stop(self) -> None:
        self._progress.stop()

    # model/progress.py's TrainingWatcher, called on the training thread.
    def epoch_started(self, epoch: int, epochs: int, steps_per_epoch: int) -> None:
        self._steps_per_epoch = steps_per_epoch
        self._progress.reset(
            self._training, description=f"  epoch {epoch + 1}/{epochs}", total=steps_per_epoch, detail="", visible=True
        )
        self._progress.refresh()

    def batch_finished(self, steps_done: int, logs: Mapping[str, float]) -> None:
        self._progress.update(self._training, completed=steps_done, detail=_metrics(logs))
        self._progress.refresh()

    def epoch_finished(self, epoch: int, logs: Mapping[str, float]) -> None:
        self._progress.update(self._training, completed=self._steps_per_epoch, detail=_metrics(logs))
        self._progress.refresh()


def _metrics(logs: Mapping[str, float]) -> str:
    return "  ".join(f"{name} {value:.4f}" for name, value in sorted(logs.items()) if not name.startswith("val_"))


class StepDisplay:
    """Turns a run's log records into one line per step (and the steps' own messages) on an output."""

    def __init__(self, stream: TextIO | None = None, terminal: bool | None = None):
        self._stack = ExitStack()
        stream = self._own_copy(stream or sys.stdout)
        terminal = is_terminal(stream) if terminal is None else terminal
        self._out = _TerminalOutput(stream) if terminal else _PlainOutput(stream)
        self.terminal = terminal
        self._started: dict[str, float] = {}
        self._done: set[str] = set()
        self._checks: dict[str, list[dg.AssetCheckEvaluation]] = defaultdict(list)
        self._failed_steps: list[str] = []
        self._failed_checks: list[str] = []
        self._lock = threading.Lock()  # records come from Dagster's loggers and, on the cluster, a follower thread
        self._steps_source: Any = None  # the instance to follow a run's step events in (follow_steps_in)

    def _own_copy(self, stream: TextIO) -> TextIO:
        """A stream on a duplicate of `stream`'s file descriptor, closed with the display.

        While a step runs, Dagster points file descriptors 1 and 2 at the step's
        log file (mirrored to the terminal by a `tail` process), so the step's
        output is kept for the UI. The display writes past that, straight to the
        terminal or pipe the command was given: its lines stay in order, a
        terminal stays a terminal, and none of it lands in the steps' logs.
        """
        try:
            descriptor = os.dup(stream.fileno())
        except (AttributeError, OSError, ValueError):  # no descriptor (e.g. io.StringIO): write to it directly
            return stream
        stream.flush()
        copy = os.fdopen(descriptor, "w", buffering=1, encoding=getattr(stream, "encoding", None) or "utf-8")
        self._stack.callback(copy.close)
        return copy

    def __enter__(self) -> StepDisplay:
        global _active
        self._stack.callback(self._out.stop)
        self._out.start()
        if self.terminal:
            from mnist_pipeline.ml.model.progress import watching_training

            self._stack.enter_context(watching_training(self._out))
        previous, _active = _active, self

        def restore() -> None:
            global _active
            _active = previous

        self._stack.callback(restore)
        return self

    def __exit__(self, *exc_info) -> None:
        self._stack.close()

    def line(self, text: str, style: str | None = None) -> None:
        self._out.line(text, style)

    def follow_steps_in(self, instance: dg.DagsterInstance) -> None:
        """Show each run's step events as `instance` records them, for runs whose steps run in other processes."""
        self._steps_source = instance

    # Records, as Dagster passes them to a run's loggers.
    def record(self, level: int, meta: Mapping[str, Any]) -> None:
        with self._lock:
            self._record(level, meta)
        event = meta.get("dagster_event")
        if event is not None and event.event_type == EVENT.RUN_START and self._steps_source is not None:
            follower = _StepEventsFollower(self, self._steps_source, str(meta.get("run_id")))
            follower.start()
            self._stack.callback(follower.stop)

    def _record(self, level: int, meta: Mapping[str, Any]) -> None:
        event = meta.get("dagster_event")
        step = meta.get("step_key")
        if event is None:
            self._message(level, step, str(meta.get("orig_message", "")))
            return
        kind = event.event_type
        if kind == EVENT.RUN_START:  # `update` may launch up to three runs through one display
            self._started.clear()
            self._done.clear()
            self._checks.clear()
            self._failed_steps.clear()
            self._failed_checks.clear()
            self.line(f"Run {meta.get('run_id')} of {meta.get('job_name')}", "bold")
        elif kind in (EVENT.STEP_START, EVENT.STEP_RESTARTED) and step:
            self._started[step] = time.monotonic()
            self._out.step_running(step)
        elif kind == EVENT.ASSET_CHECK_EVALUATION and step:
            self._checks[step].append(event.event_specific_data)
        elif kind in (EVENT.STEP_SUCCESS, EVENT.STEP_FAILURE) and step in self._done:
            return  # already shown (a run's event can reach both this process's loggers and the follower)
        elif kind == EVENT.STEP_SUCCESS and step:
            self._finish(step, "succeeded", self._checks_note(step))
        elif kind == EVENT.STEP_FAILURE and step:
            self._failed_steps.append(step)
            self._finish(step, "failed", self._failure_note(step, event))
        elif kind == EVENT.STEP_UP_FOR_RETRY and step:
            data = event.event_specific_data
            wait = f" in {data.seconds_to_wait:g} s" if getattr(data, "seconds_to_wait", None) else ""
            self._step_line(step, "retrying", self._elapsed(step), f"will retry{wait}: {root_cause(data.error)}")
            self._out.step_done(step)
        elif kind == EVENT.STEP_SKIPPED and step:
            self._skip(step)

    def _message(self, level: int, step: str | None, text: str) -> None:
        if step and step not in self._started:
            # Dagster says, at ERROR and without an event, that it will not execute a step whose upstream failed.
            if level >= logging.ERROR:
                self._skip(step)
            return
        if step and step not in self._done and level >= logging.INFO:
            self.line(f"{_clock()}    {step}: {text}", "dim")
        elif not step and level >= logging.WARNING:
            self.line(f"{_clock()}  {text}", "yellow")

    def _elapsed(self, step: str) -> float | None:
        started = self._started.get(step)
        return time.monotonic() - started if started is not None else None

    def _finish(self, step: str, outcome: str, note: str) -> None:
        self._done.add(step)
        self._out.step_done(step)
        self._step_line(step, outcome, self._elapsed(step), note)

    def _skip(self, step: str) -> None:
        if step in self._done:
            return
        self._done.add(step)
        if self._failed_checks:
            reason = f"blocked by the failed check {', '.join(self._failed_checks)}"
        elif self._failed_steps:
            reason = f"upstream step {', '.join(self._failed_steps)} failed"
        else:
            reason = "an upstream step produced no output"
        self._step_line(step, "skipped", None, reason)

    def _checks_note(self, step: str) -> str:
        checks = self._checks.get(step, [])
        failed = [check for check in checks if not check.passed]
        if failed:
            return f"{len(failed)} of {len(checks)} checks failed: " + "; ".join(
                f"{check.check_name}: {check.description}" for check in failed
            )
        return f"{len(checks)} check{'s' if len(checks) != 1 else ''} passed" if checks else ""

    def _failure_note(self, step: str, event) -> str:
        failed = [check for check in self._checks.get(step, []) if not check.passed]
        if failed:
            self._failed_checks += [f"{check.asset_key.to_user_string()}:{check.check_name}" for check in failed]
            return "; ".join(f"{check.check_name}: {check.description}" for check in failed)
        error = event.step_failure_data.error
        return root_cause(error) if error is not None else ""

    def _step_line(self, step: str, outcome: str, seconds: float | None, note: str) -> None:
        took = f"{seconds:7.1f} s" if seconds is not None else " " * 9
        style = {"succeeded": "green", "failed": "bold red", "retrying": "yellow", "skipped": "yellow"}[outcome]
        self.line(f"{_clock()}  {step:<{STEP_COLUMN}} {outcome:<9} {took}  {note}".rstrip(), style)


def _clock() -> str:
    return time.strftime("%H:%M:%S")


class _StepEventsFollower(threading.Thread):
    """Reads a run's step events from the instance as the workers write them, and hands each to the display."""

    POLL_SECONDS = 0.5

    def __init__(self, display: StepDisplay, instance: dg.DagsterInstance, run_id: str):
        super().__init__(name=f"step events of run {run_id}", daemon=True)
        self._display, self._instance, self._run_id = display, instance, run_id
        self._cursor: str | None = None
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(self.POLL_SECONDS):
            self._show_new_events()

    def stop(self) -> None:
        """Stop following, once every event recorded so far (the run's last ones included) is shown."""
        self._stopping.set()
        self.join()
        self._show_new_events()

    def _show_new_events(self) -> None:
        connection = self._instance.get_records_for_run(self._run_id, cursor=self._cursor)
        for record in connection.records:
            entry = record.event_log_entry
            if entry.step_key is None:  # the run's own events reach this process's loggers directly
                continue
            meta = {"dagster_event": entry.dagster_event, "step_key": entry.step_key, "orig_message": entry.user_message}
            with self._display._lock:
                self._display._record(entry.level, meta)
        self._cursor = connection.cursor


_active: StepDisplay | None = None


class _ToDisplay(logging.Handler):
    def __init__(self, display: StepDisplay):
        super().__init__(level=logging.DEBUG)
        self._display = display

    def emit(self, record: logging.LogRecord) -> None:
        try:
            meta = getattr(record, "dagster_meta", None)
            if meta is not None:
                self._display.record(record.levelno, meta)
        except Exception:  # a display fault must not fail the run
            self.handleError(record)


def _console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    if _active is None:  # --verbose, or a run outside the command line's display: Dagster's event log
        return dg.colored_console_logger.logger_fn(init_context)
    logger = logging.Logger("mnist_pipeline.cli.main", level=logging.DEBUG)
    logger.addHandler(_ToDisplay(_active))
    return logger


console_logger = dg.LoggerDefinition(
    _console_logger,
    config_schema=dg.colored_console_logger.config_schema,
    description="The command line's console: one line per step and a training progress bar; "
    "Dagster's event log when no display is active (--verbose).",
)


def with_display(defs: dg.Definitions) -> dg.Definitions:
    """`defs` with the command line's console logger in place of Dagster's, for the jobs the command line runs."""
    return dg.Definitions.merge(defs, dg.Definitions(loggers={CONSOLE_LOGGER: console_logger}))
