"""Command line for the MNIST pipeline.

  mnist-pipeline run                    materialize every asset and print the test accuracy
  mnist-pipeline update                 materialize only what changed (data, code or hyperparameters)
  mnist-pipeline predictions-and-plots  redraw the predictions table and plots of the stored model
  mnist-pipeline predict IMAGE...       classify your own pictures of digits with the served model
  mnist-pipeline models                 list, show, load, compare, export, promote (roll back), prune trained model versions

Runs are recorded in the Dagster instance at $DAGSTER_HOME, so they show up in
the UI (`scripts/dev`) afterwards. While a run goes, the command prints one
line per step and, on a terminal, a training progress bar (cli_display.py);
--verbose prints Dagster's full event log instead. A failed run ends with its
root cause (run_outcome.py) on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import NoReturn

from mnist_pipeline.cli.process_exit import exit_without_teardown

HYPERPARAMETER_FLAGS = (
    "preset", "epochs", "batch_size", "learning_rate", "optimizer", "augmentation", "validation_fraction", "seed",
)
# The variables that say where a run's history and files are: a command printed for pasting carries those set.
LOCATION_VARIABLES = ("DAGSTER_HOME", "MNIST_PIPELINE_HOME", "MNIST_STORAGE_URL", "MNIST_STORAGE_DIR", "MNIST_CACHE_DIR", "MNIST_DATA_DIR", "MNIST_PIPELINE_ENV")


def _hyperparameters(args: argparse.Namespace) -> dict | None:
    """The `hyperparameters` asset's run config from the flags given; None when no flag is."""
    from mnist_pipeline.defs.model.config import hyperparameters_config
    from mnist_pipeline.ml.model.presets import AUGMENTING_PRESETS, DEFAULT_PRESET

    given = {name: getattr(args, name) for name in HYPERPARAMETER_FLAGS if getattr(args, name) is not None}
    preset = given.get("preset", DEFAULT_PRESET)
    if "augmentation" in given and preset not in AUGMENTING_PRESETS:
        # Refused here: Dagster's own refusal of the unknown config entry ends in a traceback.
        raise SystemExit(
            f"--augmentation: expected --preset {' or '.join(AUGMENTING_PRESETS)} (whose networks augment their "
            f"training images), found preset {preset!r}"
        )
    return hyperparameters_config(**given) if given else None


def _instance():
    import dagster as dg

    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise SystemExit("DAGSTER_HOME is not set: set it to a directory that keeps run history (scripts/ do this).")
    Path(home).mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.get()


def _display(args: argparse.Namespace, instance):
    """One line per step (and a bar on a terminal), or, with --verbose, no display: Dagster's event log.

    When the steps run in other processes (the cluster's workers), the display follows them in the instance.
    """
    from mnist_pipeline.cli.display import StepDisplay

    if args.verbose:
        _keep_the_event_logs_last_lines()
        return nullcontext()
    display = StepDisplay()
    if _steps_run_elsewhere():
        display.follow_steps_in(instance)
    return display


# How long Dagster lets its `tail` process copy the run's captured output before stopping it
# (dagster/_core/execution/compute_logs.py reads it when a capture ends; 0 by default).
COMPUTE_LOG_TAIL_WAIT = "DAGSTER_COMPUTE_LOG_TAIL_WAIT_AFTER_FINISH"


def _keep_the_event_logs_last_lines() -> None:
    """While a run executes here, Dagster points stderr at its captured log, and a `tail -F` copies
    that to the real stderr; stopped at once, it drops what it had not copied yet (tail checks the
    file about once a second), often the last step's STEP_SUCCESS. --verbose promises the whole
    event log, so it gives tail that second. A value the user set is kept."""
    os.environ.setdefault(COMPUTE_LOG_TAIL_WAIT, "1.5")


