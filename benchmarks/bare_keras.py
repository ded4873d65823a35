"""The pipeline's default run as one plain Keras script, without Dagster: the baseline of benchmarks/run.py.

Same data (the MNIST IDX files of the cache), the same seeded validation split,
network, optimizer and hyperparameters (benchmarks/run.py passes the
pipeline's defaults), and the same products: the trained model (.keras), the
test metrics (JSON), the predictions table (Parquet) and the report's figures
(PNG, drawn by the pipeline's own Dagster-free plotting code). It prints its
measurements as one JSON object on the last line of stdout.

    python benchmarks/bare_keras.py --cache-dir DIR --out DIR --epochs 10 --batch-size 32 \\
        --optimizer sgd --learning-rate 0.01 --validation-fraction 0.1 --seed 0 [--steps-per-execution 8]

By default it keeps Keras's defaults, as the tutorial writes them (one training
step per call into TensorFlow). `--steps-per-execution N` is the one Keras
setting the pipeline tunes too (it runs 8 steps per call for the default
recipe): with it, the script is as tuned as the pipeline's training settings,
and what still differs is the pipeline's own batch loop (model/training.py).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

PREDICT_BATCH_SIZE = 1000


def read_idx(path: Path) -> np.ndarray:
    """An uncompressed unsigned-byte IDX file as a uint8 array."""
    raw = path.read_bytes()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_scaled(cache_dir: Path) -> dict[str, np.ndarray]:
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(cache_dir / f"{prefix}-images-idx3-ubyte").astype(np.float32)
        images /= np.float32(255.0)
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = read_idx(cache_dir / f"{prefix}-labels-idx1-ubyte")
    return arrays


def split_indices(num_examples: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices: a seeded shuffle with `fraction` held out."""
    num_validation = int(round(num_examples * fraction))
    order = np.random.default_rng(seed).permutation(num_examples)
    return np.sort(order[num_validation:]), np.sort(order[:num_validation])


def build_model(seed: int):
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            layers.Reshape((28, 28, 1)),
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ],
        name="tutorial_convnet",
    )


def compile_model(model, optimizer: str, learning_rate: float, steps_per_execution: int) -> None:
    import keras

    optimizers = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam}
    model.compile(optimizer=optimizers[optimizer](learning_rate=learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution=steps_per_execution)


def fit(model, images, labels, train_idx, val_idx, *, epochs: int, batch_size: int, seed: int) -> dict[str, list[float]]:
    """Keras's own fit on the NumPy arrays (it shuffles each epoch); the per-epoch history."""
    import keras

    keras.utils.set_random_seed(seed)
    fitted = model.fit(
        images[train_idx], labels[train_idx],
        epochs=epochs, batch_size=batch_size,
        validation_data=(images[val_idx], labels[val_idx]), verbose=0,
    )
    return {name: [float(v) for v in values] for name, values in fitted.history.items()}


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """The data and the training recipe, shared with training_loops.py so both scripts train the same thing."""
    parser.add_argument("--cache-dir", type=Path, required=True, help="directory of the four uncompressed IDX files")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--optimizer", choices=["sgd", "adam"], required=True)
    parser.add_argument("--learning-rate", type=float, required=True)
    parser.add_argument("--validation-fraction", type=float, required=True)
    parser.add_argument("--seed", type=int, required=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_recipe_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="directory for the model, metrics, table and figures")
    parser.add_argument("--steps-per-execution", type=int, default=1,
                        help="training steps per call into TensorFlow, Keras's steps_per_execution (default: 1, Keras's default)")
    args = parser.parse_args(argv)
    if args.steps_per_execution < 1:
        parser.error(f"--steps-per-execution expects a whole number of at least 1; found {args.steps_per_execution}")

    from mnist_pipeline.ml.data.dataset import DigitDataset
    from mnist_pipeline.ml.evaluation.metrics import confusion_matrix
    from mnist_pipeline.ml.evaluation.predictions import build_predictions_table
    from mnist_pipeline.ml.reports.report import render_plots

    data = load_scaled(args.cache_dir)
    images, labels = data["train_images"], data["train_labels"]
    train_idx, val_idx = split_indices(len(labels), args.validation_fraction, args.seed)

    model = build_model(args.seed)
    compile_model(model, args.optimizer, args.learning_rate, args.steps_per_execution)
    started, started_cpu = time.perf_counter(), time.process_time()
    history = fit(model, images, labels, train_idx, val_idx, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    training_seconds = time.perf_counter() - started
    training_cpu_seconds = time.process_time() - started_cpu

    test_loss, test_accuracy = model.evaluate(
        data["test_images"], data["test_labels"], batch_size=PREDICT_BATCH_SIZE, verbose=0
    )
    started = time.perf_counter()
    probabilities = model.predict(data["test_images"], batch_size=PREDICT_BATCH_SIZE, verbose=0)
    table = build_predictions_table(probabilities, data["test_labels"])
    prediction_seconds = time.perf_counter() - started
    metrics = {
        "test_loss": float(test_loss),
        "test_accuracy": float(test_accuracy),
        "confusion_matrix": confusion_matrix(data["test_labels"], table["predicted_label"].to_numpy()).tolist(),
    }

    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / "trained_model.keras")
    (args.out / "evaluation_metrics.json").write_text(json.dumps(metrics))
    table.to_parquet(args.out / "predictions_table.parquet", index=False)
    figures = render_plots(DigitDataset(**data), history, metrics, table)
    for name, png in figures.items():
        (args.out / f"{name}.png").write_bytes(png)

    print(json.dumps({
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        "final_val_accuracy": history["val_accuracy"][-1],
        "training_seconds": training_seconds,
        "training_cpu_seconds": training_cpu_seconds,
        "steps_per_execution": args.steps_per_execution,
        "images_per_second": len(train_idx) * args.epochs / training_seconds,
        "prediction_seconds": prediction_seconds,
        "train_images": len(train_idx),
    }))


if __name__ == "__main__":
    main()
