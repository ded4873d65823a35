"""hyperparameters, compiled_model and trained_model: the preset's network (the tutorial convnet by default), before and after fitting."""

import dagster as dg

from mnist_pipeline.ml.data.dataset import DigitDataset
from mnist_pipeline.display import rounded, rounded_history
from mnist_pipeline.defs.model.config import Hyperparameters
from mnist_pipeline.ml.model.trained import TrainedModel
from mnist_pipeline.ml.content_versions import dataset_version, json_version, model_version
from mnist_pipeline.defs.io_managers import verified_data_version
from mnist_pipeline.defs.model.resources import TrainingCheckpoints
from mnist_pipeline.defs.executor import TRAINING_POOL, TRAINING_STEP_TAGS


@dg.asset(io_manager_key="json_io_manager", kinds={"json"})
def hyperparameters(context: dg.AssetExecutionContext, config: Hyperparameters) -> dg.Output[dict]:
    """The hyperparameters the models downstream are built and trained with (edit them in the Launchpad).

    Stored resolved: every value the preset's recipe trains with, overrides included.
    """
    values = config.resolved()
    overrides = config.overrides()
    # Said out loud, so values kept from another preset's block in the Launchpad are never silent.
    context.log.info(
        f"The {values['preset']} preset's recipe"
        + (": " if not overrides else " with overrides: ")
        + ", ".join(
            f"{field} {value}" + (f" (the preset's: {overrides[field][1]})" if field in overrides else "")
            for field, value in config.recipe().items()
        )
    )
    metadata = {**values, "preset_overrides": dg.MetadataValue.json({field: value for field, (value, _) in overrides.items()})}
    return dg.Output(values, data_version=dg.DataVersion(json_version(values)), metadata=metadata)


@dg.asset(
    io_manager_key="keras_io_manager",
    kinds={"keras", "tensorflow"},
    # The network is shaped for this data (28x28 images, 10 classes), so it sits downstream of it.
    deps=["scaled_mnist"],
)
def compiled_model(context: dg.AssetExecutionContext, hyperparameters: dict) -> dg.Output:
    """The preset's network (the tutorial convnet by default), untrained, compiled with sparse categorical cross-entropy and accuracy."""
    from mnist_pipeline.ml.model.architectures import build_network
    from mnist_pipeline.ml.model.network import compile_model, summary_text

    params = hyperparameters
    model = compile_model(
        build_network(params["preset"], params["seed"], params.get("augmentation")), params["optimizer"], params["learning_rate"]
    )
    return dg.Output(
        model,
        data_version=dg.DataVersion(model_version(model)),
        metadata={
            "preset": params["preset"],
            "parameter_count": model.count_params(),
            "layers": dg.MetadataValue.json([layer.__class__.__name__ for layer in model.layers]),
            "optimizer": params["optimizer"],
            "learning_rate": params["learning_rate"],
            **({"augmentation": params["augmentation"]} if "augmentation" in params else {}),
            "seed": params["seed"],
            "model_summary": dg.MetadataValue.md(f"```\n{summary_text(model)}\n```"),
        },
    )


@dg.asset(
    # Stored once, in the model registry under its version (defs/io_managers.py).
    io_manager_key="registry_model_io_manager",
    kinds={"keras", "tensorflow"},
    # On the cluster, to the Celery queue `training` (defs/executor.py); elsewhere the tag changes nothing.
    op_tags=TRAINING_STEP_TAGS,
    pool=TRAINING_POOL,  # one training run at a time through the run queue (defs/executor.py)
)
def trained_model(
    context: dg.AssetExecutionContext,
    training_checkpoints: TrainingCheckpoints,
    hyperparameters: dict,
    compiled_model,
    scaled_mnist: DigitDataset,
) -> dg.Output[TrainedModel]:
    """The compiled network fitted on the training set, validated on a held-out slice of it.

    Checkpointed every epoch: a killed run resumes where it stopped. Every
    version is kept in the model registry with its lineage.
    """
    from mnist_pipeline.ml.model.training import train_with_recipe

    params = hyperparameters
    epochs, batch_size = params["epochs"], params["batch_size"]
    code = context.assets_def.code_versions_by_key[context.asset_key]
    inputs = {
        "hyperparameters": json_version(hyperparameters),
        "compiled_model": model_version(compiled_model),
        # Recorded when scaled_mnist was written and its file just verified on load: not hashed again (188 MB).
        "scaled_mnist": verified_data_version(context.instance, dg.AssetKey("scaled_mnist")) or dataset_version(scaled_mnist),
    }
    outcome = train_with_recipe(
        compiled_model,
        scaled_mnist,
        params,
        checkpoint_dir=training_checkpoints.directory(json_version({"code": code, **inputs})),
        log=context.log.info,
    )
    model, history, seconds = outcome.model, outcome.history, outcome.seconds
    version = model_version(model)
    lineage = {
        "run_id": context.run_id,
        "input_data_versions": inputs,
        "hyperparameters": hyperparameters,
        "code_version": code,
        "training_seconds": round(seconds, 2),
        "class_names": scaled_mnist.names(),  # what `mnist-pipeline predict` calls the model's outputs
    }
    return dg.Output(
        TrainedModel(model=model, history=history, version=version, lineage=lineage),
        data_version=dg.DataVersion(version),
        metadata={
            "model_version": version,
            "device": outcome.device,
            "preset": params["preset"],
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate_schedule": params["schedule"],
            "train_images": outcome.train_images,
            "validation_images": outcome.validation_images,
            "training_seconds": rounded(seconds),
            "images_per_second": rounded(outcome.train_images * epochs / seconds),
            "final_loss": rounded(history["loss"][-1]),
            "final_accuracy": rounded(history["accuracy"][-1]),
            "final_val_loss": rounded(outcome.validation_loss),
            "final_val_accuracy": rounded(outcome.validation_accuracy),
            "history": dg.MetadataValue.json(rounded_history(history)),
        },
    )
