"""Training that survives being killed: a checkpoint after every epoch, resumed on the next run.

Each epoch's batch order comes from (seed, epoch) alone and the random state is
reset from the same pair, so a run resumed from epoch k ends with the same
weights, byte for byte, as one that was never interrupted.

    <checkpoint dir>/epoch-0003.keras   the model (with optimizer state) after 3 epochs
    <checkpoint dir>/state.json         {"epochs_done": 3, "model_file": ..., "history": ...}
    <checkpoint dir>/.lock              held while training, so two runs never share a checkpoint
                                        (on a local disk; in an object store there is none: storage/locks.py)

Once training completes, the checkpoint is removed and the lock file stays.

Imports Keras: import this module inside asset bodies only.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import keras
import numpy as np

from mnist_pipeline.ml.data.dataset import DigitDataset
from mnist_pipeline.ml.model.batch_norm import CALIBRATION_IMAGES, recalibrate
from mnist_pipeline.ml.model.device import training_device
from mnist_pipeline.ml.model.network import EpochLogger, progress_callbacks
from mnist_pipeline.ml.model.schedule import apply_schedule
from mnist_pipeline.ml.model.split import recipe_validation_split
from mnist_pipeline.storage.atomic import atomic_write, atomic_write_json, local_copy
from mnist_pipeline.storage.location import StoragePath, read_text
from mnist_pipeline.storage.locks import LOCK_FILE, exclusive_lock
from mnist_pipeline.storage.checkpoints import CHECKPOINT_STATE_FILE as STATE_FILE

MAX_STEPS_PER_CALL = 16


@contextmanager
def exclusive(directory: StoragePath, log: Callable[[str], None]) -> Iterator[None]:
    """Hold the directory's lock; wait (saying so) while another process holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(
        directory / LOCK_FILE, on_wait=lambda: log(f"Another run is training the same model ({directory}); waiting for it to finish")
    ):
        yield