def _steps_run_elsewhere() -> bool:
    """Whether runs started now send their steps to the cluster's workers (MNIST_PIPELINE_ENV=cluster)."""
    from mnist_pipeline.defs.executor import runs_on_celery_workers
    from mnist_pipeline.settings import ConfigurationError

    try:
        return runs_on_celery_workers()
    except ConfigurationError:  # the run fails at its start with this message; nothing to follow
        return False


def _pasteable(*arguments: str) -> str:
    """This program with `arguments`, prefixed by the location variables set now, so it works from any shell."""
    if sys.argv[0].endswith("__main__.py"):
        program = [sys.executable, "-m", "mnist_pipeline"]
    else:
        program = [os.path.abspath(sys.argv[0])]
    settings = [f"{name}={shlex.quote(os.environ[name])}" for name in LOCATION_VARIABLES if os.environ.get(name)]
    return " ".join([*settings, *map(shlex.quote, [*program, *arguments])])


def _failure_line(outcome) -> str:
    """The last line of a failed run: the root cause, or for a model below the accuracy gate, what to do next."""
    from mnist_pipeline.cli.run_outcome import GATE_VARIABLE

    failure = outcome.failure
    gate = failure.gate
    if gate is not None:
        version = gate.get("model_version") or "?"
        return (
            f"Run {outcome.run_id} FAILED the accuracy gate: model {version} has test accuracy "
            f"{gate['test_accuracy']:.4f}, below the threshold {gate['threshold']:.4f} ({GATE_VARIABLE}); it is "
            "registered but not served, and its predictions table and plots were skipped. "
            f"To draw them anyway: {_pasteable('predictions-and-plots')}"
        )
    where = f" in step {failure.step}" if failure.step else ""
    return f"Run {outcome.run_id} FAILED{where}: {failure.message}"


def _report(outcome, json_path: str | None, seconds: float) -> int:
    """The summary (stdout), the --json file, and for a failed run its root cause as the last line (stderr)."""
    metrics = outcome.metrics
    verdict = "succeeded" if outcome.success else "FAILED"
    print(f"\nRun {outcome.run_id} {verdict} in {seconds:.1f} s.")
    if "test_accuracy" in metrics:
        print(
            f"Test accuracy: {metrics['test_accuracy']:.4f}  (test loss {metrics['test_loss']:.4f}, "
            f"model version {metrics['model_version']})"
        )
    if "training_seconds" in metrics:
        print(f"Training: {metrics['training_seconds']:.1f} s")
    if outcome.paths:
        print("Artifacts:" if outcome.success else "Artifacts written before the failure:")
        for key, path in outcome.paths.items():
            print(f"  {key:<20} {path}")
    if json_path:
        Path(json_path).write_text(json.dumps(outcome.as_json(), indent=2))
    if outcome.success:
        return 0
    from mnist_pipeline.cli.run_outcome import INTERRUPTED_EXIT_CODE

    sys.stdout.flush()
    print(_failure_line(outcome), file=sys.stderr)
    return INTERRUPTED_EXIT_CODE if outcome.failure.interrupted else 1


@functools.cache
def _definitions():
    """The code location's definitions with the command line's console logger (cli_display.py)."""
    from mnist_pipeline.cli.display import with_display
    from mnist_pipeline.definitions import defs

    return with_display(defs())


def full_pipeline():
    """The full job, resolved in the code location. Module-level, so dg.reconstructable can point at it."""
    from mnist_pipeline.defs.jobs import full_pipeline_job

    return _definitions().resolve_job_def(full_pipeline_job.name)


def predictions_and_plots():
    """The job that redraws the predictions table and plots from the stored model; module-level like full_pipeline."""
    from mnist_pipeline.defs.jobs import predictions_and_plots_job

    return _definitions().resolve_job_def(predictions_and_plots_job.name)


def promote_model():
    """The job that runs production_model alone with a version as config; module-level like full_pipeline."""
    from mnist_pipeline.defs.jobs import promote_model_job

    return _definitions().resolve_job_def(promote_model_job.name)


