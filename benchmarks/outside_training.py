"""CPU seconds a cold `mnist-pipeline run` spends outside training, for one or more checkouts side by side.

    .venv/bin/python benchmarks/outside_training.py                                  # this checkout, 1 epoch, 5 rounds
    .venv/bin/python benchmarks/outside_training.py --tree /tmp/before --tree .      # an earlier commit against this one

Each run is the benchmark's cold `mnist-pipeline run` (benchmarks/run.py: fresh DAGSTER_HOME
and storage, MNIST from the cache, in its own process), with the project code of the checkout
it names. Its CPU time (user + system, waited-for children included) minus the CPU time inside
training (benchmarks/timed_run.py) is the CPU cost of everything else: Dagster, storage,
hashing, checks, evaluation, plots. CPU time rather than wall time, because on a shared
machine wall time mostly says what else was running; still the median of rounds that
alternate which checkout goes first, as CPU time also grows under contention.

To compare with an earlier commit: `mkdir /tmp/before && git archive COMMIT | tar -x -C /tmp/before`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import REPO, rotated, run_pipeline  # noqa: E402  (the benchmark's own cold run)


def cache_dir() -> Path:
    from mnist_pipeline.paths import default_cache_dir

    return Path(os.environ.get("MNIST_CACHE_DIR") or default_cache_dir())


def measure(tree: Path, epochs: int, work: Path, name: str) -> dict:
    measured, details = run_pipeline(work, cache_dir(), name, ["--epochs", str(epochs)], tree=tree)
    timings = details["timings"]
    return {
        "cpu_s": measured.cpu_s,
        "wall_s": measured.wall_s,
        "training_cpu_s": timings["training_cpu_s"],
        "outside_training_cpu_s": measured.cpu_s - timings["training_cpu_s"],
        "outside_training_wall_s": measured.wall_s - timings["training_wall_s"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("--tree", type=Path, action="append", help="a checkout of the project (default: this one); repeat to compare")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of each run (default: 1)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, each running every checkout once (default: 5)")
    args = parser.parse_args(argv)
    trees = [tree.resolve() for tree in (args.tree or [REPO])]
    missing = [str(tree) for tree in trees if not (tree / "mnist_pipeline" / "cli.py").is_file()]
    if missing:
        parser.error(f"--tree expects checkouts of the project; found no mnist_pipeline/cli.py in {missing}")
    if args.rounds < 1 or args.epochs < 1:
        parser.error(f"--rounds and --epochs expect at least 1; found {args.rounds} and {args.epochs}")

    runs: dict[Path, list[dict]] = {tree: [] for tree in trees}
    with tempfile.TemporaryDirectory(prefix="mnist-outside-training-") as work:
        for round_number in range(args.rounds):
            for tree in rotated(trees, round_number):
                run = measure(tree, args.epochs, Path(work), f"{trees.index(tree)}-{round_number}")
                runs[tree].append(run)
                print(f"round {round_number + 1}: {tree}: CPU {run['cpu_s']:.2f} s, outside training "
                      f"{run['outside_training_cpu_s']:.2f} s CPU, {run['outside_training_wall_s']:.2f} s wall", file=sys.stderr)
    print(f"{args.epochs} epoch(s), {args.rounds} round(s); load average at the end: "
          f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    for tree, tree_runs in runs.items():
        outside = [run["outside_training_cpu_s"] for run in tree_runs]
        print(f"{tree}: CPU outside training median {statistics.median(outside):.2f} s "
              f"(by round: {', '.join(f'{value:.2f}' for value in outside)}); whole run median "
              f"{statistics.median(run['cpu_s'] for run in tree_runs):.2f} s CPU; wall outside training median "
              f"{statistics.median(run['outside_training_wall_s'] for run in tree_runs):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
