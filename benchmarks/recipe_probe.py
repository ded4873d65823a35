"""Research probe, not part of the pipeline: train one network that is not a preset yet.

    .venv/bin/python benchmarks/recipe_probe.py strided --epochs 5 --seed 0 --data <storage>/scaled_mnist.npz

`best` and `wide` are the presets' own networks, there to compare against. (`wide`
was a probe first: BENCHMARKS.md, *The champion of a sweep*.)

Trains the network on the sweep's training images (the same validation split,
SWEEP_VALIDATION_SEED), with Adam and cosine decay like `best`, measures batch
normalisation's statistics again as candidates do (ml/model/batch_norm.py), then
prints its validation and test accuracy (before and after that step) and its
training seconds, and saves its class probabilities for both (`--out`, .npz with
`val` and `test`) so they can be averaged with a sweep's candidates
(`benchmarks/champion.py --report WORK --with-probe FILE`). It answers
"is this recipe worth a preset?" in minutes; one that is becomes a preset
(ml/model/presets.py, architectures.py) and is then measured by a sweep
(benchmarks/champion.py).

Faster and looser than a candidate's training: tf.data shuffles, there is no
checkpoint, and op determinism is off, so two runs differ in the last digits.

`--elastic S` adds elastic distortion of the training images (Simard, Steinkraus
and Platt, 2003) at S times Simard's strength, in the input pipeline: a probe
that did not pay (BENCHMARKS.md, *Elastic distortion, probed*), so it is not
part of the pipeline. It is written here rather than taken from Keras, whose
`RandomElasticTransform` (3.15.1) gives every transformed image of a batch the
first image's content when the batch size is unknown, as in `fit`, and moves
each pixel along the diagonal (the same noise for rows and columns).

`--label-smoothing E` trains on targets smoothed by E, and `--weight-decay W` adds
Adam's decoupled weight decay (W per unit of learning rate, every weight): two
more probes that did not pay (BENCHMARKS.md, *The grid's ceiling*).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

from mnist_pipeline.ml.model.architectures import augmentation, build_network, classifier_head, conv_block  # noqa: E402
from mnist_pipeline.ml.model.batch_norm import CALIBRATION_IMAGES, recalibrate  # noqa: E402
from mnist_pipeline.ml.model.candidates import SWEEP_VALIDATION_SEED  # noqa: E402
from mnist_pipeline.ml.model.split import validation_split  # noqa: E402
from mnist_pipeline.ml.model.training import steps_per_call  # noqa: E402

VALIDATION_FRACTION = 0.1  # the candidates' (the hyperparameters' default)
ZOOM_FRACTION = 0.1
# Simard et al.'s elastic distortion of MNIST digits: uniform noise in [-1, 1] for each pixel's row and
# column, smoothed by a Gaussian of SIGMA pixels, times ALPHA pixels. Near the centre of the image a
# pixel then moves 1.7 pixels on average (3.3 at the 95th percentile).
ELASTIC_ALPHA = 34.0
ELASTIC_SIGMA = 4.0


def gaussian_kernel(sigma: float) -> np.ndarray:
    """A normalised 1-D Gaussian of `sigma` pixels, cut at three sigma."""
    x = np.arange(-math.ceil(3 * sigma), math.ceil(3 * sigma) + 1, dtype=np.float32)
    kernel = np.exp(-(x**2) / (2 * sigma**2))
    return (kernel / kernel.sum()).astype(np.float32)


def displacement_field(batch, height: int, width: int, seed, strength: float):
    """(batch, height, width, 2): how far each pixel is read from, in rows and in columns (independent noise)."""
    noise = tf.random.stateless_uniform((batch, height, width, 2), seed=seed, minval=-1.0, maxval=1.0)
    kernel = tf.constant(gaussian_kernel(ELASTIC_SIGMA))
    down, across = (tf.tile(tf.reshape(kernel, shape), (1, 1, 2, 1)) for shape in ((-1, 1, 1, 1), (1, -1, 1, 1)))
    smooth = tf.nn.depthwise_conv2d(noise, down, strides=(1, 1, 1, 1), padding="SAME")
    smooth = tf.nn.depthwise_conv2d(smooth, across, strides=(1, 1, 1, 1), padding="SAME")
    return smooth * (ELASTIC_ALPHA * strength)


def elastic_distort(images, seed, strength: float):
    """images (batch, height, width), each resampled (bilinear, black outside) at its own displaced positions."""
    height, width = images.shape[1], images.shape[2]
    field = displacement_field(tf.shape(images)[0], height, width, seed, strength)
    grid_rows, grid_columns = tf.meshgrid(tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij")
    # Positions in an image padded by one black pixel, clipped onto that border.
    rows = tf.clip_by_value(grid_rows + field[..., 0] + 1, 0.0, height + 1.0)
    columns = tf.clip_by_value(grid_columns + field[..., 1] + 1, 0.0, width + 1.0)
    padded = tf.reshape(tf.pad(images, ((0, 0), (1, 1), (1, 1))), (tf.shape(images)[0], -1))
    row0, column0 = tf.floor(rows), tf.floor(columns)
    row_weight, column_weight = rows - row0, columns - column0
    row0, column0 = tf.cast(row0, tf.int32), tf.cast(column0, tf.int32)
    row1, column1 = tf.minimum(row0 + 1, height + 1), tf.minimum(column0 + 1, width + 1)

    def at(r, c):
        return tf.gather(padded, r * (width + 2) + c, batch_dims=1)

    top = at(row0, column0) * (1 - column_weight) + at(row0, column1) * column_weight
    bottom = at(row1, column0) * (1 - column_weight) + at(row1, column1) * column_weight
    return top * (1 - row_weight) + bottom * row_weight


def zoom_augmentation(seed: int) -> list[layers.Layer]:
    """`best`'s rotations and shifts, with random zoom added."""
    rotation, translation = augmentation(seed, strength=1.0)
    return [rotation, layers.RandomZoom(ZOOM_FRACTION, fill_mode="constant", seed=seed), translation]