def epoch_order(train_indices: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """The training images of `epoch`, in the order that epoch sees them."""
    return train_indices[np.random.default_rng([seed, epoch]).permutation(len(train_indices))]


def load_checkpoint(directory: StoragePath) -> tuple[keras.Model, int, dict[str, list[float]]] | None:
    state_path = directory / STATE_FILE
    if not state_path.exists():
        return None
    state = json.loads(read_text(state_path))
    if not (directory / state["model_file"]).exists():
        # Only in an object store, where nothing locks a checkpoint: a run of the same training, at the same
        # time, moved on and removed the file. Its weights are the same ones; training starts over.
        return None
    with local_copy(directory / state["model_file"]) as model_file:
        model = keras.models.load_model(model_file, safe_mode=True)
    return model, int(state["epochs_done"]), state["history"]


def save_checkpoint(directory: StoragePath, model: keras.Model, epochs_done: int, history: dict[str, list[float]]) -> None:
    """Model first, then the state that points at it: a kill between the two keeps the older pair."""
    model_file = f"epoch-{epochs_done:04d}.keras"
    atomic_write(directory / model_file, lambda tmp: model.save(tmp))
    state = {"epochs_done": epochs_done, "model_file": model_file, "history": history}
    atomic_write_json(directory / STATE_FILE, state)
    for old in directory.glob("epoch-*.keras"):
        if old.name != model_file:
            old.unlink(missing_ok=True)


def steps_per_call(steps_per_epoch: int) -> int:
    """How many training steps Keras runs per call into TensorFlow (its `steps_per_execution`).

    More than one saves a Python round trip per batch, which matters with small
    batches on a CPU; the updates are the same, batch by batch. The number
    divides the epoch, so no call runs across an epoch's end, where the
    checkpoint is taken.
    """
    return max(n for n in range(1, MAX_STEPS_PER_CALL + 1) if steps_per_epoch % n == 0)


def without_autotune(tf):
    """tf.data options that switch autotuning off.

    The pipeline above is fixed (one sequential gather, two batches prefetched),
    so autotuning has nothing to tune; and its background thread sleeps on a
    timer that grows as the iterator lives, which deleting the iterator at the
    end of `fit` then waits out: about 6 s of idle time in a 3-epoch run here,
    and tens of seconds in 10-epoch runs (BENCHMARKS.md).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


class CheckpointEachEpoch(keras.callbacks.Callback):
    """Seeds each epoch from (seed, epoch); at its end, appends its metrics to `history` (in place) and checkpoints."""

    def __init__(self, directory: StoragePath, seed: int, history: dict[str, list[float]]):
        super().__init__()
        self._directory = directory
        self._seed = seed
        self._history = history

    def on_epoch_begin(self, epoch, logs=None):
        keras.utils.set_random_seed(self._seed * 100_003 + epoch)

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            self._history.setdefault(name, []).append(float(value))
        save_checkpoint(self._directory, self.model, epoch + 1, self._history)


def clear_checkpoint(directory: StoragePath) -> None:
    """Remove the checkpoint, state first; the directory and its lock stay for any run waiting on it."""
    (directory / STATE_FILE).unlink(missing_ok=True)
    for old in directory.glob("epoch-*.keras"):
        old.unlink(missing_ok=True)


def fit_resumably(
    model: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    train_indices: np.ndarray,
    validation_indices: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    checkpoint_dir: StoragePath,
    log: Callable[[str], None],
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Fit `model` for `epochs`, resuming from `checkpoint_dir` if an earlier run got part way.

    Returns the fitted model (the checkpoint's, when resumed) and the per-epoch
    history of all epochs. The checkpoint is removed once training completes.
    """
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    # One tensor copy of the images; batches are gathered from it by index, so no
    # epoch makes a shuffled copy of the whole training slice.
    all_images, all_labels = tf.constant(images), tf.constant(labels)
    # The held-out images as a dataset of our own, in batches of the training's size (Keras's default for them):
    # given tensors, Keras slices them with a parallel map, which op determinism makes sequential, and TensorFlow
    # then logs an error-level line (E0000 ... use_unbounded_threadpool) in every training.
    validation = (
        tf.data.Dataset.from_tensor_slices((tf.gather(all_images, validation_indices), tf.gather(all_labels, validation_indices)))
        .batch(batch_size)
        .with_options(without_autotune(tf))
    )

    with exclusive(checkpoint_dir, log):
        resumed = load_checkpoint(checkpoint_dir)
        history: dict[str, list[float]] = {}
        start = 0
        if resumed is not None:
            model, start, history = resumed
            log(f"Resuming from the checkpoint after epoch {start} of {epochs} in {checkpoint_dir}")
        if start < epochs:
            # One fit over the remaining epochs; each epoch's batches come in that epoch's own order.
            orders = np.stack([epoch_order(train_indices, seed, epoch) for epoch in range(start, epochs)])
            batches = (
                tf.data.Dataset.from_tensor_slices(orders)
                .flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
                .map(lambda index: (tf.gather(all_images, index), tf.gather(all_labels, index)))
                .prefetch(2)
                .with_options(without_autotune(tf))
            )
            steps_per_epoch = math.ceil(len(train_indices) / batch_size)
            model.steps_per_execution = steps_per_call(steps_per_epoch)
            model.fit(
                batches,
                epochs=epochs,
                initial_epoch=start,
                steps_per_epoch=steps_per_epoch,
                validation_data=validation,
                callbacks=[CheckpointEachEpoch(checkpoint_dir, seed, history), EpochLogger(log, epochs), *progress_callbacks()],
                shuffle=False,  # the batches above are already in each epoch's order
                verbose=0,
            )
        # Inside the lock: a run waiting on it then finds no checkpoint, rather than one being deleted.
        clear_checkpoint(checkpoint_dir)
    return model, history


@dataclass(frozen=True)
class TrainingOutcome:
    model: keras.Model
    history: dict[str, list[float]]
    seconds: float
    train_images: int
    validation_images: int
    device: str  # "CPU", or "GPU:0 (<name>)": on the cluster, the worker's (a GPU worker's model version differs, README)
    # The returned model's, on the held-out images: the last epoch's, unless batch normalisation was measured again.
    validation_loss: float
    validation_accuracy: float


def train_with_recipe(
    compiled_model: keras.Model,
    dataset: DigitDataset,
    params: dict,
    *,
    checkpoint_dir: StoragePath,
    log: Callable[[str], None],
) -> TrainingOutcome:
    """Train a compiled network with a resolved recipe (the `hyperparameters` asset's values).

    The one training path: trained_model and every sweep candidate call this,
    so a candidate's score is what the main chain would get with its config.
    """
    epochs, batch_size = params["epochs"], params["batch_size"]
    train_idx, val_idx = recipe_validation_split(dataset.num_train, params)
    # A resumed run takes the checkpoint's optimizer, schedule included, in place of this one.
    apply_schedule(compiled_model, params["schedule"], total_steps=math.ceil(len(train_idx) / batch_size) * epochs)
    device = training_device()
    log(
        f"Training the {params['preset']} preset's network on {len(train_idx)} images, validating on "
        f"{len(val_idx)}, {epochs} epochs of batch {batch_size}, {params['schedule']} learning rate, on {device}"
    )
    started = time.perf_counter()
    model, history = fit_resumably(
        compiled_model,
        dataset.train_images,
        dataset.train_labels,
        train_idx,
        val_idx,
        epochs=epochs,
        batch_size=batch_size,
        seed=params["seed"],
        checkpoint_dir=checkpoint_dir,
        log=log,
    )
    calibration = train_idx[:CALIBRATION_IMAGES]
    validation_loss, validation_accuracy = history["val_loss"][-1], history["val_accuracy"][-1]
    if recalibrate(model, dataset.train_images[calibration]):
        # The last epoch's validation figures are the network's before; the returned model is the one after.
        scores = model.evaluate(
            dataset.train_images[val_idx], dataset.train_labels[val_idx], batch_size=1000, verbose=0, return_dict=True
        )
        validation_loss, validation_accuracy = scores["loss"], scores["accuracy"]
        log(
            f"Measured batch normalisation's statistics again on {len(calibration)} unaugmented training images: "
            f"validation accuracy {history['val_accuracy'][-1]:.4f} -> {validation_accuracy:.4f}"
        )
    return TrainingOutcome(
        model=model,
        history=history,
        seconds=time.perf_counter() - started,
        train_images=len(train_idx),
        validation_images=len(val_idx),
        device=device,
        validation_loss=float(validation_loss),
        validation_accuracy=float(validation_accuracy),
    )
