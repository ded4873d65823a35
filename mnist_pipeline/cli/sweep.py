"""`mnist-pipeline sweep` and `mnist-pipeline leaderboard`: a grid of candidates trained as partitions, ranked.

`sweep` expands the grid (ml/model/candidates.py), adds the candidates as partitions
with their configs, runs the candidates job once per candidate that needs it
(defs/experiments/sweep.py decides which), then materializes the leaderboard and
prints it. The runs go through `dg.execute_job`, which needs no daemon: one at a
time in this process by default; with --parallel N, N worker processes each run one
candidate at a time. `leaderboard` prints the last leaderboard stored.

SIGINT (Ctrl-C) or SIGTERM (`kill`, a container's stop) stops the sweep: the runs
training end as interrupted (each keeps its checkpoint), no other candidate starts,
no leaderboard is built, and the exit code is 130. Run the same command again to
finish: what was trained is up to date, and an interrupted training resumes.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

LEADERBOARD_ASSET = "leaderboard"


def add_parsers(commands: Any) -> None:
    sweep = commands.add_parser(
        "sweep", help="train and evaluate a grid of candidates (presets x seeds x overrides), then print the leaderboard"
    )
    sweep.add_argument("--preset", action="append", dest="presets", metavar="PRESET", help="a preset; repeat for several (required)")
    sweep.add_argument("--seeds", required=True, help="seeds: 3, a range 0-4, or a list 0,2,5")
    sweep.add_argument(
        "--set", action="append", dest="overrides", default=[], metavar="NAME=V1[,V2...]",
        help="override values to sweep: learning_rate, epochs, batch_size, or augmentation (best and wide: "
        "the strength of their rotations and shifts, 1 their own, 0 to 3); repeat for several",
    )
    sweep.add_argument("--epochs", help="the same as --set epochs=N")
    sweep.add_argument("--parallel", default="1", help="candidates trained at the same time, each in its own process (default 1)")
    sweep.add_argument("--json", action="store_true", help="print the leaderboard as JSON instead of a table")
    sweep.add_argument("--verbose", action="store_true", help="print Dagster's full event log instead of one line per step")
    sweep.set_defaults(handler=sweep_command)
    board = commands.add_parser("leaderboard", help="the last leaderboard: every evaluated candidate by validation accuracy")
    board.add_argument("--json", action="store_true", help="print it as JSON instead of a table")
    board.set_defaults(handler=leaderboard_command)


def candidates_of(args: argparse.Namespace):
    """The grid the flags describe; SweepSpecError naming the flag when they cannot describe one."""
    from mnist_pipeline.ml.model.candidates import SweepSpecError, expand_grid, parse_override, parse_seeds

    overrides: dict[str, list] = {}
    texts = list(args.overrides) + ([f"epochs={args.epochs}"] if args.epochs is not None else [])
    for text in texts:
        name, values = parse_override(text)
        if name in overrides:
            raise SweepSpecError(f"--set {name}: expected each override once, found it twice (give every value in one list)")
        overrides[name] = values
    return expand_grid(args.presets or [], parse_seeds(args.seeds), overrides)


def parallelism(text: str) -> int:
    from mnist_pipeline.ml.model.candidates import SweepSpecError

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise SweepSpecError(f"--parallel: expected a whole number of at least 1, found {text!r}")
    return value


def sweep_candidates():
    """The candidates job, resolved in the code location; module-level so dg.reconstructable can point at it."""
    from mnist_pipeline.cli.main import _definitions
    from mnist_pipeline.defs.experiments.definitions import candidates_job

    return _definitions().resolve_job_def(candidates_job.name)


def leaderboard_job():
    from mnist_pipeline.cli.main import _definitions
    from mnist_pipeline.defs.experiments.definitions import leaderboard_job as job

    return _definitions().resolve_job_def(job.name)


def _ignore_signals_between_runs() -> None:
    """A worker's initializer: an idle worker ignores SIGINT and SIGTERM (a Ctrl-C reaches the whole process group),
    so it lives to take the pool's shutdown; inside a run Dagster handles them, and the run ends as interrupted."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _run_in_worker(verbose: bool, key: str):
    """A worker process's run of one candidate (the instance opened from DAGSTER_HOME, as the parent's).

    With the command's step display, as in the parent: the workers' lines interleave, one per step.
    """
    import dagster as dg

    from mnist_pipeline.cli.display import logger_run_config
    from mnist_pipeline.cli.main import _display
    from mnist_pipeline.defs.experiments.sweep import run_candidate

    with dg.DagsterInstance.get() as instance, _display(argparse.Namespace(verbose=verbose), instance):
        return run_candidate(sweep_candidates, instance, key, logger_run_config())


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt here, as SIGINT does, so both stop a sweep the same way (inside a run,
    Dagster already treats them alike); the handler before is restored after."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    before = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def run_one_at_a_time(args: argparse.Namespace, instance, keys: list[str]):
    """Each candidate's run in this process, in order; (outcomes, interrupted). An interrupted run ends the loop."""
    from mnist_pipeline.cli.display import logger_run_config
    from mnist_pipeline.cli.main import _display
    from mnist_pipeline.defs.experiments.sweep import run_candidate

    outcomes = []
    try:
        for key in keys:
            with _display(args, instance):
                outcomes.append(run_candidate(sweep_candidates, instance, key, logger_run_config()))
            if outcomes[-1].interrupted:
                return outcomes, True
    except KeyboardInterrupt:  # between two runs, outside Dagster's own handling
        return outcomes, True
    return outcomes, False


