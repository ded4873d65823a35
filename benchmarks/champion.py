"""Benchmark: one sweep on real MNIST from scratch, and the champion it chooses.

    .venv/bin/python benchmarks/champion.py --preset best --seeds 0-7                 # one at a time
    .venv/bin/python benchmarks/champion.py --preset best --seeds 10-17 --parallel 2   # another sweep, 2 at once
    .venv/bin/python benchmarks/champion.py --preset fast --seeds 0-2 --json out.json  # a quick one
    .venv/bin/python benchmarks/champion.py --report /tmp/champion-benchmark-XXXX        # the top-k table and shared test errors of a sweep done
    .venv/bin/python benchmarks/champion.py --report WORK --with-probe probe.npz        # and a recipe probe's network as one more member
    .venv/bin/python benchmarks/champion.py --pool WORK --pool WORK2 --pool WORK3        # several sweeps' candidates as one pool

Runs `mnist-pipeline sweep` in its own process with a fresh DAGSTER_HOME and storage,
MNIST from the pipeline's cache (filled once before anything is timed), then reads
what it left: the leaderboard (`mnist-pipeline leaderboard --json`) and the champion's
record. Prints one markdown row with the issue's targets (champion test accuracy at
least 99.65%, at most 60 minutes of training), the sum of the candidates' training
seconds, the sweep's wall time, and the champion's time to predict the 10,000 test
images (median of 3 after a warm-up, in this process); then, for every k, the
accuracy of the mean of the top k candidates on validation (what the champion
chose k by) and on test (for the record). Training times need a quiet
machine: the load average before and after is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from run import ensure_cache, library_versions, load_average, machine_description  # noqa: E402  (benchmarks/run.py)

TARGET_TEST_ACCURACY = 0.9965
TARGET_TRAINING_SECONDS = 60 * 60
PREDICT_ROUNDS = 3


def sweep_env(work: Path, cache_dir: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("MNIST_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(work / "dagster_home"),
        MNIST_PIPELINE_HOME=str(work / "home"),
        MNIST_CACHE_DIR=str(cache_dir),
        MNIST_PIPELINE_ENV="offline",  # MNIST from the filled cache: nothing to download while timing
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    (work / "dagster_home").mkdir(parents=True, exist_ok=True)
    return env


def pipeline(env: dict[str, str], *args: str, log: Path | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mnist_pipeline", *args]
    if log is None:
        return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    with open(log, "w") as out:
        return subprocess.run(command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, text=True)


def test_set(work: Path):
    """The sweep's 10,000 test images and their labels, from its scaled_mnist."""
    import numpy as np

    from mnist_pipeline.storage.arrays import load_npz_memory_mapped

    data = load_npz_memory_mapped(work / "home" / "storage" / "scaled_mnist.npz")
    return np.asarray(data["test_images"]), np.asarray(data["test_labels"])


def load_version(work: Path, version: str):
    import keras

    return keras.models.load_model(work / "home" / "storage" / "model_registry" / version / "model.keras", safe_mode=True)


def prediction_seconds(work: Path, version: str) -> tuple[float, float]:
    """Median seconds for the champion to predict the 10,000 test images, and its accuracy on them (a cross-check)."""
    import numpy as np

    from mnist_pipeline.ml.evaluation.evaluate import predict_probabilities

    model = load_version(work, version)
    images, labels = test_set(work)
    predict_probabilities(model, images[:1000])  # warm-up: graph tracing is not prediction
    times = []
    for _ in range(PREDICT_ROUNDS):
        started = time.perf_counter()
        probabilities = predict_probabilities(model, images)
        times.append(time.perf_counter() - started)
    return statistics.median(times), float(np.mean(probabilities.argmax(axis=1) == labels))


def sweep_done(work: Path, flag: str) -> tuple[list[dict], dict] | None:
    """The leaderboard and the champion's record of the sweep this benchmark ran in `work`; None, with the error
    (naming `flag` and the directory) printed, when there is none."""
    from mnist_pipeline.paths import default_cache_dir

    listed = pipeline(sweep_env(work, default_cache_dir()), "leaderboard", "--json")
    champion_record = work / "home" / "storage" / "champion_model.json"
    if listed.returncode != 0 or not champion_record.is_file():
        print(f"benchmarks/champion.py: {flag} {work}: expected the work directory of a sweep this benchmark ran "
              f"(a leaderboard and {champion_record}); found none. {listed.stderr.strip()}", file=sys.stderr)
        return None
    return json.loads(listed.stdout), json.loads(champion_record.read_text())


