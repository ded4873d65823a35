"""Research probe, not part of the pipeline: train one network that is not a preset yet.

    .venv/bin/python benchmarks/recipe_probe.py strided --epochs 5 --seed 0 --data <storage>/scaled_mnist.npz

`best` and `wide` are the presets' own networks, there to compare against. (`wide`
was a probe first: BENCHMARKS.md, *The champion of a sweep*.)

Trains the network on the sweep's training images (the same validation split,
SWEEP_VALIDATION_SEED), with Adam and cosine decay like `best`, measures batch
normalisation's statistics again as candidates do (ml/model/batch_norm.py), then
prints its validation and test accuracy (before and after that step) and its
training seconds, and saves its class probabilities for both (`--out`, .npz with
`val` and `test`) so they can be averaged with a sweep's candidates. It answers
"is this recipe worth a preset?" in minutes; one that is becomes a preset
(ml/model/presets.py, architectures.py) and is then measured by a sweep
(benchmarks/champion.py).

Faster and looser than a candidate's training: tf.data shuffles, there is no
checkpoint, and op determinism is off, so two runs differ in the last digits.
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
    args = parser.parse_args(argv)

    data = np.load(args.data, allow_pickle=False)
    images, labels = data["train_images"], data["train_labels"]
    test_images, test_labels = data["test_images"], data["test_labels"]
    train, validation = validation_split(len(images), VALIDATION_FRACTION, SWEEP_VALIDATION_SEED)

    keras.utils.set_random_seed(args.seed)
    model = keras.Sequential([keras.Input((28, 28)), layers.Reshape((28, 28, 1)), *NETWORKS[args.network](args.seed)])
    steps = math.ceil(len(train) / args.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(args.learning_rate, steps * args.epochs)
    model.compile(keras.optimizers.Adam(schedule), "sparse_categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution=steps_per_call(steps))  # fmt: skip
    batches = (
        tf.data.Dataset.from_tensor_slices((images[train], labels[train]))
        .shuffle(len(train), seed=args.seed)
        .batch(args.batch_size)
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
        f"{args.network} epochs={args.epochs} seed={args.seed} parameters={model.count_params()} "
        f"validation={validation_accuracy:.4f} test={test_accuracy:.4f} training={seconds:.0f} s "
        f"(before batch normalisation was measured again: validation={validation_before:.4f} test={test_before:.4f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
