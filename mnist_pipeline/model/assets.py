"""compiled_model and trained_model: the preset's network (the tutorial convnet by default), before and after fitting."""


import math
import time

import dagster as dg

from mnist_pipeline.data.dataset import DigitDataset
from mnist_pipeline.model.config import ModelConfig, TrainingConfig
from mnist_pipeline.model.presets import preset_of_network
from mnist_pipeline.model.split import validation_split
from mnist_pipeline.model.trained import TrainedModel

GROUP = "model"


@dg.asset(
    group_name=GROUP,
    io_manager_key="keras_io_manager",
    kinds={"keras", "tensorflow"},
    owners=["team:ml-platform"],
    tags={"domain": "model"},
    # The network is shaped for this data (28x28 images, 10 classes), so it sits downstream of it.
    deps=["scaled_mnist"],
)
def compiled_model(context: dg.AssetExecutionContext, config: ModelConfig):
    """The preset's network (the tutorial convnet by default), untrained, compiled with sparse categorical cross-entropy and accuracy."""
    from mnist_pipeline.model.architectures import build_network
    from mnist_pipeline.model.network import compile_model, summary_text

    model = compile_model(
        build_network(config.preset, config.seed), config.chosen_optimizer(), config.chosen_learning_rate()
    )
    context.add_output_metadata(
        {
            "preset": config.preset,
            "parameter_count": model.count_params(),
            "layers": dg.MetadataValue.json([layer.__class__.__name__ for layer in model.layers]),
            "optimizer": config.chosen_optimizer(),
            "learning_rate": config.chosen_learning_rate(),
            "seed": config.seed,
            "model_summary": dg.MetadataValue.md(f"```\n{summary_text(model)}\n```"),
        }
    )
    return model


@dg.asset(
    group_name=GROUP,
    io_manager_key="keras_io_manager",
    kinds={"keras", "tensorflow"},
    owners=["team:ml-platform"],
    tags={"domain": "model"},
)
def trained_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    compiled_model,
    scaled_mnist: DigitDataset,
) -> TrainedModel:
    """The compiled network fitted on the training set, validated on a held-out slice of it."""
    import keras
    import tensorflow as tf

    from mnist_pipeline.model.network import EpochLogger
    from mnist_pipeline.model.schedule import apply_schedule

    # The recipe of the network's preset, unless the run config overrides it.
    preset = preset_of_network(compiled_model.name)
    epochs, batch_size = config.chosen_epochs(preset), config.chosen_batch_size(preset)
    train_idx, val_idx = validation_split(scaled_mnist.num_train, config.validation_fraction, config.seed)
    apply_schedule(compiled_model, preset.schedule, total_steps=math.ceil(len(train_idx) / batch_size) * epochs)
    # tf.gather rather than numpy fancy indexing: Keras would copy a numpy slice once more into a tensor.
    images, labels = scaled_mnist.train_images, scaled_mnist.train_labels
    train_images, train_labels = tf.gather(images, train_idx), tf.gather(labels, train_idx)
    validation = (tf.gather(images, val_idx), tf.gather(labels, val_idx))
    keras.utils.set_random_seed(config.seed)
    context.log.info(
        f"Training the {preset.name} preset's network on {len(train_idx)} images, validating on {len(val_idx)}, "
        f"{epochs} epochs of batch {batch_size}, {preset.schedule} learning rate"
    )
    started = time.perf_counter()
    fit = compiled_model.fit(
        train_images,
        train_labels,
        epochs=epochs,
        batch_size=batch_size,
        validation_data=validation,
        callbacks=[EpochLogger(context.log, epochs)],
        verbose=0,
    )
    seconds = time.perf_counter() - started
    history = {name: [float(v) for v in values] for name, values in fit.history.items()}
    context.add_output_metadata(
        {
            "preset": preset.name,
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate_schedule": preset.schedule,
            "train_images": len(train_idx),
            "validation_images": len(val_idx),
            "training_seconds": round(seconds, 2),
            "images_per_second": round(len(train_idx) * epochs / seconds, 1),
            "final_loss": history["loss"][-1],
            "final_accuracy": history["accuracy"][-1],
            "final_val_loss": history["val_loss"][-1],
            "final_val_accuracy": history["val_accuracy"][-1],
            "history": dg.MetadataValue.json(history),
        }
    )
    return TrainedModel(model=compiled_model, history=history)
