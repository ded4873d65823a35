"""Sweep candidates as partitions: candidate_model and candidate_evaluation per candidate, and the leaderboard of them all.

Each partition of `candidates` is one sweep candidate (ml/model/candidates.py decides
its key); its config is the record the sweep wrote beside the key (resources.py), read
by key, so a candidate trains with exactly the config its key names. Training goes
through train_with_recipe, the same path as trained_model, and the model is
registered in the same model registry, its lineage naming the candidate.
"""


import dagster as dg

from mnist_pipeline.defs.executor import TRAINING_POOL, TRAINING_STEP_TAGS
from mnist_pipeline.defs.evaluation.resources import EvaluationRecordsResource
from mnist_pipeline.defs.experiments.resources import ExperimentStore
from mnist_pipeline.defs.io_managers import verified_data_version
from mnist_pipeline.defs.model.config import Hyperparameters
from mnist_pipeline.defs.reports.assets import embedded_png
from mnist_pipeline.defs.model.resources import ModelRegistryResource, TrainingCheckpoints
from mnist_pipeline.display import markdown_table, rounded
from mnist_pipeline.ml.content_versions import dataset_version, json_version, model_version
from mnist_pipeline.ml.data.dataset import DigitDataset
from mnist_pipeline.ml.model.candidates import SWEEP_VALIDATION_SEED, Candidate

CANDIDATES = dg.DynamicPartitionsDefinition(name="candidates")
SCALED_MNIST = dg.AssetKey("scaled_mnist")
# Metadata key of candidate_model's materialization: what its training depended on (`training_key`).
TRAINING_KEY_METADATA = "training_key"


def candidate_params(candidate: Candidate) -> dict:
    """The candidate's resolved recipe, as the `hyperparameters` asset resolves a run config (the same rules),
    with the sweep's shared validation split."""
    params = Hyperparameters.from_values(preset=candidate.preset, seed=candidate.seed, **dict(candidate.overrides)).resolved()
    return {**params, "validation_seed": SWEEP_VALIDATION_SEED}


def training_key(code: str | None, params: dict, data_version: str | None) -> str:
    """What a candidate's training depends on: the asset's code, the full resolved config, the data.

    A candidate whose last materialization recorded the same key is up to date, and a
    sweep run again skips it (defs/experiments/sweep.py); any change retrains it.
    """
    return json_version({"code": code, "params": params, "scaled_mnist": data_version})


@dg.asset(
    partitions_def=CANDIDATES,
    io_manager_key="candidate_record_io_manager",
    kinds={"keras", "tensorflow"},
    # Like trained_model: on the cluster, to the Celery queue `training`; in the training pool everywhere.
    op_tags=TRAINING_STEP_TAGS,
    pool=TRAINING_POOL,
)
def candidate_model(
    context: dg.AssetExecutionContext,
    experiment_store: ExperimentStore,
    model_registry: ModelRegistryResource,
    training_checkpoints: TrainingCheckpoints,
    scaled_mnist: DigitDataset,
) -> dg.Output[dict]:
    """The candidate's network, trained like trained_model and registered in the model registry under its version."""
    from mnist_pipeline.ml.model.architectures import build_network
    from mnist_pipeline.ml.model.network import compile_model
    from mnist_pipeline.ml.model.training import train_with_recipe

    key = context.partition_key
    candidate = experiment_store.read_config(key)
    params = candidate_params(candidate)
    code = context.assets_def.code_versions_by_key[context.asset_key]
    data_version = verified_data_version(context.instance, SCALED_MNIST) or dataset_version(scaled_mnist)
    training = training_key(code, params, data_version)
    compiled = compile_model(
        build_network(params["preset"], params["seed"], params.get("augmentation")), params["optimizer"], params["learning_rate"]
    )
    outcome = train_with_recipe(
        compiled, scaled_mnist, params, checkpoint_dir=training_checkpoints.directory(training), log=context.log.info
    )
    version = model_version(outcome.model)
    lineage = {
        "run_id": context.run_id,
        "candidate": key,
        "input_data_versions": {"scaled_mnist": data_version},
        "hyperparameters": params,
        "code_version": code,
        "training_seconds": round(outcome.seconds, 2),
        "class_names": scaled_mnist.names(),
    }
    model_registry.registry().register(version, outcome.model, lineage, outcome.history)
    record = {
        "candidate": key,
        "model_version": version,
        "params": params,
        "overrides": dict(candidate.overrides),
        "training_seconds": outcome.seconds,
        "parameter_count": int(outcome.model.count_params()),
        # The trained network's (ml/model/training.py): what the leaderboard ranks by (never the test accuracy).
        "validation_accuracy": outcome.validation_accuracy,
        TRAINING_KEY_METADATA: training,
    }
    return dg.Output(
        record,
        data_version=dg.DataVersion(version),
        metadata={
            "model_version": version,
            TRAINING_KEY_METADATA: training,
            "preset": params["preset"],
            "seed": params["seed"],
            "overrides": dg.MetadataValue.json(dict(candidate.overrides)),
            "training_seconds": rounded(outcome.seconds),
            "device": outcome.device,
            "final_val_accuracy": rounded(record["validation_accuracy"]),
        },
    )


