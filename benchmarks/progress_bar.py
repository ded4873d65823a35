"""Does the command line's progress bar slow training? `mnist-pipeline run` with the bar and without it.

    .venv/bin/python benchmarks/progress_bar.py [--rounds 3] [--epochs 3] [--train-images 20000]

Each round runs a cold `mnist-pipeline run` (fresh DAGSTER_HOME and storage) twice on the
same synthetic data set: once under a pseudo-terminal (`script`), where it draws the bar,
and once with its output to a file, where it prints plain lines; the order alternates.
Reported per mode, as medians: wall time, CPU time of the whole process tree (user + sys,
`script` included) and the `training_seconds` of the trained model (from --json).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mnist_pipeline_tests.synthetic import make_dataset, write_idx_dir  # noqa: E402


def run_once(work: Path, data_dir: Path, mode: str, epochs: int) -> tuple[float, float, float]:
    home = work / mode
    shutil.rmtree(home, ignore_errors=True)
    (home / "dagster_home").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "dagster.yaml", home / "dagster_home" / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home / "dagster_home"),
        "MNIST_PIPELINE_HOME": str(home),
        "MNIST_DATA_DIR": str(data_dir),
        "MNIST_PIPELINE_ENV": "offline",
        "MNIST_MIN_TEST_ACCURACY": "0",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "TERM": "xterm-256color",
        "COLUMNS": "160",
    }
    summary = home / "summary.json"
    command = [str(Path(sys.executable).with_name("mnist-pipeline")), "run", "--epochs", str(epochs), "--json", str(summary)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with open(home / "output.txt", "w") as output:
        if mode == "bar":
            subprocess.run(["script", "-q", "-e", "-c", " ".join(command), "/dev/null"], env=env, stdout=output, check=True)
        else:
            subprocess.run(command, env=env, stdout=output, stderr=subprocess.STDOUT, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads(summary.read_text())["metrics"]["training_seconds"]


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-images", type=int, default=20_000)
    args = parser.parse_args()
    if shutil.which("script") is None:
        sys.exit("needs `script` (util-linux) to run the command under a pseudo-terminal")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data_dir = write_idx_dir(make_dataset(num_train=args.train_images, num_test=1000), work / "idx")
        results: dict[str, list[tuple[float, float, float]]] = {"bar": [], "plain": []}
        for round_number in range(1, args.rounds + 1):
            for mode in ("bar", "plain") if round_number % 2 else ("plain", "bar"):
                results[mode].append(run_once(work, data_dir, mode, args.epochs))
                wall, cpu, training = results[mode][-1]
                print(f"round {round_number} {mode:<5}  wall {wall:6.1f} s  cpu {cpu:6.1f} s  training {training:6.2f} s", flush=True)
    print(f"\nmedians of {args.rounds} rounds, {args.train_images} synthetic images, {args.epochs} epochs:")
    for mode, rows in results.items():
        print(
            f"  {mode:<5}  wall {median([r[0] for r in rows]):6.1f} s  cpu {median([r[1] for r in rows]):6.1f} s  "
            f"training {median([r[2] for r in rows]):6.2f} s"
        )


if __name__ == "__main__":
    main()
