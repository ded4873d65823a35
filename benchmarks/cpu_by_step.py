"""Where a cold `mnist-pipeline run` spends its CPU time: start-up, each step's inputs, work and outputs, Dagster's events.

    .venv/bin/python benchmarks/cpu_by_step.py                  # 1 epoch, this checkout
    .venv/bin/python benchmarks/cpu_by_step.py --epochs 10 --tree /tmp/before

The benchmark's cold run (benchmarks/run.py: fresh DAGSTER_HOME and storage, MNIST from the
cache, its own process), with one more logging handler in the fresh instance's dagster.yaml
(`python_logs: dagster_handler_config`, Dagster's way to add a handler to every run's log).
The handler notes the process's CPU time (all threads) at every event of the run, once the
event is written to the event log; the CPU time between two events (the second one's writing
included) is charged to what happened between them:

  loading X         ending with 'Loaded input "X"': the IO manager's load
  storing outputs   ending with 'Materialized value': the IO manager's handle_output
  computing S       the rest of step S's own work (between its start and its outputs)
  training          inside fit_resumably (benchmarks/timed_run.py marks its start and end)
  Dagster           everything else between events: each event's own handling and storage,
                    launching and finishing steps
  start-up          the interpreter, importing Dagster, then creating the instance, loading the
                    definitions and creating the run (up to the run's first event)
  exit              after the CLI returns, until the process has exited

CPU time rather than wall time: it is what a busy machine distorts least. One run; run it
a few times on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
MARKS: list[tuple[str, float]] = []  # (what happened, CPU seconds of the process when it was logged)

HANDLER_SETTINGS = """
python_logs:
  dagster_handler_config:
    handlers:
      cpu_marks:
        class: cpu_by_step.CpuMarks
        level: DEBUG
"""


class CpuMarks(logging.Handler):
    """Notes the process's CPU time at every record of the run's log (Dagster's events and the steps' messages)."""

    def emit(self, record: logging.LogRecord) -> None:
        MARKS.append((record.getMessage(), time.process_time()))


def child(marks_path: Path, tree: Path | None, cli_args: list[str]) -> int:
    """In the measured process: `mnist-pipeline ARGS` with the CPU time marked at each event."""
    import cpu_by_step  # the module Dagster's settings name (this file runs as __main__)

    marks = cpu_by_step.MARKS
    marks.append(("python started", time.process_time()))
    if tree:
        sys.path.insert(0, str(tree))
    import dagster  # noqa: F401

    marks.append(("imported dagster", time.process_time()))
    from timed_run import TimeTraining

    sys.meta_path.insert(0, TimeTraining({"training_cpu_s": 0.0, "training_wall_s": 0.0}, marks))
    from mnist_pipeline.cli import main as cli

    code = cli.main(cli_args)
    marks.append(("the command returned", time.process_time()))
    marks_path.write_text(json.dumps(marks))
    return code


def event_type(message: str) -> str | None:
    """The Dagster event type a run-log line reports ("job - run id - pid - [step - ]TYPE - text"), or None for a step's own message."""
    import dagster as dg

    types = {event.value for event in dg.DagsterEventType}
    return next((part for part in message.split(" - ")[:5] if part in types), None)


def charge(marks: list[tuple[str, float]], total_cpu: float) -> dict[str, float]:
    """CPU seconds by what they were spent on (see the module's docstring)."""
    from timed_run import TRAINING_ENDS, TRAINING_STARTS

    spent: dict[str, float] = defaultdict(float)
    step = None
    run_started = training = False
    previous = 0.0
    for message, cpu in marks:
        seconds, previous = cpu - previous, cpu
        kind = event_type(message)
        if message in ("python started", "imported dagster"):
            spent["start-up: the interpreter, importing Dagster"] += seconds
        elif not run_started:
            run_started = True
            spent["start-up: the instance, the definitions, creating the run"] += seconds
        elif training:  # the epochs' own messages included
            spent["training"] += seconds
            training = message != TRAINING_ENDS
        elif kind == "LOADED_INPUT":
            spent["loading " + re.search(r'Loaded input "(.+?)"', message)[1]] += seconds
        elif kind == "ASSET_MATERIALIZATION":
            spent["storing outputs"] += seconds
        elif step and (kind in (None, "STEP_OUTPUT", "ASSET_CHECK_EVALUATION") or message == TRAINING_STARTS):
            spent[f"computing {step}"] += seconds
            training = message == TRAINING_STARTS
        else:
            spent["Dagster: events, launching and finishing steps"] += seconds
        if kind == "STEP_START":
            step = re.search(r'Started execution of step "(.+?)"', message)[1]
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            step = None
    spent["exit"] += total_cpu - previous
    return dict(spent)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("--epochs", type=int, default=1, help="epochs of the run (default: 1)")
    parser.add_argument("--tree", type=Path, help="a checkout of the project to run (default: this one)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--marks", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("cli_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.marks, args.tree, args.cli_args)
    if args.epochs < 1:
        parser.error(f"--epochs expects at least 1; found {args.epochs}")

    sys.path.insert(0, str(BENCHMARKS))
    from outside_training import cache_dir
    from run import pipeline_command, run_measured

    with tempfile.TemporaryDirectory(prefix="mnist-cpu-by-step-") as work:
        _, env, summary, _ = pipeline_command(Path(work), cache_dir(), "run", [])
        with open(Path(env["DAGSTER_HOME"]) / "dagster.yaml", "a") as settings:
            settings.write(HANDLER_SETTINGS)
        marks_path = Path(work) / "marks.json"
        command = [sys.executable, __file__, "--child", f"--marks={marks_path}",
                   *([f"--tree={args.tree.resolve()}"] if args.tree else []),
                   "run", "--epochs", str(args.epochs), "--json", str(summary)]
        measured = run_measured(command, env, Path(work) / "logs")
        spent = charge(json.loads(marks_path.read_text()), measured.cpu_s)
    outside = measured.cpu_s - spent.get("training", 0.0)
    print(f"CPU seconds of a cold `mnist-pipeline run --epochs {args.epochs}`: {measured.cpu_s:.2f} in all, "
          f"{outside:.2f} outside training ({measured.wall_s:.1f} s wall)")
    print("| spent on | CPU seconds |\n|---|---|")
    for what, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        print(f"| {what} | {seconds:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