@dataclass(frozen=True)
class Weighed:
    """The candidates a sweep's champion weighed (leaderboard order), each loaded once, with its recipe."""

    members: list
    recipes: list[dict]


def weighed_candidates(work: Path, board: list[dict], champion: dict) -> Weighed:
    rows = board[: len(champion["validation_accuracy_by_size"])]
    registry = work / "home" / "storage" / "model_registry"
    return Weighed(
        members=[load_version(work, row["model_version"]) for row in rows],
        recipes=[json.loads((registry / row["model_version"] / "manifest.json").read_text())["hyperparameters"] for row in rows],
    )


def training_set(work: Path):
    """The sweep's training images (memory-mapped) and labels, from its scaled_mnist."""
    from mnist_pipeline.storage.arrays import load_npz_memory_mapped

    data = load_npz_memory_mapped(work / "home" / "storage" / "scaled_mnist.npz")
    return data["train_images"], data["train_labels"]


def rule_on_validation(work: Path, weighed: Weighed) -> tuple[int, dict[int, float]]:
    """The k today's rule (ml/model/ensemble.py) chooses for a sweep done, and each smaller k's McNemar p against
    the largest, by the champion asset's own function: for a sweep whose champion an earlier rule chose (--report)."""
    from mnist_pipeline.ml.model.ensemble import choose_on_validation

    chosen = choose_on_validation(weighed.members, weighed.recipes, *training_set(work))
    return chosen.size, chosen.p_value_against_largest


def figures_on_test(work: Path, members: list) -> tuple[dict[int, float], dict[str, int], list]:
    """On the test images, for the candidates the champion weighed (leaderboard order): the accuracy
    of the mean of the top k for each k, the digits they share as errors, and each one's class probabilities.

    For the record only: the champion chooses k on validation (ml/model/ensemble.py);
    the test accuracy of each k shows a reader whether a shortfall comes from the
    choice of k or from the candidates themselves.
    """
    from mnist_pipeline.ml.evaluation.evaluate import predict_probabilities
    from mnist_pipeline.ml.model.ensemble import accuracy_by_size

    images, labels = test_set(work)
    member_probabilities = [predict_probabilities(member, images) for member in members]
    return accuracy_by_size(member_probabilities, labels), shared_test_errors(member_probabilities, labels), member_probabilities


def shared_test_errors(member_probabilities, labels) -> dict[str, int]:
    """How many test digits the weighed candidates miss: every one of them, at least half, any.

    Averaging can only fix a digit that some members get right; the digits every
    member misses bound what a mean of these candidates can reach.
    """
    import numpy as np

    wrong = np.stack([probabilities.argmax(axis=1) != labels for probabilities in member_probabilities])
    return {
        "every": int(wrong.all(axis=0).sum()),
        "at_least_half": int((2 * wrong.sum(axis=0) >= len(wrong)).sum()),
        "any": int(wrong.any(axis=0).sum()),
        "mean_of_all": int((np.mean(member_probabilities, axis=0).argmax(axis=1) != labels).sum()),
    }


def read_probe(path: Path, validation_images: int, test_images: int):
    """The class probabilities `benchmarks/recipe_probe.py --out` saved: (validation, test), checked against the sweep."""
    import numpy as np

    try:
        saved = np.load(path, allow_pickle=False)
        validation, test = saved["val"], saved["test"]
    except (OSError, ValueError, KeyError, IndexError) as error:  # IndexError: a .npy, one array without names
        raise SystemExit(f"--with-probe {path}: expected the .npz of `recipe_probe.py --out` (arrays val and test), found: {error}")
    expected = {"val": (validation_images, 10), "test": (test_images, 10)}
    for name, array in (("val", validation), ("test", test)):
        if array.shape != expected[name]:
            raise SystemExit(
                f"--with-probe {path}: expected {name} of shape {expected[name]} (this sweep's "
                f"{'shared validation' if name == 'val' else 'test'} images x 10 classes), found {array.shape}"
            )
    return validation, test


def accuracy_of_mean(member_probabilities, labels) -> float:
    """The accuracy of the mean of the members' class probabilities."""
    import numpy as np

    return float(np.mean(np.mean(member_probabilities, axis=0).argmax(axis=1) == labels))