def best_zoom(seed: int) -> list[layers.Layer]:
    """`best` with random zoom of up to 10% added to its augmentation."""
    return [*zoom_augmentation(seed), *conv_block(32), *conv_block(32), layers.MaxPooling2D(),
            *conv_block(64), *conv_block(64), layers.MaxPooling2D(), *classifier_head(seed)]  # fmt: skip


def strided(seed: int) -> list[layers.Layer]:
    """Each pooling replaced by a stride-2 5x5 convolution, dropout after each stage; zoom added."""
    return [
        *zoom_augmentation(seed),
        *conv_block(32), *conv_block(32), *conv_block(32, 5, "same", strides=2), layers.Dropout(0.4),
        *conv_block(64), *conv_block(64), *conv_block(64, 5, "same", strides=2), layers.Dropout(0.4),
        *classifier_head(seed),
    ]  # fmt: skip


def preset_network(preset: str):
    """A preset's own network (without its Reshape: main() adds one), as a baseline trained the probe's way."""
    return lambda seed: build_network(preset, seed).layers[1:]


NETWORKS = {"best_zoom": best_zoom, "strided": strided, "best": preset_network("best"), "wide": preset_network("wide")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("network", choices=sorted(NETWORKS))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learning-rate", type=float, default=0.003)
    parser.add_argument("--batch-size", type=int, default=120)
    parser.add_argument("--data", type=Path, required=True, help="a scaled_mnist.npz (a sweep's <storage>/scaled_mnist.npz)")
    parser.add_argument("--out", type=Path, help="where to save the class probabilities (.npz: val, test)")
    parser.add_argument("--elastic", type=float, default=0.0, help="elastic distortion, times Simard et al.'s strength (default 0: none)")
    parser.add_argument("--label-smoothing", type=float, default=0.0, help="the training targets' label smoothing (default 0: none)")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="Adam's decoupled weight decay, per unit of learning rate (default 0: none)")
    args = parser.parse_args(argv)

    data = np.load(args.data, allow_pickle=False)
    images, labels = data["train_images"], data["train_labels"]
    test_images, test_labels = data["test_images"], data["test_labels"]
    train, validation = validation_split(len(images), VALIDATION_FRACTION, SWEEP_VALIDATION_SEED)

    keras.utils.set_random_seed(args.seed)
    model = keras.Sequential([keras.Input((28, 28)), layers.Reshape((28, 28, 1)), *NETWORKS[args.network](args.seed)])
    steps = math.ceil(len(train) / args.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(args.learning_rate, steps * args.epochs)
    loss = (keras.losses.CategoricalCrossentropy(label_smoothing=args.label_smoothing) if args.label_smoothing
            else keras.losses.SparseCategoricalCrossentropy())  # fmt: skip
    model.compile(keras.optimizers.Adam(schedule, weight_decay=args.weight_decay or None), loss, metrics=["accuracy"],
                  steps_per_execution=steps_per_call(steps))  # fmt: skip
    batches = (
        tf.data.Dataset.from_tensor_slices((images[train], labels[train]))
        .shuffle(len(train), seed=args.seed)
        .batch(args.batch_size)
        .enumerate()  # each batch's distortion from (seed, its number in the epoch)
        .map(lambda step, batch: (
            elastic_distort(batch[0], tf.stack([tf.constant(args.seed, tf.int64), step]), args.elastic) if args.elastic else batch[0],
            tf.one_hot(batch[1], 10) if args.label_smoothing else batch[1],
        ))
        .prefetch(2)
    )
    started = time.perf_counter()
    model.fit(batches, epochs=args.epochs, shuffle=False, verbose=0)  # the batches above are shuffled already
    seconds = time.perf_counter() - started

    def accuracies() -> tuple[np.ndarray, np.ndarray, float, float]:
        validation_probabilities = model.predict(images[validation], batch_size=1000, verbose=0)
        test_probabilities = model.predict(test_images, batch_size=1000, verbose=0)
        return (validation_probabilities, test_probabilities,
                np.mean(validation_probabilities.argmax(axis=1) == labels[validation]),
                np.mean(test_probabilities.argmax(axis=1) == test_labels))  # fmt: skip

    *_, validation_before, test_before = accuracies()
    recalibrate(model, images[train[:CALIBRATION_IMAGES]])  # as train_with_recipe does after the last epoch
    validation_probabilities, test_probabilities, validation_accuracy, test_accuracy = accuracies()
    if args.out:
        np.savez(args.out, val=validation_probabilities, test=test_probabilities)
    print(
        f"{args.network} epochs={args.epochs} seed={args.seed} elastic={args.elastic:g} "
        f"label_smoothing={args.label_smoothing:g} weight_decay={args.weight_decay:g} parameters={model.count_params()} "
        f"validation={validation_accuracy:.4f} test={test_accuracy:.4f} training={seconds:.0f} s "
        f"(before batch normalisation was measured again: validation={validation_before:.4f} test={test_before:.4f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