def _execute(job, args: argparse.Namespace, run_config: dict) -> int:
    import dagster as dg

    from mnist_pipeline.cli.display import logger_run_config
    from mnist_pipeline.cli.run_outcome import outcome_of

    started = time.perf_counter()
    with _instance() as instance, _display(args, instance):
        # execute_job rather than execute_in_process, which keeps every step's output (the data sets,
        # the models) in memory until the run ends. Locally every step runs in this process
        # (defs/executor.py); on the cluster, in the workers.
        with dg.execute_job(
            dg.reconstructable(job), instance, run_config={**run_config, **logger_run_config()}, raise_on_error=False
        ) as result:
            outcome = outcome_of(result)
    return _report(outcome, args.json, time.perf_counter() - started)


def run(args: argparse.Namespace) -> int:
    hyperparameters = _hyperparameters(args)
    return _execute(full_pipeline, args, {"ops": {"hyperparameters": {"config": hyperparameters}}} if hyperparameters else {})


def predictions_and_plots_command(args: argparse.Namespace) -> int:
    """Run mnist_predictions_and_plots: the table and plots of the stored model, even one the accuracy gate refused."""
    return _execute(predictions_and_plots, args, {})


def update(args: argparse.Namespace) -> int:
    from mnist_pipeline.cli.display import logger_run_config
    from mnist_pipeline.defs.jobs import full_pipeline_job, observe_sources_job
    from mnist_pipeline.cli.run_outcome import RunOutcome, outcome_of
    from mnist_pipeline.defs.automation.what_changed import keys_materialized, materialize_what_changed

    started = time.perf_counter()
    with _instance() as instance, _display(args, instance) as display:
        outcome = materialize_what_changed(
            _definitions(),
            instance,
            job_name=full_pipeline_job.name,
            observe_job_name=observe_sources_job.name,
            hyperparameters=_hyperparameters(args),
            log=display.line if display else print,
            run_config=logger_run_config(),
        )
    seconds = time.perf_counter() - started
    if outcome.run is None:
        if args.json:
            Path(args.json).write_text(json.dumps(RunOutcome(run_id=None, success=True).as_json(), indent=2))
    else:
        code = _report(outcome_of(outcome.run), args.json, seconds)
        if code:
            return code
    materialized = keys_materialized(outcome.run) if outcome.run else []
    print(f"Materialized {len(materialized)} asset(s) in {seconds:.1f} s: {', '.join(materialized) or 'none'}")
    return 0


def _registry():
    from mnist_pipeline.defs.resources import resources_for_env

    return resources_for_env()["model_registry"].registry()


def _evaluation(registry, version: str) -> dict | None:
    """The version's evaluation as evaluation_metrics recorded it (registry/evaluations.py), verified."""
    from mnist_pipeline.defs.resources import resources_for_env
    from mnist_pipeline.registry.promotion import version_evaluation

    return version_evaluation(registry, resources_for_env()["evaluation_records"].records(), version)


def _reports_registry_errors(command):
    """A refused or failed `models` command ends with the registry's one-line message on stderr and exit code 1."""

    @functools.wraps(command)
    def reporting(args: argparse.Namespace) -> int:
        from mnist_pipeline.registry.store import RegistryError

        try:
            return command(args)
        except RegistryError as error:
            print(str(error), file=sys.stderr)
            return 1

    return reporting


@_reports_registry_errors
def models_list(args: argparse.Namespace) -> int:
    from mnist_pipeline.registry.store import RegistryError

    registry = _registry()
    entries = registry.list()
    if not entries:
        print("No trained models yet: run `mnist-pipeline run` first.")
        return 0
    print(f"{'version':<18} {'registered (UTC)':<20} {'test acc':>8}  {'epochs':>6}  {'optimizer':<9} run id")
    for entry in entries:
        registered = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(entry["registered_at"]))
        if "problem" in entry:
            print(f"{entry['version']:<18} {registered:<20} unreadable: {entry['problem']}")
            continue
        try:
            evaluation = _evaluation(registry, entry["version"]) or {}
        except RegistryError as error:
            print(f"{entry['version']:<18} {registered:<20} unreadable: {error}")
            continue
        accuracy = f"{evaluation['test_accuracy']:.4f}" if "test_accuracy" in evaluation else "-"
        params = entry["hyperparameters"]
        print(f"{entry['version']:<18} {registered:<20} {accuracy:>8}  {params.get('epochs', '-'):>6}  {params.get('optimizer', '-'):<9} {entry['run_id']}")
    return 0


