"""Command line: `mnist-pipeline run` materializes every asset and reports.

Runs are recorded in the Dagster instance at $DAGSTER_HOME, so they show up in
the UI (`scripts/dev`) afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from mnist_pipeline.model.presets import PRESETS


def _run_config(args: argparse.Namespace) -> dict:
    training = {
        key: value
        for key, value in {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "validation_fraction": args.validation_fraction,
            "seed": args.seed,
        }.items()
        if value is not None
    }
    model = {
        key: value
        for key, value in {
            "preset": args.preset,
            "optimizer": args.optimizer,
            "learning_rate": args.learning_rate,
            "seed": args.seed,
        }.items()
        if value is not None
    }
    ops: dict = {}
    if model:
        ops["compiled_model"] = {"config": model}
    if training:
        ops["trained_model"] = {"config": training}
    return {"ops": ops} if ops else {}


def full_pipeline():
    """The full job, resolved in the code location. Module-level, so dg.reconstructable can point at it."""
    from mnist_pipeline.definitions import defs
    from mnist_pipeline.jobs import full_pipeline_job

    return defs.resolve_job_def(full_pipeline_job.name)


def run(args: argparse.Namespace) -> int:
    import dagster as dg

    if not os.environ.get("DAGSTER_HOME"):
        print("DAGSTER_HOME is not set: set it to a directory to keep run history (scripts/ do this).", file=sys.stderr)
        return 2
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    with dg.DagsterInstance.get() as instance:
        # execute_job rather than execute_in_process, which keeps every step's output (the data sets,
        # the models) in memory until the run ends. The job's in-process executor still runs every
        # step in this process.
        with dg.execute_job(
            dg.reconstructable(full_pipeline), instance, run_config=_run_config(args), raise_on_error=False
        ) as result:
            return summarize(result, args)


def summarize(result, args: argparse.Namespace) -> int:
    """Print the outcome, the test accuracy and the artifact paths; 0 on success."""
    if not result.success:
        failure = next((event for event in result.all_events if event.is_step_failure), None)
        detail = failure.step_failure_data.error.message.strip() if failure else "see the run log above"
        print(f"\nRun {result.run_id} FAILED: {detail}", file=sys.stderr)
        return 1

    paths: dict = {}
    metrics: dict = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        metadata = materialization.metadata
        key = materialization.asset_key.to_user_string()
        if "path" in metadata:
            paths[key] = metadata["path"].value
        if key == "evaluation_metrics":
            metrics.update({name: metadata[name].value for name in ("test_accuracy", "test_loss")})
        if key == "trained_model":
            metrics["training_seconds"] = metadata["training_seconds"].value
    print(f"\nRun {result.run_id} succeeded.")
    print(f"Test accuracy: {metrics['test_accuracy']:.4f}  (test loss {metrics['test_loss']:.4f}, "
          f"training {metrics['training_seconds']:.1f} s)")
    print("Artifacts:")
    for key, path in paths.items():
        print(f"  {key:<20} {path}")
    if args.json:
        Path(args.json).write_text(json.dumps({"run_id": result.run_id, "metrics": metrics, "paths": paths}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mnist-pipeline", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="materialize all assets and print the test accuracy")
    run_parser.add_argument("--preset", choices=list(PRESETS), help="network and training recipe (default: tutorial)")
    run_parser.add_argument("--epochs", type=int)
    run_parser.add_argument("--batch-size", type=int)
    run_parser.add_argument("--learning-rate", type=float)
    run_parser.add_argument("--optimizer", choices=["sgd", "adam"])
    run_parser.add_argument("--validation-fraction", type=float)
    run_parser.add_argument("--seed", type=int, help="seed for both the initial weights and the training")
    run_parser.add_argument("--json", help="also write the metrics and artifact paths to this JSON file")
    run_parser.set_defaults(handler=run)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