@dg.asset(partitions_def=CANDIDATES, io_manager_key="candidate_record_io_manager", kinds={"keras", "json"})
def candidate_evaluation(
    context: dg.AssetExecutionContext,
    model_registry: ModelRegistryResource,
    evaluation_records: EvaluationRecordsResource,
    candidate_model: dict,
    scaled_mnist: DigitDataset,
) -> dg.Output[dict]:
    """The candidate's test loss and accuracy (the main chain's `evaluate`), beside its validation accuracy and cost."""
    from mnist_pipeline.ml.evaluation.evaluate import evaluate

    version = candidate_model["model_version"]
    model = model_registry.registry().load(version)
    evaluation = evaluate(model, scaled_mnist.test_images, scaled_mnist.test_labels)
    # Kept per model version as evaluation_metrics keeps it: `models show` lists it, and the
    # accuracy gate of `models promote` reads it, so a candidate can be served like any version.
    evaluation_records.records().write(
        version, evaluation.record(version, scaled_mnist.num_test)
    )
    record = {
        **{name: candidate_model[name] for name in ("candidate", "model_version", "overrides", "training_seconds", "parameter_count", "validation_accuracy")},
        "preset": candidate_model["params"]["preset"],
        "seed": candidate_model["params"]["seed"],
        "test_accuracy": evaluation.test_accuracy,
        "test_loss": evaluation.test_loss,
    }
    return dg.Output(
        record,
        data_version=dg.DataVersion(json_version(record)),
        metadata={
            "model_version": record["model_version"],
            "validation_accuracy": rounded(record["validation_accuracy"]),
            "test_accuracy": rounded(evaluation.test_accuracy),
            "test_loss": rounded(evaluation.test_loss),
        },
    )


def result_of(record: dict):
    """A candidate_evaluation record as a leaderboard row."""
    from mnist_pipeline.ml.evaluation.leaderboard import CandidateResult

    return CandidateResult(
        candidate=record["candidate"],
        preset=record["preset"],
        seed=int(record["seed"]),
        overrides=",".join(f"{name}={value}" for name, value in sorted(record["overrides"].items())),
        validation_accuracy=float(record["validation_accuracy"]),
        test_accuracy=float(record["test_accuracy"]),
        test_loss=float(record["test_loss"]),
        training_seconds=float(record["training_seconds"]),
        parameter_count=int(record["parameter_count"]),
        model_version=record["model_version"],
    )


@dg.asset(io_manager_key="parquet_io_manager", kinds={"pandas", "parquet"})
def leaderboard(context: dg.AssetExecutionContext, candidate_evaluation: dict) -> dg.Output:
    """Every evaluated candidate, ranked by validation accuracy; the plot marks the production model."""
    from mnist_pipeline.defs.serving.assets import current_production
    from mnist_pipeline.ml.evaluation.leaderboard import build_leaderboard
    from mnist_pipeline.ml.reports.plots import leaderboard_scatter, style, to_png

    # Partitions added but not evaluated yet (a sweep under way, or a candidate that failed) are listed, not ranked.
    missing = sorted(set(context.instance.get_dynamic_partitions(CANDIDATES.name)) - set(candidate_evaluation))
    if missing:
        context.log.warning(f"Not on the leaderboard, not evaluated yet: {', '.join(missing)}")
    table = build_leaderboard(result_of(record) for record in candidate_evaluation.values())
    production = current_production(context.instance)["version"]
    with style():
        png = to_png(
            leaderboard_scatter(
                list(table["candidate"]), list(table["training_seconds"]), list(table["validation_accuracy"]),
                list(table["model_version"]), production,
            )
        )
    shown = table.round({"validation_accuracy": 4, "test_accuracy": 4, "test_loss": 4, "training_seconds": 1})
    return dg.Output(
        table,
        data_version=dg.DataVersion(json_version(table.to_dict(orient="records"))),
        metadata={
            "dagster/row_count": len(table),
            "table": dg.MetadataValue.md(markdown_table(list(shown.columns), shown.itertuples(index=False))),
            "plot": embedded_png("validation accuracy against training seconds", png),
            "production_model": production or "none",
            "not_evaluated": dg.MetadataValue.json(missing),
        },
    )