def probe_as_member(members_validation, members_test, probe_validation, probe_test, validation_labels, test_labels) -> dict:
    """What one more member (a probe's network) does: alone, and added to the mean of the weighed candidates;
    and how many of the test digits every candidate misses it gets right (only those can averaging fix)."""
    import numpy as np

    missed_by_every = np.all([p.argmax(axis=1) != test_labels for p in members_test], axis=0)
    return {
        "alone": (accuracy_of_mean([probe_validation], validation_labels), accuracy_of_mean([probe_test], test_labels)),
        "without": (accuracy_of_mean(members_validation, validation_labels), accuracy_of_mean(members_test, test_labels)),
        "with": (accuracy_of_mean([*members_validation, probe_validation], validation_labels),
                 accuracy_of_mean([*members_test, probe_test], test_labels)),  # fmt: skip
        "missed_by_every": int(missed_by_every.sum()),
        "of_those_right": int((missed_by_every & (probe_test.argmax(axis=1) == test_labels)).sum()),
    }


def shared_validation(work: Path, weighed: Weighed):
    """The training images every weighed candidate held out, and their labels (ml/model/ensemble.py's rule)."""
    import numpy as np

    from mnist_pipeline.ml.model.ensemble import shared_validation_indices

    train_images, train_labels = training_set(work)
    held_out = shared_validation_indices(len(train_labels), weighed.recipes)
    return np.asarray(train_images[held_out]), np.asarray(train_labels[held_out])


def report_probes(weighed: Weighed, validation, members_test: list, test_labels, probes: list) -> None:
    """Each probe's network as one more member of the weighed candidates' mean (--with-probe). `validation`: the
    shared validation images and labels; `members_test`: the candidates' class probabilities of the test images
    (figures_on_test); `probes`: (path, read_probe's arrays)."""
    from mnist_pipeline.ml.evaluation.evaluate import predict_probabilities

    validation_images, validation_labels = validation
    members_validation = [predict_probabilities(member, validation_images) for member in weighed.members]
    print(f"\nA probe's network as one more member of the mean of the {len(weighed.members)} weighed candidates (validation / test):")
    for path, (probe_validation, probe_test) in probes:
        figures = probe_as_member(members_validation, members_test, probe_validation, probe_test, validation_labels, test_labels)
        print_probe(path.name, figures, len(weighed.members))


def print_probe(name: str, figures: dict, members: int) -> None:
    alone, without, with_it = figures["alone"], figures["without"], figures["with"]
    print(f"{name}: alone {alone[0]:.2%} / {alone[1]:.2%}; the mean of {members} {without[0]:.2%} / {without[1]:.2%}, "
          f"with it {with_it[0]:.2%} / {with_it[1]:.2%}; of the {figures['missed_by_every']} test digits every "
          f"candidate misses, it gets {figures['of_those_right']} right")


POOL_DRAWS = 1000


def pooled_means(members_validation: list, members_test: list, validation_labels, test_labels, size: int,
                 draws: int = POOL_DRAWS, seed: int = 0) -> dict:  # fmt: skip
    """Means of `size` members drawn at random (without replacement) from a pool of several sweeps' candidates:
    their test accuracy's mean and standard deviation over `draws` draws, and the share of draws at or above the
    target. With `size` the whole pool, one draw: the mean of every member, which more seeds of the same recipes
    approach and do not pass."""
    import numpy as np

    validation, test = np.stack(members_validation), np.stack(members_test)
    rng = np.random.default_rng(seed)
    chosen = [np.arange(len(test))] if size == len(test) else [rng.choice(len(test), size, replace=False) for _ in range(draws)]
    on_test = np.array([accuracy_of_mean(test[members], test_labels) for members in chosen])
    on_validation = np.array([accuracy_of_mean(validation[members], validation_labels) for members in chosen])
    return {
        "size": size,
        "draws": len(chosen),
        "validation": float(on_validation.mean()),
        "test": float(on_test.mean()),
        "test_sd": float(on_test.std()),
        "share_at_target": float(np.mean(on_test >= TARGET_TEST_ACCURACY)),
    }


