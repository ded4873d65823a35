"""`mnist-pipeline sweep` and `mnist-pipeline leaderboard`: a grid of candidates trained as partitions, ranked.

`sweep` expands the grid (ml/model/candidates.py), adds the candidates as partitions
with their configs, runs the candidates job once per candidate that needs it
(defs/experiments/sweep.py decides which), then materializes the leaderboard and
prints it. The runs go through `dg.execute_job`, which needs no daemon: one at a
time in this process by default; with --parallel N, N worker processes each run one
candidate at a time. `leaderboard` prints the last leaderboard stored.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
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


def _run_in_worker(verbose: bool, key: str) -> tuple[str, bool, str]:
    """A worker process's run of one candidate (the instance opened from DAGSTER_HOME, as the parent's).

    With the command's step display, as in the parent: the workers' lines interleave, one per step.
    """
    import dagster as dg

    from mnist_pipeline.cli.display import logger_run_config
    from mnist_pipeline.cli.main import _display
    from mnist_pipeline.defs.experiments.sweep import run_candidate

    with dg.DagsterInstance.get() as instance, _display(argparse.Namespace(verbose=verbose), instance):
        return run_candidate(sweep_candidates, instance, key, logger_run_config())


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
    from mnist_pipeline.defs.resources import resources_for_env
    from mnist_pipeline.defs.experiments.sweep import add_candidates, plan, run_candidate

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
        outcomes: list[tuple[str, bool, str]] = []
        if workers == 1 or len(todo.to_run) <= 1:
            for key in todo.to_run:
                with _display(args, instance):
                    outcomes.append(run_candidate(sweep_candidates, instance, key, logger_run_config()))
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn: each worker a fresh interpreter (TensorFlow does not survive fork)
            with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                outcomes = list(pool.map(functools.partial(_run_in_worker, args.verbose), todo.to_run))
        for key, success, run_id in outcomes:
            print(f"  {key:<32} {'trained and evaluated' if success else 'FAILED'} (run {run_id})")
        with _display(args, instance), dg.execute_job(
            dg.reconstructable(leaderboard_job), instance, run_config=logger_run_config(), raise_on_error=False
        ) as result:
            board_ok, board_run = result.success, result.run_id
    failed = [key for key, success, _ in outcomes if not success]
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
