"""CPU seconds a cold `mnist-pipeline run` spends outside training, for one or more checkouts side by side.

    .venv/bin/python benchmarks/outside_training.py                                  # this checkout, 1 epoch, 5 rounds
    .venv/bin/python benchmarks/outside_training.py --tree /tmp/before --tree .      # an earlier commit against this one
    .venv/bin/python benchmarks/outside_training.py --baselines --rounds 3           # with the tuned bare script and Dagster's floor

Each run is the benchmark's cold `mnist-pipeline run` (benchmarks/run.py: fresh DAGSTER_HOME
and storage, MNIST from the cache, in its own process), with the project code of the checkout
it names. Its CPU time (user + system, waited-for children included) minus the CPU time inside
training (benchmarks/timed_run.py) is the CPU cost of everything else: Dagster, storage,
hashing, checks, evaluation, plots. CPU time rather than wall time, because on a shared
machine wall time mostly says what else was running; still the median of rounds that
alternate which checkout goes first, as CPU time also grows under contention.

To compare with an earlier commit: `mkdir /tmp/before && git archive COMMIT | tar -x -C /tmp/before`.
`--baselines` also runs, in every round, the bare Keras script at the pipeline's steps per
call (CPU time minus its training's) and benchmarks/dagster_floor.py (the pipeline's job with
empty steps, all of its CPU time): the CPU-time counterparts of the comparison's
"outside training" target, for a machine too busy for wall times.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # noqa: E402  (the benchmark's own runs)
    OUTSIDE_TRAINING_FACTOR,
    REPO,
    default_recipe,
    pipeline_steps_per_call,
    rotated,
    run_bare,
    run_dagster_floor,
    run_pipeline,
)


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
    parser.add_argument("--baselines", action="store_true",
                        help="also run the tuned bare Keras script and Dagster's floor in every round")
    args = parser.parse_args(argv)
    trees = [tree.resolve() for tree in (args.tree or [REPO])]
    missing = [str(tree) for tree in trees if not (tree / "mnist_pipeline" / "cli" / "main.py").is_file()]
    if missing:
        parser.error(f"--tree expects checkouts of the project; found no mnist_pipeline/cli/main.py in {missing}")
    if args.rounds < 1 or args.epochs < 1:
        parser.error(f"--rounds and --epochs expect at least 1; found {args.rounds} and {args.epochs}")

    sides: list = [*trees, *(["bare script", "Dagster floor"] if args.baselines else [])]
    runs: dict = {side: [] for side in sides}
    recipe = default_recipe(args.epochs)
    with tempfile.TemporaryDirectory(prefix="mnist-outside-training-") as work:
        for round_number in range(args.rounds):
            for side in rotated(sides, round_number):
                name = f"{sides.index(side)}-{round_number}"
                if side == "bare script":
                    run = run_bare(Path(work), cache_dir(), recipe, name, pipeline_steps_per_call(cache_dir(), recipe))
                elif side == "Dagster floor":
                    run = {**run_dagster_floor(Path(work), name)}
                    run["outside_training_cpu_s"] = run["cpu_s"]
                else:
                    run = measure(side, args.epochs, Path(work), name)
                runs[side].append(run)
                print(f"round {round_number + 1}: {side}: CPU {run['cpu_s']:.2f} s, outside training "
                      f"{run['outside_training_cpu_s']:.2f} s CPU", file=sys.stderr)
    print(f"{args.epochs} epoch(s), {args.rounds} round(s); load average at the end: "
          f"{' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    medians = {}
    for side, side_runs in runs.items():
        outside = [run["outside_training_cpu_s"] for run in side_runs]
        medians[side] = statistics.median(outside)
        print(f"{side}: CPU outside training median {medians[side]:.2f} s "
              f"(by round: {', '.join(f'{value:.2f}' for value in outside)}); whole run median "
              f"{statistics.median(run['cpu_s'] for run in side_runs):.2f} s CPU")
    if args.baselines:
        bare = medians["bare script"]
        for tree in trees:
            print(f"{tree}: x{medians[tree] / bare:.2f} the bare script's CPU outside training "
                  f"(the wall-time target is x{OUTSIDE_TRAINING_FACTOR}); Dagster's floor is x{medians['Dagster floor'] / bare:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