def pool_sweeps(works: list[Path]) -> int:
    """--pool: the weighed candidates of several sweeps done, as one pool of members (their validation images must be
    the same: sweeps of one data set and validation split)."""
    import numpy as np

    from mnist_pipeline.ml.evaluation.evaluate import predict_probabilities

    members_validation, members_test, sizes, labels = [], [], [], None
    for work in works:
        done = sweep_done(work, "--pool")
        if done is None:
            return 1
        weighed = weighed_candidates(work, *done)
        (validation_images, validation_labels), (test_images, test_labels) = shared_validation(work, weighed), test_set(work)
        if labels is not None and not (np.array_equal(labels[0], validation_labels) and np.array_equal(labels[1], test_labels)):
            print(f"benchmarks/champion.py: --pool {work}: expected the validation and test labels of {works[0]} "
                  f"(sweeps of the same data and split), found others", file=sys.stderr)
            return 1
        labels = (validation_labels, test_labels)
        validation = [predict_probabilities(member, validation_images) for member in weighed.members]
        test = [predict_probabilities(member, test_images) for member in weighed.members]
        whole = pooled_means(validation, test, *labels, size=len(test))
        print(f"{work}: {len(test)} candidates, the mean of all {whole['validation']:.2%} / {whole['test']:.2%} (validation / test)")
        members_validation += validation
        members_test += test
        sizes.append(len(test))
    print(f"\nThe pool: {len(members_test)} candidates of {len(works)} sweeps; means of k of them drawn at random "
          f"(validation / test; {POOL_DRAWS} draws, the whole pool once):")
    print("| k | draws | validation | test | test, standard deviation | draws at 99.65% or above |")
    print("|---|---|---|---|---|---|")
    for size in sorted({*sizes, len(members_test)}):
        figures = pooled_means(members_validation, members_test, *labels, size=size)
        spread = f"{figures['test_sd'] * 100:.3f} points" if figures["draws"] > 1 else "(one draw)"
        print(f"| {size} | {figures['draws']} | {figures['validation']:.2%} | {figures['test']:.2%} | {spread} | "
              f"{figures['share_at_target']:.0%} |")
    return 0


def print_by_size(champion: dict, test_by_size: dict[int, float], p_values: dict[int, float] | None = None) -> None:
    """The top-k table: validation, McNemar's p of each k against the largest on validation (what chooses k:
    the champion's record, else `p_values` recomputed), and test (for the record)."""
    validation_by_size = {int(size): value for size, value in champion["validation_accuracy_by_size"].items()}
    recorded = champion.get("p_value_against_largest_by_size")
    p_values = {int(size): value for size, value in recorded.items()} if recorded is not None else p_values
    print("\nThe mean of the top k candidates (k is chosen on validation; test is for the record):")
    print("| k | " + " | ".join(str(size) for size in test_by_size) + " |")
    print("|---|" + "---|" * len(test_by_size))
    print("| validation | " + " | ".join(f"{validation_by_size[size]:.2%}" for size in test_by_size) + " |")
    if p_values is not None:
        print(f"| validation, p against k = {max(test_by_size)} | "
              + " | ".join(f"{p_values[size]:.2f}" if size in p_values else "" for size in test_by_size) + " |")
    print("| test | " + " | ".join(f"{accuracy:.2%}" for accuracy in test_by_size.values()) + " |")