@_reports_registry_errors
def models_show(args: argparse.Namespace) -> int:
    """Print the manifest, then check the version's files: a damaged one is the last line, and exit code 1."""
    registry = _registry()
    manifest = registry.manifest(args.version)
    manifest.pop("history", None)  # in manifests written before history.json
    evaluation = _evaluation(registry, args.version)
    manifest["evaluation"] = {k: v for k, v in evaluation.items() if k != "confusion_matrix"} if evaluation else None
    print(json.dumps(manifest, indent=2, sort_keys=True))
    sys.stdout.flush()  # before any error on stderr, so a terminal shows the error last
    registry.verify(args.version)
    return 0


@_reports_registry_errors
def models_load(args: argparse.Namespace) -> int:
    """Load a version (checked, safe mode) and, with --evaluate, score it on the cached MNIST test set."""
    registry = _registry()
    model = registry.load(args.version)
    print(f"Loaded {registry.model_path(args.version)}: {model.count_params()} parameters")
    if args.evaluate:
        from mnist_pipeline.ml.data.preprocessing import scale_images
        from mnist_pipeline.defs.resources import resources_for_env

        dataset = resources_for_env()["mnist_source"].load().dataset
        loss, accuracy = model.evaluate(scale_images(dataset.test_images), dataset.test_labels, batch_size=1000, verbose=0)
        print(f"Test accuracy {accuracy:.4f}, test loss {loss:.4f} on {dataset.num_test} images")
    return 0


def _production_pointer_path():
    import dagster as dg

    from mnist_pipeline.defs.resources import resources_for_env
    from mnist_pipeline.registry.promotion import PRODUCTION_ASSET

    manager = resources_for_env()["json_io_manager"]
    return manager, manager.path_for(dg.AssetKey(PRODUCTION_ASSET))


@_reports_registry_errors
def models_production(args: argparse.Namespace) -> int:
    from mnist_pipeline.registry.promotion import read_pointer

    _, path = _production_pointer_path()
    served = read_pointer(path)
    if served is None:
        print("No model is served yet: a run whose gates all pass promotes one.")
        return 0
    print(json.dumps(served, indent=2, sort_keys=True))
    sys.stdout.flush()  # before any error on stderr, so a terminal shows the error last
    _registry().verify(served["version"])  # a served file damaged since it was promoted is the last line
    return 0


@_reports_registry_errors
def predict_command(args: argparse.Namespace) -> int:
    """Classify the user's pictures (cli/predict.py) with the served model, or the version --version names."""
    from mnist_pipeline.cli.predict import predict
    from mnist_pipeline.registry.promotion import read_pointer

    served = None if args.version else read_pointer(_production_pointer_path()[1])
    return predict(args, _registry(), served["version"] if served else None)


@_reports_registry_errors
def models_compare(args: argparse.Namespace) -> int:
    """Two versions on the test images the pipeline reads (cli/compare.py)."""
    from mnist_pipeline.cli.compare import compare
    from mnist_pipeline.defs.resources import resources_for_env

    return compare(args, _registry(), resources_for_env()["mnist_source"].load().dataset)


