"""champion_model: the sweep's best candidate, or the mean of its best k candidates, as one registered model.

The choice is ml/model/ensemble.py's, on the validation images every member held
out; the test images only report the result. The champion is registered in the
model registry with its members in its lineage and evaluated like any version, so
the same gates serve it (production_model, when MNIST_SERVED_MODEL=champion).
"""

import dagster as dg

from mnist_pipeline.defs.evaluation.resources import EvaluationRecordsResource
from mnist_pipeline.defs.experiments.assets import SCALED_MNIST, result_of
from mnist_pipeline.defs.io_managers import verified_data_version
from mnist_pipeline.defs.model.resources import ModelRegistryResource
from mnist_pipeline.display import rounded
from mnist_pipeline.ml.content_versions import dataset_version
from mnist_pipeline.ml.data.dataset import DigitDataset


class NoCandidatesError(ValueError):
    """champion_model was asked for before any sweep candidate was evaluated."""


@dg.asset(io_manager_key="json_io_manager", kinds={"keras", "json"})
def champion_model(
    context: dg.AssetExecutionContext,
    model_registry: ModelRegistryResource,
    evaluation_records: EvaluationRecordsResource,
    candidate_model: dict,
    candidate_evaluation: dict,
    scaled_mnist: DigitDataset,
) -> dg.Output[dict]:
    """The mean of the top k candidates' class probabilities, k chosen on validation (ml/model/ensemble.py): the
    largest (up to 10), unless a smaller k, the best candidate alone included, is more accurate beyond chance."""
    from mnist_pipeline.ml.content_versions import model_version
    from mnist_pipeline.ml.evaluation.evaluate import evaluate
    from mnist_pipeline.ml.evaluation.leaderboard import build_leaderboard
    from mnist_pipeline.ml.model.ensemble import MAX_MEMBERS, build_ensemble, choose_on_validation

    if not candidate_evaluation:
        raise NoCandidatesError(
            "champion_model: expected evaluated sweep candidates (candidate_evaluation), found none; "
            "run `mnist-pipeline sweep` first"
        )
    ranked = list(build_leaderboard(result_of(record) for record in candidate_evaluation.values())["candidate"])
    top = ranked[:MAX_MEMBERS]
    versions = [candidate_evaluation[key]["model_version"] for key in top]
    registry = model_registry.registry()
    members = [registry.load(version) for version in versions]

    recipes = [candidate_model[key]["params"] for key in top]
    chosen = choose_on_validation(members, recipes, scaled_mnist.train_images, scaled_mnist.train_labels)
    size, p_values = chosen.size, chosen.p_value_against_largest
    context.log.info(
        f"Validation accuracy of the mean of the top k candidates, on {chosen.validation_images} images none of them "
        "trained on (McNemar's p against the largest k in brackets): "
        + ", ".join(f"k={k} {accuracy:.4f}" + (f" (p={p_values[k]:.2f})" if k in p_values else "") for k, accuracy in chosen.accuracy_by_size.items())
        + f"; chosen k={size}: "
        + ("the largest, no smaller k more accurate beyond chance (p < 0.05)" if size == chosen.largest else "more accurate than the largest beyond chance")
    )
    # What k was chosen by, as the record and a mean's lineage both keep it (JSON keys are strings).
    choice = {
        "validation_accuracy_by_size": {str(k): accuracy for k, accuracy in chosen.accuracy_by_size.items()},
        "p_value_against_largest_by_size": {str(k): p_value for k, p_value in p_values.items()},
    }
    best = candidate_evaluation[top[0]]
    if size == 1:
        # The best candidate itself: registered, and evaluated on the test images, by its own run.
        version = versions[0]
        test_accuracy, test_loss = float(best["test_accuracy"]), float(best["test_loss"])
    else:
        model = build_ensemble(members[:size])
        evaluation = evaluate(model, scaled_mnist.test_images, scaled_mnist.test_labels)
        test_accuracy, test_loss = evaluation.test_accuracy, evaluation.test_loss
        version = model_version(model)
        lineage = {
            "run_id": context.run_id,
            "champion_of": [{"candidate": key, "model_version": v} for key, v in zip(top[:size], versions[:size])],
            # Every registered version has its hyperparameters (the registry refuses a manifest without them):
            # a mean's are the way it combines its members, and each member's own recipe.
            "hyperparameters": {
                "ensemble": "mean of class probabilities",
                "size": size,
                "members": recipes[:size],
            },
            **choice,
            "validation_images": chosen.validation_images,
            "input_data_versions": {"scaled_mnist": verified_data_version(context.instance, SCALED_MNIST) or dataset_version(scaled_mnist)},
            "code_version": context.assets_def.code_versions_by_key[context.asset_key],
            "class_names": scaled_mnist.names(),
        }
        registry.register(version, model, lineage)
        # Kept per version, as every evaluated version's: `models show` lists it and the accuracy gate reads it.
        evaluation_records.records().write(
            version, evaluation.record(version, scaled_mnist.num_test)
        )
    record = {
        "model_version": version,
        "members": top[:size],
        "member_versions": versions[:size],
        "size": size,
        "validation_accuracy": chosen.accuracy_by_size[size],
        **choice,
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "best_candidate": top[0],
        "best_candidate_test_accuracy": float(best["test_accuracy"]),
    }
    context.log.info(
        f"Champion {version}: {'candidate ' + top[0] if size == 1 else f'the mean of {size} candidates'}, test accuracy "
        f"{test_accuracy:.4f} (the best candidate alone, {top[0]}: {record['best_candidate_test_accuracy']:.4f})"
    )
    return dg.Output(
        record,
        data_version=dg.DataVersion(version),
        metadata={
            "model_version": version,
            "members": dg.MetadataValue.json(record["members"]),
            "size": size,
            "validation_accuracy": rounded(record["validation_accuracy"]),
            "validation_accuracy_by_size": dg.MetadataValue.json({k: rounded(v) for k, v in record["validation_accuracy_by_size"].items()}),
            "p_value_against_largest_by_size": dg.MetadataValue.json(
                {k: rounded(v) for k, v in record["p_value_against_largest_by_size"].items()}
            ),
            "test_accuracy": rounded(test_accuracy),
            "test_loss": rounded(test_loss),
            "best_candidate_test_accuracy": rounded(record["best_candidate_test_accuracy"]),
            "model_path": dg.MetadataValue.path(str(registry.model_path(version))),
        },
    )