def run_in_workers(args: argparse.Namespace, keys: list[str], workers: int):
    """Each candidate's run in one of `workers` processes; (outcomes in sweep order, interrupted).

    On an interrupted run, or SIGINT or SIGTERM here, no other candidate starts and the runs under way are
    interrupted too (SIGINT to each worker: Dagster ends its run and the worker lives on); their outcomes are kept.
    """
    import multiprocessing
    import os
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    outcomes, interrupted = {}, False
    # spawn: each worker a fresh interpreter (TensorFlow does not survive fork)
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_signals_between_runs
    ) as pool:
        waiting, running = list(keys), {}
        try:
            while waiting or running:
                # One candidate per free worker: a call queued in the pool ahead of its worker can no longer be cancelled.
                while waiting and len(running) < workers:
                    key = waiting.pop(0)
                    running[pool.submit(_run_in_worker, args.verbose, key)] = key
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    del running[future]
                    outcome = future.result()
                    outcomes[outcome.key] = outcome
                    interrupted = interrupted or outcome.interrupted
                if interrupted:
                    break
        except KeyboardInterrupt:  # a worker that dies otherwise breaks the pool: that error is raised, as before
            interrupted = True
        if interrupted:
            for worker in multiprocessing.active_children():
                os.kill(worker.pid, signal.SIGINT)
            for future, key in running.items():
                try:
                    outcomes.setdefault(key, future.result())
                except BrokenProcessPool:
                    pass
    return [outcomes[key] for key in keys if key in outcomes], interrupted


def _ensure_data(instance, args) -> bool:
    """scaled_mnist must exist before candidates train on it: materialize raw_mnist and scaled_mnist if it never was."""
    import dagster as dg

    from mnist_pipeline.cli.display import logger_run_config
    from mnist_pipeline.cli.main import _display, full_pipeline

    if instance.get_latest_materialization_event(dg.AssetKey("scaled_mnist")) is not None:
        return True
    print("No scaled_mnist yet: loading MNIST first.")
    with _display(args, instance), dg.execute_job(
        dg.reconstructable(full_pipeline), instance, run_config=logger_run_config(), raise_on_error=False,
        asset_selection=[dg.AssetKey("raw_mnist"), dg.AssetKey("scaled_mnist")],
    ) as result:
        if not result.success:
            print(f"Run {result.run_id} FAILED: could not load MNIST, so no candidate can train", file=sys.stderr)
        return result.success