def print_shared_errors(errors: dict[str, int], members: int) -> None:
    print(f"\nTest digits missed by the {members} weighed candidates: by every one {errors['every']}, "
          f"by at least half {errors['at_least_half']}, by any {errors['any']}; by the mean of all {errors['mean_of_all']}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", action="append", help="preset(s) of the grid (repeatable); default best")
    parser.add_argument("--seeds", help="as `mnist-pipeline sweep --seeds`: 0-7, 0,2,5 (required for a sweep)")
    parser.add_argument("--set", action="append", default=[], help="as `mnist-pipeline sweep --set`")
    parser.add_argument("--parallel", default="1", help="candidates trained at once (`sweep --parallel`)")
    parser.add_argument("--work", type=Path, help="directory for the sweep's homes (default: a new temporary one)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--report", type=Path, metavar="WORK", help="no sweep: print the top-k table and the shared test errors of the sweep in WORK")
    parser.add_argument(
        "--with-probe", action="append", type=Path, default=[], metavar="NPZ",
        help="with --report: also a recipe probe's network (its `recipe_probe.py --out` file) as one more member; repeatable",
    )
    parser.add_argument(
        "--pool", action="append", type=Path, default=[], metavar="WORK",
        help="no sweep: the weighed candidates of several sweeps done (repeat it) as one pool of members, and means drawn from it",
    )
    args = parser.parse_args(argv)
    if args.pool:
        if len(args.pool) < 2 or args.report is not None or args.seeds is not None:
            parser.error("--pool takes two or more sweeps done (--pool WORK --pool WORK2), without --report or --seeds")
        return pool_sweeps(args.pool)
    if args.with_probe and args.report is None:
        parser.error("--with-probe needs --report WORK (the sweep whose candidates the probe is added to)")

    from mnist_pipeline.paths import default_cache_dir

    cache_dir = default_cache_dir()
    if args.report is not None:
        done = sweep_done(args.report, "--report")
        if done is None:
            return 1
        board, champion = done
        weighed = weighed_candidates(args.report, board, champion)
        if args.with_probe:  # a probe file that does not fit is refused before any prediction
            validation, (_, test_labels) = shared_validation(args.report, weighed), test_set(args.report)
            probes = [(path, read_probe(path, len(validation[1]), len(test_labels))) for path in args.with_probe]
        test_by_size, errors, members_test = figures_on_test(args.report, weighed.members)
        size, p_values = rule_on_validation(args.report, weighed)
        print_by_size(champion, test_by_size, p_values)
        print(f"k by today's rule: {size}, test {test_by_size[size]:.2%} (the champion's: {champion['size']}, test {champion['test_accuracy']:.2%})")
        print_shared_errors(errors, len(weighed.members))
        if args.with_probe:
            report_probes(weighed, validation, members_test, test_labels, probes)
        return 0
    if args.seeds is None:
        parser.error("--seeds is required to run a sweep (only --report reads one done)")
    ensure_cache(cache_dir)
    work = args.work or Path(tempfile.mkdtemp(prefix="champion-benchmark-"))
    env = sweep_env(work, cache_dir)
    grid = [flag for preset in (args.preset or ["best"]) for flag in ("--preset", preset)]
    grid += ["--seeds", args.seeds, "--parallel", args.parallel, *[flag for value in args.set for flag in ("--set", value)]]
    load_before = load_average()
    started = time.perf_counter()
    swept = pipeline(env, "sweep", *grid, log=work / "sweep.log")
    wall = time.perf_counter() - started
    load_after = load_average()
    if swept.returncode != 0:
        print(f"benchmarks/champion.py: the sweep failed (exit {swept.returncode}); its output: {work / 'sweep.log'}", file=sys.stderr)
        return 1
    board = json.loads(pipeline(env, "leaderboard", "--json").stdout)
    champion = json.loads((work / "home" / "storage" / "champion_model.json").read_text())
    predict_s, predicted_accuracy = prediction_seconds(work, champion["model_version"])
    training_s = sum(row["training_seconds"] for row in board)
    weighed = weighed_candidates(work, board, champion)
    test_by_size, errors, _ = figures_on_test(work, weighed.members)
    figures = {
        "grid": " ".join(grid),
        "candidates": len(board),
        "members": champion["members"],
        "size": champion["size"],
        "best_candidate_test_accuracy": champion["best_candidate_test_accuracy"],
        "mean_candidate_test_accuracy": statistics.mean(row["test_accuracy"] for row in board),
        "champion_validation_accuracy": champion["validation_accuracy"],
        "champion_test_accuracy": champion["test_accuracy"],
        "champion_test_accuracy_recomputed": predicted_accuracy,
        "test_accuracy_by_size": test_by_size,
        "test_errors_of_weighed_candidates": errors,
        "training_seconds": training_s,
        "sweep_wall_seconds": wall,
        "predict_10000_seconds": predict_s,
        "load_before": load_before,
        "load_after": load_after,
        "machine": machine_description(),
        "work": str(work),
    }
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    accuracy_ok = champion["test_accuracy"] >= TARGET_TEST_ACCURACY
    time_ok = training_s <= TARGET_TRAINING_SECONDS
    print(f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine_description()}.")
    print(library_versions())
    print(f"Load average before / after: {load_before} / {load_after}. Work directory: {work}")
    print(f"Command: .venv/bin/python benchmarks/champion.py {' '.join(argv if argv is not None else sys.argv[1:])}\n")
    print("| grid | candidates | champion | best candidate, test | mean candidate, test | champion, validation | champion, test | training (sum) | sweep wall | predict 10,000 | target | result |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    chosen = champion["members"][0] if champion["size"] == 1 else f"mean of {champion['size']}"
    print(
        f"| `{figures['grid']}` | {len(board)} | {chosen} | {figures['best_candidate_test_accuracy']:.2%} | "
        f"{figures['mean_candidate_test_accuracy']:.2%} | {champion['validation_accuracy']:.2%} | {champion['test_accuracy']:.2%} | "
        f"{training_s / 60:.1f} min | {wall / 60:.1f} min | {predict_s:.2f} s | test ≥ 99.65%, training ≤ 60 min | "
        f"{'PASS' if accuracy_ok else 'FAIL'} / {'PASS' if time_ok else 'FAIL'} |"
    )
    print_by_size(champion, test_by_size)
    print_shared_errors(errors, len(weighed.members))
    return 0


if __name__ == "__main__":
    sys.exit(main())
