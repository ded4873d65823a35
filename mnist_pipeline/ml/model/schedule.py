"""Learning-rate schedules over a whole training run. Imports Keras: import inside asset bodies only."""

from __future__ import annotations

import keras

from mnist_pipeline.ml.model.presets import ScheduleName


def apply_schedule(model: keras.Model, schedule: ScheduleName, total_steps: int) -> None:
    """Make the compiled optimizer follow `schedule`, starting from its current learning rate.

    constant: leave it as it is; cosine: decay it to 0 along a half cosine over `total_steps`.
    """
    if schedule == "constant":
        return
    if schedule == "cosine":
        start = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
        model.optimizer.learning_rate = keras.optimizers.schedules.CosineDecay(start, decay_steps=total_steps)
        return
    raise ValueError(f"schedule: expected 'constant' or 'cosine', found {schedule!r}")
