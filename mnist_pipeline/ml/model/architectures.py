"""The network of each preset. Imports Keras: import this module inside asset bodies only.

Built-in layers only, so every model saves and loads as `.keras` with
safe_mode=True. The augmentation layers of `best` are active in training only.
"""

from __future__ import annotations

from typing import Callable

import keras
from keras import layers

from mnist_pipeline.ml.data.dataset import IMAGE_SHAPE, NUM_CLASSES
from mnist_pipeline.ml.model.network import build_tutorial_model
from mnist_pipeline.ml.model.presets import PRESETS

# Augmentation of `best`: shifts of up to 10% (about 3 pixels) and rotations of up to 0.03 turns (about 11 degrees).
SHIFT_FRACTION = 0.1
ROTATION_FRACTION = 0.03


def build_fast_model(seed: int) -> keras.Model:
    """Conv2D(16, 5x5) -> MaxPool -> Conv2D(32, 5x5) -> MaxPool -> Dense(64) -> Dense(10, softmax)."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input(shape=IMAGE_SHAPE),
            layers.Reshape((*IMAGE_SHAPE, 1)),
            layers.Conv2D(16, (5, 5), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(32, (5, 5), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ],
        name=PRESETS["fast"].network_name,
    )


def _conv_block(filters: int) -> list[layers.Layer]:
    return [layers.Conv2D(filters, (3, 3), use_bias=False), layers.BatchNormalization(), layers.ReLU()]


def build_best_model(seed: int) -> keras.Model:
    """Random rotation and shift -> 2x Conv2D(32) -> MaxPool -> 2x Conv2D(64) -> MaxPool -> Dense(128) -> Dense(10).

    Every convolution and the Dense(128) are followed by batch normalisation; dropout before the output.
    """
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input(shape=IMAGE_SHAPE),
            layers.Reshape((*IMAGE_SHAPE, 1)),
            layers.RandomRotation(ROTATION_FRACTION, fill_mode="constant", seed=seed),
            layers.RandomTranslation(SHIFT_FRACTION, SHIFT_FRACTION, fill_mode="constant", seed=seed),
            *_conv_block(32),
            *_conv_block(32),
            layers.MaxPooling2D((2, 2)),
            *_conv_block(64),
            *_conv_block(64),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(128, use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.Dropout(0.4, seed=seed),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ],
        name=PRESETS["best"].network_name,
    )


BUILDERS: dict[str, Callable[[int], keras.Model]] = {
    "tutorial": build_tutorial_model,
    "fast": build_fast_model,
    "best": build_best_model,
}


def build_network(preset: str, seed: int) -> keras.Model:
    return BUILDERS[preset](seed)
