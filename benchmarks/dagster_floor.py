"""Dagster's own cost: the pipeline's full job, same assets, checks, dependencies and inputs, with empty steps.

    DAGSTER_HOME=/tmp/empty-home python benchmarks/dagster_floor.py

What a cold `mnist-pipeline run` spends being orchestrated, with nothing to
orchestrate: importing Dagster, the instance and its SQLite storage, building
the job, the run's events (planned materializations and checks, each step's
start, inputs, outputs, materializations, check results, success) written to the
event log, and the steps' loading and storing, here by an in-memory IO manager.
No TensorFlow, no data, no files of the pipeline's. benchmarks/run.py runs it
beside the pipeline, in a fresh DAGSTER_HOME like the pipeline's: the floor
under the pipeline's time outside training. It imports nothing of
mnist_pipeline; mnist_pipeline_tests/test_benchmarks.py checks that its graph
is the pipeline's.
"""

from __future__ import annotations

import sys
import warnings

import dagster as dg

JOB_NAME = "mnist_full_pipeline"


@dg.asset
def hyperparameters() -> dict:
    return {}


def mnist_files(context) -> dg.DataVersion:
    return dg.DataVersion("unchanged")


with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)  # observable_source_asset is beta in Dagster 1.13
    mnist_files = dg.observable_source_asset(mnist_files)


@dg.asset(deps=[mnist_files])
def raw_mnist() -> int:
    return 0


@dg.asset
def scaled_mnist(raw_mnist) -> int:
    return 0


@dg.asset(deps=["scaled_mnist"])
def compiled_model(hyperparameters) -> int:
    return 0


@dg.asset
def trained_model(hyperparameters, compiled_model, scaled_mnist) -> int:
    return 0


@dg.asset
def evaluation_metrics(trained_model, scaled_mnist) -> int:
    return 0


@dg.asset(deps=["evaluation_metrics"])
def predictions_table(trained_model, scaled_mnist) -> int:
    return 0


@dg.asset
def digit_plots(raw_mnist, trained_model, evaluation_metrics, predictions_table) -> int:
    return 0


@dg.asset(deps=["predictions_table"])
def production_model(trained_model, evaluation_metrics) -> int:
    return 0


def _passed(asset: str, names: list[str]):
    for name in names:
        yield dg.AssetCheckResult(asset_key=asset, check_name=name, passed=True)


RAW_CHECKS = ["counts", "image_shapes", "labels_in_range", "every_class_present"]
SCALED_CHECKS = ["pixel_range", "no_nan"]


@dg.multi_asset_check(specs=[dg.AssetCheckSpec(name, asset="raw_mnist", blocking=True) for name in RAW_CHECKS],
                      ins={"raw_mnist": dg.AssetIn("raw_mnist")})
def raw_mnist_checks(raw_mnist):
    yield from _passed("raw_mnist", RAW_CHECKS)


@dg.multi_asset_check(specs=[dg.AssetCheckSpec(name, asset="scaled_mnist", blocking=True) for name in SCALED_CHECKS],
                      ins={"scaled_mnist": dg.AssetIn("scaled_mnist")})
def scaled_mnist_checks(scaled_mnist):
    yield from _passed("scaled_mnist", SCALED_CHECKS)


@dg.asset_check(asset="trained_model", blocking=True)
def trained_weights_finite(trained_model) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@dg.asset_check(asset="evaluation_metrics", blocking=True)
def accuracy_gate(evaluation_metrics) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec("rows_sum_to_one", asset="predictions_table", blocking=True),
        dg.AssetCheckSpec("complete", asset="predictions_table", blocking=True, additional_deps=["evaluation_metrics"]),
    ],
    ins={"predictions_table": dg.AssetIn("predictions_table"), "evaluation_metrics": dg.AssetIn("evaluation_metrics")},
)
def predictions_table_checks(predictions_table, evaluation_metrics):
    yield from _passed("predictions_table", ["rows_sum_to_one", "complete"])


defs = dg.Definitions(
    assets=[mnist_files, hyperparameters, raw_mnist, scaled_mnist, compiled_model, trained_model, evaluation_metrics,
            predictions_table, digit_plots, production_model],
    asset_checks=[raw_mnist_checks, scaled_mnist_checks, trained_weights_finite, accuracy_gate, predictions_table_checks],
    jobs=[dg.define_asset_job(JOB_NAME, selection=dg.AssetSelection.all() | dg.AssetSelection.assets("mnist_files"),
                              executor_def=dg.in_process_executor)],
    resources={"io_manager": dg.mem_io_manager},
    executor=dg.in_process_executor,
)


def full_job():
    """Module-level, so dg.reconstructable can point at it, as the CLI's full_pipeline."""
    return defs.resolve_job_def(JOB_NAME)


def main() -> int:
    with dg.DagsterInstance.get() as instance:
        with dg.execute_job(dg.reconstructable(full_job), instance, raise_on_error=False) as result:
            events = len(instance.all_logs(result.run_id))
            print(f"Run {result.run_id}: {'succeeded' if result.success else 'FAILED'}, {events} events")
            return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
