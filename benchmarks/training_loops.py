"""Training alone, with Keras's batch loop or the pipeline's, at a given number of steps per call into TensorFlow.

    python benchmarks/training_loops.py --loop keras|pipeline --steps-per-execution N --cache-dir DIR \\
        --checkpoint-dir DIR --epochs 10 --batch-size 32 --optimizer sgd --learning-rate 0.01 \\
        --validation-fraction 0.1 --seed 0

Where the pipeline's training speed comes from, measured rather than assumed
(the `training` part of benchmarks/run.py runs the four combinations):

  --loop keras     the bare script's training (benchmarks/bare_keras.py): Keras's `fit` on the
                   NumPy arrays, which slices and shuffles them itself
  --loop pipeline  the pipeline's training function, model/training.py's `fit_resumably`, as the
                   trained_model asset calls it: TensorFlow's op determinism on, one tensor copy
                   of the images, each batch gathered from it by tf.gather, tf.data autotuning
                   off, two batches prefetched, a checkpoint after every epoch

Both train the same network from the same initial weights, on the same data and
split. `--steps-per-execution` sets Keras's steps_per_execution; for the
pipeline's loop it caps the number fit_resumably picks (its MAX_STEPS_PER_CALL),
and must be the number it then picks. Only the training call is timed. The last
line of stdout is one JSON object: wall and CPU seconds of training, and a
SHA-256 of the final weights (equal weights at 1 and N steps per call show that
the updates are the same).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

BENCHMARKS = Path(__file__).resolve().parent


def load_bare_script():
    spec = importlib.util.spec_from_file_location("bare_keras", BENCHMARKS / "bare_keras.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def weights_sha256(model) -> str:
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", choices=["keras", "pipeline"], required=True)
    parser.add_argument("--steps-per-execution", type=int, required=True)
    parser.add_argument("--checkpoint-dir", type=Path, required=True, help="the pipeline loop's checkpoint directory")
    bare = load_bare_script()
    bare.add_recipe_arguments(parser)
    args = parser.parse_args(argv)

    data = bare.load_scaled(args.cache_dir)
    images, labels = data["train_images"], data["train_labels"]
    train_idx, val_idx = bare.split_indices(len(labels), args.validation_fraction, args.seed)

    if args.loop == "keras":
        model = bare.build_model(args.seed)
        bare.compile_model(model, args.optimizer, args.learning_rate, args.steps_per_execution)

        def train():
            return model, bare.fit(model, images, labels, train_idx, val_idx,
                                   epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    else:
        from mnist_pipeline.ml.model import training
        from mnist_pipeline.ml.model.architectures import build_network
        from mnist_pipeline.ml.model.network import compile_model

        training.MAX_STEPS_PER_CALL = args.steps_per_execution
        picked = training.steps_per_call(math.ceil(len(train_idx) / args.batch_size))
        if picked != args.steps_per_execution:
            parser.error(f"--steps-per-execution expects a divisor of the epoch's steps for the pipeline loop; "
                         f"found {args.steps_per_execution}, for which it picks {picked}")
        model = compile_model(build_network("tutorial", args.seed), args.optimizer, args.learning_rate)

        def train():
            return training.fit_resumably(
                model, images, labels, train_idx, val_idx, epochs=args.epochs, batch_size=args.batch_size,
                seed=args.seed, checkpoint_dir=args.checkpoint_dir, log=lambda message: None,
            )

    started, started_cpu = time.perf_counter(), time.process_time()
    trained, history = train()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - started_cpu
    print(json.dumps({
        "loop": args.loop,
        "steps_per_execution": args.steps_per_execution,
        "training_seconds": seconds,
        "training_cpu_seconds": cpu_seconds,
        "images_per_second": len(train_idx) * args.epochs / seconds,
        "final_val_accuracy": history["val_accuracy"][-1],
        "weights_sha256": weights_sha256(trained),
    }))


if __name__ == "__main__":
    sys.exit(main())