def sweep_command(args: argparse.Namespace) -> int:
    from mnist_pipeline.ml.model.candidates import SweepSpecError

    try:
        candidates = candidates_of(args)
        workers = parallelism(args.parallel)
    except SweepSpecError as error:
        print(f"mnist-pipeline sweep: {error}", file=sys.stderr)
        return 2

    import dagster as dg

    from mnist_pipeline.cli.display import logger_run_config
    from mnist_pipeline.cli.main import _display, _instance
    from mnist_pipeline.cli.run_outcome import INTERRUPTED, INTERRUPTED_EXIT_CODE
    from mnist_pipeline.defs.resources import resources_for_env
    from mnist_pipeline.defs.experiments.sweep import add_candidates, plan

    started = time.perf_counter()
    with _instance() as instance:
        if not _ensure_data(instance, args):
            return 1
        added = add_candidates(instance, resources_for_env()["experiment_store"], candidates)
        todo = plan(instance, candidates)
        print(
            f"Sweep of {len(candidates)} candidate(s) ({len(added)} new): {len(todo.to_run)} to train"
            + (f", up to date: {', '.join(todo.up_to_date)}" if todo.up_to_date else "")
        )
        with sigterm_as_interrupt():
            if workers == 1 or len(todo.to_run) <= 1:
                outcomes, interrupted = run_one_at_a_time(args, instance, todo.to_run)
            else:
                outcomes, interrupted = run_in_workers(args, todo.to_run, workers)
        for outcome in outcomes:
            shown = "trained and evaluated" if outcome.success else "INTERRUPTED" if outcome.interrupted else "FAILED"
            print(f"  {outcome.key:<32} {shown} (run {outcome.run_id})")
        if interrupted:
            ran = {outcome.key for outcome in outcomes}
            not_started = [key for key in todo.to_run if key not in ran]
            print(
                f"mnist-pipeline sweep: {INTERRUPTED}: stopped"
                + (f" before {', '.join(not_started)} started" if not_started else "")
                + "; no leaderboard was built. What was trained is kept, and an interrupted training resumes from "
                "its last finished epoch: run the same command again to finish the sweep.",
                file=sys.stderr,
            )
            return INTERRUPTED_EXIT_CODE
        with _display(args, instance), dg.execute_job(
            dg.reconstructable(leaderboard_job), instance, run_config=logger_run_config(), raise_on_error=False
        ) as result:
            board_ok, board_run = result.success, result.run_id
    failed = [outcome.key for outcome in outcomes if not outcome.success]
    if not board_ok:
        print(f"Run {board_run} FAILED: the leaderboard was not built", file=sys.stderr)
        return 1
    print(f"\nSweep done in {time.perf_counter() - started:.1f} s.")
    code = leaderboard_command(args)
    code = max(code, champion_report(args))
    if failed:
        print(f"FAILED candidates (not on the leaderboard): {', '.join(failed)}", file=sys.stderr)
        return 1
    return code


def stored_leaderboard():
    """The last leaderboard materialized, read (and verified) through its IO manager."""
    import dagster as dg

    from mnist_pipeline.defs.resources import resources_for_env

    return resources_for_env()["parquet_io_manager"].read(dg.AssetKey(LEADERBOARD_ASSET))


def champion_report(args: argparse.Namespace) -> int:
    """The champion the leaderboard run chose; served at once when MNIST_SERVED_MODEL=champion."""
    import dagster as dg

    from mnist_pipeline.defs.io_managers import ArtifactMissingError
    from mnist_pipeline.defs.resources import resources_for_env
    from mnist_pipeline.registry.retention import CHAMPION_ASSET
    from mnist_pipeline.settings import ConfigurationError

    resources = resources_for_env()
    try:
        champion = resources["json_io_manager"].read(dg.AssetKey(CHAMPION_ASSET))
    except ArtifactMissingError as error:
        print(f"mnist-pipeline sweep: no champion ({error})", file=sys.stderr)
        return 1
    chosen = f"candidate {champion['members'][0]}" if champion["size"] == 1 else f"the mean of {', '.join(champion['members'])}"
    print(
        f"Champion {champion['model_version']}: {chosen}; validation accuracy {champion['validation_accuracy']:.4f}, "
        f"test accuracy {champion['test_accuracy']:.4f} (best candidate alone: {champion['best_candidate_test_accuracy']:.4f})"
    )
    try:
        served = resources["served_model"].asset()
    except ConfigurationError as error:
        print(f"mnist-pipeline sweep: {error}", file=sys.stderr)
        return 2
    if served != CHAMPION_ASSET:
        return 0
    from mnist_pipeline.cli.main import models_promote

    return models_promote(argparse.Namespace(version=champion["model_version"], reason="the sweep's champion (MNIST_SERVED_MODEL=champion)"))


def leaderboard_command(args: argparse.Namespace) -> int:
    from mnist_pipeline.defs.io_managers import ArtifactMissingError

    try:
        table = stored_leaderboard()
    except ArtifactMissingError as error:
        print(f"mnist-pipeline leaderboard: no leaderboard yet ({error}); run `mnist-pipeline sweep` first", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(table.to_dict(orient="records"), indent=2))
    else:
        shown = table.round({"validation_accuracy": 4, "test_accuracy": 4, "test_loss": 4, "training_seconds": 1})
        print(shown.to_string(index=False))
    return 0
