"""The network of each preset. Imports Keras: import this module inside asset bodies only.

Built-in layers only, so every model saves and loads as `.keras` with
safe_mode=True. The augmentation layers of `best` and `wide` are active in training only;
their strength is the recipe's `augmentation` (1 unless overridden).
"""

from __future__ import annotations

from typing import Callable

import keras
from keras import layers

from mnist_pipeline.ml.data.dataset import IMAGE_SHAPE, NUM_CLASSES
from mnist_pipeline.ml.model.network import build_tutorial_model
from mnist_pipeline.ml.model.presets import PRESETS

# Augmentation of `best` at strength 1: shifts of up to 10% (about 3 pixels) and rotations of up to
# 0.03 turns (about 11 degrees). Strength s multiplies both.
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


def conv_block(filters: int, size: int = 3, padding: str = "valid", strides: int = 1) -> list[layers.Layer]:
    """Conv2D without bias (the batch normalisation after it has one) -> BatchNorm -> ReLU."""
    return [
        layers.Conv2D(filters, (size, size), strides=strides, padding=padding, use_bias=False),
        layers.BatchNormalization(),
        layers.ReLU(),
    ]


def augmentation(seed: int, strength: float) -> list[layers.Layer]:
    """Random rotations and shifts, filling the uncovered corners with black (the background); none at strength 0."""
    if strength == 0:
        return []
    return [
        layers.RandomRotation(ROTATION_FRACTION * strength, fill_mode="constant", seed=seed),
        layers.RandomTranslation(SHIFT_FRACTION * strength, SHIFT_FRACTION * strength, fill_mode="constant", seed=seed),
    ]


def classifier_head(seed: int) -> list[layers.Layer]:
    """Flatten -> Dense(128)+BatchNorm -> Dropout(0.4) -> Dense(10, softmax)."""
    return [
        layers.Flatten(),
        layers.Dense(128, use_bias=False),
        layers.BatchNormalization(),
        layers.ReLU(),
        layers.Dropout(0.4, seed=seed),
        layers.Dense(NUM_CLASSES, activation="softmax"),
    ]


def _augmented_network(
    preset: str, seed: int, strength: float, body: Callable[[], list[layers.Layer]]
) -> keras.Model:
    """Input -> the augmentation -> body -> the classifier head, named after the preset.

    The seed is set before any layer exists: layers without a seed of their own take one when created.
    """
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input(shape=IMAGE_SHAPE), layers.Reshape((*IMAGE_SHAPE, 1)), *augmentation(seed, strength),
         *body(), *classifier_head(seed)],  # fmt: skip
        name=PRESETS[preset].network_name,
    )


def build_best_model(seed: int, augmentation: float) -> keras.Model:
    """Random rotation and shift -> 2x Conv2D(32) -> MaxPool -> 2x Conv2D(64) -> MaxPool -> Dense(128) -> Dense(10).

    Every convolution and the Dense(128) are followed by batch normalisation; dropout before the output.
    """
    return _augmented_network(
        "best",
        seed,
        augmentation,
        lambda: [*conv_block(32), *conv_block(32), layers.MaxPooling2D((2, 2)),
                 *conv_block(64), *conv_block(64), layers.MaxPooling2D((2, 2))],  # fmt: skip
    )


def build_wide_model(seed: int, augmentation: float) -> keras.Model:
    """Random rotation and shift -> Conv2D(32, 5x5) -> MaxPool -> Conv2D(64, 5x5) -> MaxPool -> Conv2D(128, 3x3) -> Dense(128) -> Dense(10).

    `best`'s augmentation and classifier head, with fewer, wider convolutions: the 5x5 ones pad their
    borders ('same'), so the image goes 28x28 -> 14x14 -> 7x7 -> 5x5. Every convolution and the
    Dense(128) are followed by batch normalisation. A second network for sweeps, whose champion may
    average the two (BENCHMARKS.md, *The champion of a sweep*).
    """
    return _augmented_network(
        "wide",
        seed,
        augmentation,
        lambda: [*conv_block(32, size=5, padding="same"), layers.MaxPooling2D((2, 2)),
                 *conv_block(64, size=5, padding="same"), layers.MaxPooling2D((2, 2)),
                 *conv_block(128)],  # fmt: skip
    )


# Builders of networks without augmentation take the seed; those with it (PRESETS[name].augmentation
# is not None) take the seed and the augmentation's strength.
BUILDERS: dict[str, Callable[..., keras.Model]] = {
    "tutorial": build_tutorial_model,
    "fast": build_fast_model,
    "best": build_best_model,
    "wide": build_wide_model,
}


def build_network(preset: str, seed: int, augmentation: float | None = None) -> keras.Model:
    """The preset's network; `augmentation` (the recipe's, model/config.py) defaults to the preset's own strength."""
    if PRESETS[preset].augmentation is None:
        if augmentation is not None:
            raise ValueError(f"augmentation: the {preset!r} network has no augmentation to set, found {augmentation}")
        return BUILDERS[preset](seed)
    return BUILDERS[preset](seed, PRESETS[preset].augmentation if augmentation is None else augmentation)
