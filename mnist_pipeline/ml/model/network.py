"""The tutorial convnet. Imports Keras: import this module inside asset bodies only."""

from __future__ import annotations

import time
from typing import Callable

import keras
from keras import layers

from mnist_pipeline.ml.data.dataset import IMAGE_SHAPE, NUM_CLASSES
from mnist_pipeline.ml.model.progress import TrainingWatcher, current_watcher

OPTIMIZERS = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam}


def build_tutorial_model(seed: int) -> keras.Model:
    """Reshape -> Conv2D(32, 3x3) -> MaxPool(2x2) -> Flatten -> Dense(128) -> Dense(10, softmax).

    Layers are named explicitly: Keras's automatic names count the models built
    earlier in the process, which would make equal models look different.
    """
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input(shape=IMAGE_SHAPE, name="image"),
            layers.Reshape((*IMAGE_SHAPE, 1), name="add_channel"),
            layers.Conv2D(32, (3, 3), activation="relu", name="conv"),
            layers.MaxPooling2D((2, 2), name="pool"),
            layers.Flatten(name="flatten"),
            layers.Dense(128, activation="relu", name="hidden"),
            layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities"),
        ],
        name="tutorial_convnet",
    )


def compile_model(model: keras.Model, optimizer: str, learning_rate: float) -> keras.Model:
    model.compile(
        optimizer=OPTIMIZERS[optimizer](learning_rate=learning_rate, name=optimizer),  # automatic names count earlier optimizers
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def summary_text(model: keras.Model) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line))
    return "\n".join(lines)


class EpochLogger(keras.callbacks.Callback):
    """Writes one line per finished epoch through `log` (e.g. the Dagster run log's info)."""

    def __init__(self, log: Callable[[str], None], epochs: int):
        super().__init__()
        self._log = log
        self._epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        figures = ", ".join(f"{key}={value:.4f}" for key, value in sorted(logs.items()))
        self._log(f"epoch {epoch + 1}/{self._epochs}: {figures}")


class ProgressForwarder(keras.callbacks.Callback):
    """Hands training progress to a watcher (model/progress.py): each epoch, and its batches at most every `interval` s.

    Keras reports a finished batch on its callback thread; that hook only keeps
    the figures. The watcher hears of them on the training thread, when the next
    batch begins and `interval` has passed: no other thread of ours takes
    Python's lock while training runs, so the only cost is the watcher's own
    work, a few times a second however small the batches.
    """

    async_safe = True  # on_train_batch_end only stores a tuple

    def __init__(self, watcher: TrainingWatcher, interval: float = 0.25):
        super().__init__()
        self._watcher = watcher
        self._interval = interval
        self._last_update = 0.0
        self._latest: tuple[int, dict] | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self._latest = None
        self._watcher.epoch_started(epoch, self.params["epochs"], self.params["steps"])

    def on_train_batch_end(self, batch, logs=None):
        self._latest = (batch + 1, logs or {})

    def on_train_batch_begin(self, batch, logs=None):
        latest, now = self._latest, time.monotonic()
        if latest is not None and now - self._last_update >= self._interval:
            self._last_update = now
            self._watcher.batch_finished(*latest)

    def on_epoch_end(self, epoch, logs=None):
        self._watcher.epoch_finished(epoch, logs or {})


def progress_callbacks() -> list[keras.callbacks.Callback]:
    """A ProgressForwarder when something in this process watches training (the CLI's bar), else nothing."""
    watcher = current_watcher()
    return [ProgressForwarder(watcher)] if watcher is not None else []