@_reports_registry_errors
def models_promote(args: argparse.Namespace) -> int:
    """Serve VERSION (a rollback, or forward again) by a run of production_model configured with it.

    The version is checked here first (files, accuracy gate, safe-mode load: the check production_model
    applies), so a refusal is one line and exit code 1 without a failed run; the run checks again, as every
    run of production_model does, and only it moves the pointer. The model loaded here is the one the run
    uses (registry/store.py keeps it for the process).
    """
    import dagster as dg

    from mnist_pipeline.cli.display import CONSOLE_LOGGER
    from mnist_pipeline.cli.run_outcome import outcome_of
    from mnist_pipeline.defs.resources import resources_for_env
    from mnist_pipeline.registry.promotion import PRODUCTION_ASSET, PromotionRefused, check_promotable
    from mnist_pipeline.settings import ConfigurationError

    resources = resources_for_env()
    try:
        check_promotable(resources["model_registry"].registry(), resources["evaluation_records"].records(), resources["quality_gates"], args.version)
    except (PromotionRefused, ConfigurationError) as refused:
        print(f"Refused: {refused}", file=sys.stderr)
        return 1
    run_config = {
        "ops": {PRODUCTION_ASSET: {"config": {"version": args.version, "reason": args.reason}}},
        # The outcome is the line printed below; the run's events are in the instance (the UI).
        "loggers": {CONSOLE_LOGGER: {"config": {"log_level": "CRITICAL"}}},
    }
    with _instance() as instance:
        with dg.execute_job(dg.reconstructable(promote_model), instance, run_config=run_config, raise_on_error=False) as result:
            if not result.success:
                print(f"Refused: {outcome_of(result).failure.message} (run {result.run_id})", file=sys.stderr)
                return 1
            metadata = {name: entry.value for name, entry in result.get_asset_materialization_events()[0].materialization.metadata.items()}
    previous = None if metadata["previous_version"] == "none" else metadata["previous_version"]
    print(f"Serving model {args.version} (test accuracy {metadata['test_accuracy']:.4f}); previously {previous}. Run {result.run_id}.")
    return 0


@_reports_registry_errors
def models_export(args: argparse.Namespace) -> int:
    print(_registry().export(args.version, Path(args.destination)))
    return 0


@_reports_registry_errors
def models_prune(args: argparse.Namespace) -> int:
    """Remove old model versions, superseded plot sets and finished checkpoints, by the rules in versioning/retention.py."""
    from mnist_pipeline.defs.resources import resources_for_env, storage_locations
    from mnist_pipeline.registry.retention import PruneUnsupportedError, format_bytes, prune

    try:
        plan = prune(storage_locations(resources_for_env()), keep=args.keep, dry_run=args.dry_run)
    except PruneUnsupportedError as refused:
        print(f"Refused: {refused}", file=sys.stderr)
        return 1
    for entry in plan.kept:
        print(f"Keeping       {entry.what}: {entry.reason}")
    verb = "Would remove" if args.dry_run else "Removed     "
    for entry in plan.removed:
        print(f"{verb}  {entry.what}, {format_bytes(entry.bytes)}: {entry.reason}")
    freed = f"{format_bytes(plan.bytes_freed)} ({plan.bytes_freed:,} bytes) in {len(plan.removed)} director{'y' if len(plan.removed) == 1 else 'ies'}"
    if args.dry_run:
        print(f"Dry run: would free {freed}; nothing was removed.")
    else:
        print(f"Freed {freed}.")
    return 0


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 (the newest version may be in use by a run), found {value}")
    return value


def _add_hyperparameter_flags(parser: argparse.ArgumentParser) -> None:
    from mnist_pipeline.ml.model.presets import PRESETS

    parser.add_argument("--preset", choices=list(PRESETS), help="network and training recipe (default: tutorial)")
    parser.add_argument("--epochs", type=int, help="default: the preset's")
    parser.add_argument("--batch-size", dest="batch_size", type=int, help="default: the preset's")
    parser.add_argument("--learning-rate", dest="learning_rate", type=float, help="default: the preset's")
    parser.add_argument("--optimizer", choices=["sgd", "adam"], help="default: the preset's")
    parser.add_argument(
        "--augmentation", type=float,
        help="best and wide only: the strength of the random rotations and shifts of the training images "
        "(default 1, their own; 0 turns them off)",
    )
    parser.add_argument("--validation-fraction", dest="validation_fraction", type=float)
    parser.add_argument("--seed", type=int, help="seed for the initial weights, the validation split and shuffling")
    parser.add_argument("--json", help="also write the metrics and artifact paths to this JSON file")


