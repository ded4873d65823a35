"""How long a process that has done a pipeline's kind of work takes to exit: with the interpreter's teardown, and without it.

    .venv/bin/python benchmarks/process_exit.py [--rounds 5]

Each round starts two child processes, one per way of exiting, in alternating order. A child
imports what a `mnist-pipeline run` imports (TensorFlow, Keras, Dagster and the definitions,
matplotlib, pandas), builds the tutorial's network and predicts once, then returns from its
command and exits either as Python does by default (`sys.exit`) or as the `mnist-pipeline`
command does (`exit_without_teardown`, cli/process_exit.py). The child writes the wall-clock
time at which its command returned; the parent notes when the child has exited. The difference
is the time the exit costs, which the user waits for and which a run's wall time includes.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import sys, time
from pathlib import Path
from mnist_pipeline.cli.process_exit import exit_without_teardown

def command():
    import tensorflow as tf, keras, matplotlib.pyplot, pandas
    import mnist_pipeline.definitions
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Reshape((28, 28, 1)),
                              keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(2),
                              keras.layers.Flatten(), keras.layers.Dense(128, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.predict(tf.zeros((100, 28, 28)), verbose=0)
    Path(sys.argv[2]).write_text(repr(time.time()))
    return 0

if sys.argv[1] == "without-teardown":
    exit_without_teardown(command)
sys.exit(command())
"""


def exit_seconds(way: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        returned_at = Path(tmp) / "returned"
        subprocess.run([sys.executable, "-c", CHILD, way, str(returned_at)], cwd=REPO, check=True, capture_output=True)
        exited_at = time.time()
        return exited_at - float(returned_at.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ways = ["teardown", "without-teardown"]
    seconds: dict[str, list[float]] = {way: [] for way in ways}
    for round_number in range(args.rounds):
        for way in ways if round_number % 2 == 0 else reversed(ways):
            seconds[way].append(exit_seconds(way))
    print("| exit after the command returned | median s | by round |")
    print("|---|---|---|")
    labels = {"teardown": "Python's default (sys.exit)", "without-teardown": "mnist-pipeline's (exit_without_teardown)"}
    for way in ways:
        rounds = ", ".join(f"{value:.2f}" for value in seconds[way])
        print(f"| {labels[way]} | {statistics.median(seconds[way]):.2f} | {rounds} |")


if __name__ == "__main__":
    main()