def _add_verbose_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verbose", action="store_true", help="print Dagster's full event log instead of one line per step"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mnist-pipeline", description="Command line for the MNIST pipeline.")
    commands = parser.add_subparsers(dest="command", required=True)

    run_parser = commands.add_parser("run", help="materialize every asset and print the test accuracy")
    _add_hyperparameter_flags(run_parser)
    _add_verbose_flag(run_parser)
    run_parser.set_defaults(handler=run)

    update_parser = commands.add_parser(
        "update", help="materialize only what changed; hyperparameter flags set new hyperparameters first"
    )
    _add_hyperparameter_flags(update_parser)
    _add_verbose_flag(update_parser)
    update_parser.set_defaults(handler=update)

    redraw = commands.add_parser(
        "predictions-and-plots",
        help="redraw the predictions table and plots of the stored model, also one the accuracy gate refused (no training)",
    )
    redraw.add_argument("--json", help="also write the run's outcome and artifact paths to this JSON file")
    _add_verbose_flag(redraw)
    redraw.set_defaults(handler=predictions_and_plots_command)

    from mnist_pipeline.cli import sweep

    sweep.add_parsers(commands)

    from mnist_pipeline.cli import predict

    predict.add_parser(commands)
    commands.choices["predict"].set_defaults(handler=predict_command)

    models = commands.add_parser("models", help="trained model versions").add_subparsers(dest="models_command", required=True)
    models.add_parser("list", help="every version, oldest first").set_defaults(handler=models_list)
    show = models.add_parser("show", help="a version's lineage, hyperparameters and metrics")
    show.add_argument("version")
    show.set_defaults(handler=models_show)
    load = models.add_parser("load", help="load a version back (Keras safe mode)")
    load.add_argument("version")
    load.add_argument("--evaluate", action="store_true", help="also score it on the MNIST test set")
    load.set_defaults(handler=models_load)
    models.add_parser("production", help="the served version").set_defaults(handler=models_production)
    promote = models.add_parser("promote", help="serve a version that passed the accuracy gate (e.g. roll back)")
    promote.add_argument("version")
    promote.add_argument("--reason", default="rollback", help="recorded with the promotion")
    promote.set_defaults(handler=models_promote)
    from mnist_pipeline.cli import compare

    compare.add_parser(models).set_defaults(handler=models_compare)
    export = models.add_parser("export", help="copy a version's .keras file")
    export.add_argument("version")
    export.add_argument("destination")
    export.set_defaults(handler=models_export)
    from mnist_pipeline.registry.retention import DEFAULT_KEEP_VERSIONS

    prune = models.add_parser(
        "prune", help="remove old model versions, superseded plot sets and finished checkpoints (never the served one)"
    )
    prune.add_argument(
        "--keep", type=_at_least_one, default=DEFAULT_KEEP_VERSIONS,
        help=f"most recently registered versions to keep besides the served and previous ones (default {DEFAULT_KEEP_VERSIONS})",
    )
    prune.add_argument("--dry-run", dest="dry_run", action="store_true", help="only print what would be removed and the bytes freed")
    prune.set_defaults(handler=models_prune)

    args = parser.parse_args(argv)
    from mnist_pipeline.storage.location import StorageLocationError

    try:
        return args.handler(args)
    except StorageLocationError as error:  # MNIST_STORAGE_URL or a storage field: one line, not a traceback
        print(f"Refused: {error}", file=sys.stderr)
        return 1


def console_main() -> NoReturn:
    """The `mnist-pipeline` command (and `python -m mnist_pipeline`): `main`, then a fast exit (cli/process_exit.py)."""
    exit_without_teardown(main)


if __name__ == "__main__":
    console_main()
