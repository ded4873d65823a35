"""Benchmark: the pipeline against a bare Keras script, where its training speed comes from, start-up cost, and the presets.

    ./scripts/benchmark                                              # everything, the presets too
    ./scripts/benchmark --parts startup,comparison,training          # the comparisons, as in BENCHMARKS.md: 3 rounds each
    ./scripts/benchmark --epochs 1 --rounds 1 --parts startup,comparison   # a quick check
    ./scripts/benchmark --parts presets --presets fast --seeds 3     # one preset only

Parts:
  startup     loading the code location: importing mnist_pipeline.definitions and building its defs (median of
              5 fresh interpreters), and whether TensorFlow came with it
  comparison  the pipeline's default run three ways per round, each in its own process on the same cached MNIST:
              benchmarks/bare_keras.py (no Dagster) with Keras's defaults, the same script with the pipeline's
              steps per call into TensorFlow (`--steps-per-execution`, equally tuned), and a cold
              `mnist-pipeline run` (fresh DAGSTER_HOME and storage); wall time from launch to exit, CPU time,
              wall and CPU time outside training (the orchestration cost), peak RSS (VmHWM), test accuracy,
              training throughput, time to predict the 10,000 test images and build the table. The targets
              are judged against the equally tuned script.
  training    training alone (benchmarks/training_loops.py), Keras's batch loop or the pipeline's, at 1 step
              per call or the pipeline's: where the pipeline's training speed comes from
  presets     `mnist-pipeline run --preset NAME --seed S` for each preset and seed: test accuracy and
              training seconds, mean and spread

Prints markdown tables (with each target and PASS/FAIL) ready to paste into BENCHMARKS.md.
MNIST comes from the pipeline's cache (MNIST_CACHE_DIR or its default); if it is empty, it is
filled once before anything is timed. Wall times need a quiet machine: on a shared one, read
the CPU times.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BARE_SCRIPT = REPO / "benchmarks" / "bare_keras.py"
TIMED_RUN = REPO / "benchmarks" / "timed_run.py"
TRAINING_LOOPS = REPO / "benchmarks" / "training_loops.py"
DAGSTER_FLOOR = REPO / "benchmarks" / "dagster_floor.py"
PARTS = ("startup", "comparison", "training", "presets")
IMPORT_RUNS = 5

# Targets on the reference machine (2 CPU cores).
IMPORT_TARGET_S = 1.5
PREDICTION_TARGET_S = 2.0
OVERHEAD_FLOOR_S, OVERHEAD_FRACTION = 3.0, 0.10  # wall time: at most the tuned bare script's + max(3 s, 10%)
OUTSIDE_TRAINING_FACTOR = 1.5  # wall time outside training: at most 1.5x the tuned bare script's
MEMORY_FRACTION = 0.10  # pipeline peak RSS at most 10% above the bare script's
PRESET_TARGETS = {"fast": (0.990, 15.0), "best": (0.995, None)}  # (test accuracy, training seconds)


@dataclass
class Measured:
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    stdout: str


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM: the peak resident memory of the process's current image (since its exec)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def run_measured(command: list[str], env: dict[str, str], logs: Path) -> Measured:
    """Run `command` to completion: its wall time from launch to exit, CPU time and peak resident memory.

    Memory is polled from /proc every 20 ms rather than taken from getrusage: a child's ru_maxrss
    also counts the parent's peak, which Linux charges to the child when it execs.
    """
    logs.mkdir(parents=True, exist_ok=True)
    peak = 0.0
    with open(logs / "stdout.txt", "w") as out, open(logs / "stderr.txt", "w") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=REPO)
        try:
            while True:
                peak = max(peak, peak_rss_mib(process.pid) or 0.0)
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    break
                time.sleep(0.02)
        except BaseException:  # interrupted: leave no orphan behind
            process.kill()
            process.wait()
            raise
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = (logs / "stderr.txt").read_text()[-3000:]
        raise RuntimeError(f"{' '.join(command)}: exited with {process.returncode}; stderr ends:\n{tail}")
    return Measured(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mib=peak,
        stdout=(logs / "stdout.txt").read_text(),
    )


def child_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MNIST_", "DAGSTER_HOME"))}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra)
    return env


def ensure_cache(cache_dir: Path) -> None:
    """Fill the MNIST cache once, before anything is timed; a no-op when it already holds verified files."""
    from mnist_pipeline.defs.data.resources import MnistSource
    from mnist_pipeline.defs.resources import resources_for_env

    sources = resources_for_env()["mnist_source"].resolved_download_sources()  # as MNIST_PIPELINE_ENV says
    MnistSource(cache_dir=str(cache_dir), download_sources=sources).load(log=lambda m: print(m, file=sys.stderr))


def pipeline_command(
    work: Path, cache_dir: Path, name: str, args: list[str], tree: Path | None = None
) -> tuple[list[str], dict[str, str], Path, Path]:
    """A cold `mnist-pipeline run`: fresh DAGSTER_HOME and storage, MNIST from the cache only.

    Run by benchmarks/timed_run.py, which is `mnist-pipeline` itself in the same process, with the
    time inside training written to a file: (command, environment, run summary, training timings).
    `tree` runs another checkout of the project (benchmarks/outside_training.py compares commits).
    """
    home = work / name
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "dagster.yaml", dagster_home / "dagster.yaml")
    summary = home / "summary.json"
    env = child_env(
        DAGSTER_HOME=str(dagster_home),
        MNIST_PIPELINE_HOME=str(home / "pipeline_home"),
        MNIST_CACHE_DIR=str(cache_dir),
        MNIST_PIPELINE_ENV="offline",
        # Timings, not the quality gate: a quick run with fewer epochs must still finish.
        MNIST_MIN_TEST_ACCURACY="0",
    )
    timings = home / "training_timings.json"
    command = [sys.executable, str(TIMED_RUN), f"--timings={timings}", *([f"--tree={tree}"] if tree else []),
               "run", "--json", str(summary), *args]
    return command, env, summary, timings


def run_details(dagster_home: Path, run_id: str) -> dict:
    """Per-step durations and each asset's materialization metadata, from the run's event log."""
    import dagster as dg

    started: dict[str, float] = {}
    steps: dict[str, float] = {}
    metadata: dict[str, dict] = {}
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for entry in instance.all_logs(run_id):
            event = entry.dagster_event
            if event is None:
                continue
            if event.event_type_value == "STEP_START":
                started[entry.step_key] = entry.timestamp
            elif event.event_type_value == "STEP_SUCCESS":
                steps[entry.step_key] = entry.timestamp - started[entry.step_key]
            elif event.event_type_value == "ASSET_MATERIALIZATION":
                materialization = event.step_materialization_data.materialization
                metadata[materialization.asset_key.to_user_string()] = {
                    name: value.value for name, value in materialization.metadata.items()
                }
    return {"steps": steps, "metadata": metadata}


def run_pipeline(work: Path, cache_dir: Path, name: str, args: list[str], tree: Path | None = None) -> tuple[Measured, dict]:
    """A cold run: its measurements, and its details (steps, metadata, `timings` inside training)."""
    command, env, summary, timings = pipeline_command(work, cache_dir, name, args, tree)
    measured = run_measured(command, env, work / name / "logs")
    report = json.loads(summary.read_text())
    details = run_details(Path(env["DAGSTER_HOME"]), report["run_id"])
    details["timings"] = json.loads(timings.read_text())
    return measured, details


# ---------------------------------------------------------------- parts


def measure_startup() -> dict:
    code = (
        "import json, sys, time\n"
        "started = time.perf_counter()\n"
        "import mnist_pipeline.definitions\n"
        "mnist_pipeline.definitions.defs()  # what Dagster does next when it loads the code location\n"
        "print(json.dumps({'seconds': time.perf_counter() - started,\n"
        "                  'tensorflow': 'tensorflow' in sys.modules, 'keras': 'keras' in sys.modules}))\n"
    )
    runs = []
    for _ in range(IMPORT_RUNS):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), cwd=REPO, check=True)
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    seconds = [run["seconds"] for run in runs]
    return {
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "tensorflow_imported": any(run["tensorflow"] or run["keras"] for run in runs),
    }


def default_recipe(epochs: int | None) -> dict:
    """The pipeline's default hyperparameters, read from its config (the tutorial preset)."""
    from mnist_pipeline.defs.model.config import Hyperparameters

    resolved = Hyperparameters().resolved()
    return {
        "epochs": epochs or resolved["epochs"],
        **{key: resolved[key] for key in ("batch_size", "optimizer", "learning_rate", "validation_fraction", "seed")},
    }


def pipeline_steps_per_call(cache_dir: Path, recipe: dict) -> int:
    """The steps per call into TensorFlow the pipeline's training picks for `recipe` on the cached MNIST.

    Decided by model/training.py's own rule (imported here, so this imports Keras, before anything is timed).
    """
    import math

    from mnist_pipeline.ml.data.idx import read_idx
    from mnist_pipeline.ml.model.split import validation_split
    from mnist_pipeline.ml.model.training import steps_per_call

    num_train = len(read_idx(cache_dir / "train-labels-idx1-ubyte", expected_ndim=1))
    train_indices, _ = validation_split(num_train, recipe["validation_fraction"], recipe["seed"])
    return steps_per_call(math.ceil(len(train_indices) / recipe["batch_size"]))


def run_bare(work: Path, cache_dir: Path, recipe: dict, name: str, steps_per_execution: int = 1) -> dict:
    args = [f"--{key.replace('_', '-')}={value}" for key, value in recipe.items()]
    command = [sys.executable, str(BARE_SCRIPT), f"--cache-dir={cache_dir}", f"--out={work / name / 'out'}", *args,
               f"--steps-per-execution={steps_per_execution}"]
    measured = run_measured(command, child_env(), work / name / "logs")
    figures = json.loads(measured.stdout.strip().splitlines()[-1])
    return {
        "wall_s": measured.wall_s,
        "cpu_s": measured.cpu_s,
        "peak_rss_mib": measured.peak_rss_mib,
        "outside_training_s": measured.wall_s - figures["training_seconds"],
        "outside_training_cpu_s": measured.cpu_s - figures["training_cpu_seconds"],
        **figures,
    }


def run_default_pipeline(work: Path, cache_dir: Path, epochs: int | None, name: str) -> dict:
    measured, details = run_pipeline(work, cache_dir, name, ["--epochs", str(epochs)] if epochs else [])
    trained = details["metadata"]["trained_model"]
    return {
        "wall_s": measured.wall_s,
        "cpu_s": measured.cpu_s,
        "peak_rss_mib": measured.peak_rss_mib,
        "outside_training_s": measured.wall_s - trained["training_seconds"],
        "outside_training_cpu_s": measured.cpu_s - details["timings"]["training_cpu_s"],
        "test_accuracy": details["metadata"]["evaluation_metrics"]["test_accuracy"],
        "training_seconds": trained["training_seconds"],
        "training_cpu_seconds": details["timings"]["training_cpu_s"],
        "images_per_second": trained["images_per_second"],
        "train_images": trained["train_images"],
        "prediction_seconds": details["metadata"]["predictions_table"]["prediction_seconds"],
        "prediction_step_seconds": details["steps"]["predictions_table"],
        "steps": details["steps"],
    }


def run_dagster_floor(work: Path, name: str) -> dict:
    """benchmarks/dagster_floor.py in a fresh DAGSTER_HOME: the pipeline's job with empty steps."""
    dagster_home = work / name / "dagster_home"
    dagster_home.mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "dagster.yaml", dagster_home / "dagster.yaml")
    measured = run_measured([sys.executable, str(DAGSTER_FLOOR)], child_env(DAGSTER_HOME=str(dagster_home)), work / name / "logs")
    return {"wall_s": measured.wall_s, "cpu_s": measured.cpu_s}


def median_run(runs: list[dict]) -> dict:
    """Field by field, the median of the runs (the runs themselves are kept beside it)."""
    merged: dict = {}
    for key, value in runs[0].items():
        if isinstance(value, dict):
            merged[key] = median_run([run[key] for run in runs])
        elif isinstance(value, float):
            merged[key] = statistics.median(run[key] for run in runs)
        else:
            merged[key] = value
    return merged


def rotated(items: list, round_number: int) -> list:
    """Round r starts with item r (mod n): over n rounds, each item runs once in each position."""
    shift = round_number % len(items)
    return items[shift:] + items[:shift]


# The comparison's sides, in the report's column order.
SIDES = {
    "bare": "bare Keras script, Keras's defaults",
    "bare_tuned": "bare Keras script, {steps} steps per call",
    "pipeline": "pipeline",
}


def measure_comparison(work: Path, cache_dir: Path, epochs: int | None, rounds: int) -> dict:
    """`rounds` rounds of one run of each side, rotating which goes first; medians.

    The sides: the bare script as the tutorial writes it (Keras's defaults), the same script with the
    pipeline's steps per call into TensorFlow (the one training setting the pipeline tunes), and a
    cold `mnist-pipeline run`; and beside them Dagster's floor, the pipeline's job with empty steps.
    """
    recipe = default_recipe(epochs)
    steps = pipeline_steps_per_call(cache_dir, recipe)
    runs: dict[str, list[dict]] = {side: [] for side in [*SIDES, "floor"]}
    for round_number in range(rounds):
        for side in rotated(list(runs), round_number):
            print(f"comparison, round {round_number + 1}/{rounds}: {side} {recipe}", file=sys.stderr)
            name = f"{side}-{round_number}"
            if side == "bare":
                runs[side].append(run_bare(work, cache_dir, recipe, name))
            elif side == "bare_tuned":
                runs[side].append(run_bare(work, cache_dir, recipe, name, steps_per_execution=steps))
            elif side == "pipeline":
                runs[side].append(run_default_pipeline(work, cache_dir, epochs, name))
            else:
                runs[side].append(run_dagster_floor(work, name))
    return {
        "recipe": recipe,
        "steps_per_execution": steps,
        "rounds": rounds,
        **{side: median_run(side_runs) for side, side_runs in runs.items()},
        **{f"{side}_runs": side_runs for side, side_runs in runs.items()},
    }


# The training part's configurations: (batch loop, steps per call), the latter 1 or the pipeline's.
LOOPS = {
    "keras": "Keras's own: `fit` on NumPy arrays, as the bare script",
    "pipeline": "the pipeline's: `fit_resumably` (TensorFlow's op determinism on, one tensor copy, batches by "
                "tf.gather, tf.data autotune off, prefetch 2, a checkpoint per epoch)",
}


def run_training_loop(work: Path, cache_dir: Path, recipe: dict, loop: str, steps: int, name: str) -> dict:
    args = [f"--{key.replace('_', '-')}={value}" for key, value in recipe.items()]
    command = [sys.executable, str(TRAINING_LOOPS), f"--loop={loop}", f"--steps-per-execution={steps}",
               f"--cache-dir={cache_dir}", f"--checkpoint-dir={work / name / 'checkpoint'}", *args]
    measured = run_measured(command, child_env(), work / name / "logs")
    return json.loads(measured.stdout.strip().splitlines()[-1])


def measure_training(work: Path, cache_dir: Path, epochs: int | None, rounds: int) -> dict:
    """Training alone, in 4 configurations: Keras's batch loop or the pipeline's, at 1 step per call or the pipeline's.

    Each run is its own process (benchmarks/training_loops.py), timing only the call that trains; the
    4 configurations run once per round, rotating which goes first; medians.
    """
    recipe = default_recipe(epochs)
    steps = pipeline_steps_per_call(cache_dir, recipe)
    configurations = [(loop, n) for loop in LOOPS for n in (1, steps)]
    runs: dict[str, list[dict]] = {f"{loop}-{n}": [] for loop, n in configurations}
    for round_number in range(rounds):
        for loop, n in rotated(configurations, round_number):
            print(f"training, round {round_number + 1}/{rounds}: {loop} batch loop, {n} step(s) per call", file=sys.stderr)
            runs[f"{loop}-{n}"].append(run_training_loop(work, cache_dir, recipe, loop, n, f"training-{loop}-{n}-{round_number}"))
    return {
        "recipe": recipe,
        "steps_per_execution": steps,
        "rounds": rounds,
        "medians": {key: median_run(key_runs) for key, key_runs in runs.items()},
        "runs": runs,
    }


def measure_presets(work: Path, cache_dir: Path, presets: list[str], seeds: int, results: dict) -> None:
    """Fills `results` (preset -> runs) run by run, so an interrupted benchmark keeps what it measured."""
    for preset in presets:
        for seed in range(seeds):
            print(f"presets: {preset}, seed {seed}", file=sys.stderr)
            _, details = run_pipeline(work, cache_dir, f"{preset}-{seed}", ["--preset", preset, "--seed", str(seed)])
            trained = details["metadata"]["trained_model"]
            run = {
                "seed": seed,
                "test_accuracy": details["metadata"]["evaluation_metrics"]["test_accuracy"],
                "val_accuracy": trained["final_val_accuracy"],
                "training_seconds": trained["training_seconds"],
                "epochs": trained["epochs"],
                "batch_size": trained["batch_size"],
            }
            print(f"  test accuracy {run['test_accuracy']:.4f}, training {run['training_seconds']:.1f} s", file=sys.stderr)
            results.setdefault(preset, []).append(run)


# ---------------------------------------------------------------- report


def verdict(ok: bool) -> str:
    return "PASS" if ok else "**FAIL**"


def spread(values: list[float], scale: float = 1.0, digits: int = 2, unit: str = "") -> str:
    values = [v * scale for v in values]
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}{unit}"
    return (f"{mean:.{digits}f}{unit} ± {statistics.stdev(values):.{digits}f} "
            f"({min(values):.{digits}f}–{max(values):.{digits}f})")


def machine_description() -> str:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
        platform.processor() or "unknown CPU",
    )
    memory_kib = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    cores = len(os.sched_getaffinity(0))
    return f"{cores} cores of {model}, {memory_kib / 2**20:.0f} GiB memory, Python {platform.python_version()}"


def library_versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    names = []
    for package in ("dagster", "keras", "tensorflow-cpu", "tensorflow", "numpy"):
        try:
            names.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            continue
    return ", ".join(names)


def outside_training(side: dict) -> float:
    """Wall time minus training time: what a run costs besides fitting the model (median over rounds)."""
    return side.get("outside_training_s", side["wall_s"] - side["training_seconds"])


def seconds_change(new: float, old: float) -> str:
    """'-9.5 s (-19%)': the change from `old` to `new`."""
    return f"{new - old:+.1f} s ({(new - old) / old:+.0%})"


def comparison_rows(comparison: dict) -> list[str]:
    """The comparison's rows: each side's medians; targets judged against the equally tuned bare script."""
    recipe, steps = comparison["recipe"], comparison["steps_per_execution"]
    bare, tuned, pipe = comparison["bare"], comparison["bare_tuned"], comparison["pipeline"]
    allowed = tuned["wall_s"] + max(OVERHEAD_FLOOR_S, OVERHEAD_FRACTION * tuned["wall_s"])
    outside_allowed = OUTSIDE_TRAINING_FACTOR * outside_training(tuned)
    memory_allowed = tuned["peak_rss_mib"] * (1 + MEMORY_FRACTION)
    accuracies = {side["test_accuracy"] for side in (bare, tuned, pipe)}
    floor = comparison.get("floor")

    def cpu_outside(side: dict) -> str:
        return f"{side['outside_training_cpu_s']:.1f} s" if "outside_training_cpu_s" in side else "–"

    return [
        f"| wall time, launch to exit | {bare['wall_s']:.1f} s | {tuned['wall_s']:.1f} s | {pipe['wall_s']:.1f} s "
        f"(x{pipe['wall_s'] / tuned['wall_s']:.3f} of the tuned script's, {pipe['wall_s'] - tuned['wall_s']:+.1f} s) "
        f"| ≤ tuned script + max(3 s, 10%) = {allowed:.1f} s | {verdict(pipe['wall_s'] <= allowed)} |",
        f"| CPU time, user + system | {bare['cpu_s']:.1f} s | {tuned['cpu_s']:.1f} s | {pipe['cpu_s']:.1f} s "
        f"({pipe['cpu_s'] - tuned['cpu_s']:+.1f} s) | | |",
        f"| wall time outside training: the orchestration cost (start-up, loading, evaluation, storage, checks, plots) "
        f"| {outside_training(bare):.1f} s | {outside_training(tuned):.1f} s | {outside_training(pipe):.1f} s "
        f"(x{outside_training(pipe) / outside_training(tuned):.2f} of the tuned script's) "
        f"| ≤ {OUTSIDE_TRAINING_FACTOR}x the tuned script's = {outside_allowed:.1f} s "
        f"| {verdict(outside_training(pipe) <= outside_allowed)} |",
        f"| CPU time outside training | {cpu_outside(bare)} | {cpu_outside(tuned)} | {cpu_outside(pipe)} | | |",
        *([f"| of which Dagster alone: the same job with empty steps (benchmarks/dagster_floor.py), launch to exit "
           f"| | | {floor['wall_s']:.1f} s wall, {floor['cpu_s']:.1f} s CPU | | |"] if floor else []),
        f"| peak memory (RSS) | {bare['peak_rss_mib']:.0f} MiB | {tuned['peak_rss_mib']:.0f} MiB | {pipe['peak_rss_mib']:.0f} MiB "
        f"(x{pipe['peak_rss_mib'] / tuned['peak_rss_mib']:.2f}) | ≤ tuned script + 10% = {memory_allowed:.0f} MiB "
        f"| {verdict(pipe['peak_rss_mib'] <= memory_allowed)} |",
        f"| test accuracy | {bare['test_accuracy']:.2%} | {tuned['test_accuracy']:.2%} | {pipe['test_accuracy']:.2%} "
        f"| same recipe | {'same' if max(accuracies) - min(accuracies) < 1e-9 else 'differs'} |",
        f"| training, {recipe['epochs']} epochs of {pipe['train_images']:,} images "
        + "".join(f"| {side['training_seconds']:.1f} s, {side['images_per_second']:,.0f} images/s " for side in (bare, tuned, pipe))
        + f"| | |",
        f"| steps per call into TensorFlow | 1 | {steps} | {steps} | | |",
        f"| predict 10,000 test images and build the table | {bare['prediction_seconds']:.2f} s | "
        f"{tuned['prediction_seconds']:.2f} s | {pipe['prediction_seconds']:.2f} s (whole step, loading model and data "
        f"included: {pipe['prediction_step_seconds']:.2f} s) | whole step < {PREDICTION_TARGET_S:.0f} s "
        f"| {verdict(pipe['prediction_step_seconds'] < PREDICTION_TARGET_S)} |",
    ]


def comparison_rounds(comparison: dict) -> str:
    """Every round's wall time and wall time outside training, side by side."""
    rounds = []
    for number, runs in enumerate(zip(*(comparison.get(f"{side}_runs", []) for side in SIDES)), start=1):
        sides = ", ".join(
            f"{side} {run['wall_s']:.1f} s ({outside_training(run):.1f} s outside training)" for side, run in zip(SIDES, runs)
        )
        floor = comparison.get("floor_runs", [])
        rounds.append(f"round {number}: {sides}" + (f", Dagster alone {floor[number - 1]['wall_s']:.1f} s" if floor else ""))
    return "; ".join(rounds)


def training_section(training: dict) -> list[str]:
    """The 2x2 table of training alone: which batch loop, how many steps per call; and the gains."""
    steps, recipe, medians = training["steps_per_execution"], training["recipe"], training["medians"]
    cell = {key: run["training_seconds"] for key, run in medians.items()}
    cpu = {key: run["training_cpu_seconds"] for key, run in medians.items()}
    k1, kn, p1, pn = (cell[f"{loop}-{n}"] for loop in LOOPS for n in (1, steps))
    lines = [
        f"Training alone: {recipe['epochs']} epochs of batch {recipe['batch_size']}, each configuration in its own "
        f"process, medians of {training['rounds']} round(s) rotating which runs first (wall seconds, CPU seconds in brackets).",
        "",
        f"| batch loop | 1 step per call | {steps} steps per call | gain from {steps} steps per call |",
        "|---|---|---|---|",
    ]
    for loop, description in LOOPS.items():
        one, many = f"{loop}-1", f"{loop}-{steps}"
        lines.append(
            f"| {description} | {cell[one]:.1f} s ({cpu[one]:.1f} s) | {cell[many]:.1f} s ({cpu[many]:.1f} s) "
            f"| {seconds_change(cell[many], cell[one])} |"
        )
    lines.append(f"| gain from the pipeline's loop | {seconds_change(p1, k1)} | {seconds_change(pn, kn)} | |")
    same = {
        loop: medians[f"{loop}-1"]["weights_sha256"] == medians[f"{loop}-{steps}"]["weights_sha256"] for loop in LOOPS
    }
    by_round = "; ".join(
        f"round {number}: " + ", ".join(f"{key} {run['training_seconds']:.1f} s" for key, run in zip(training["runs"], runs))
        for number, runs in enumerate(zip(*training["runs"].values()), start=1)
    )
    lines += [
        "",
        f"From Keras's defaults to the pipeline's training, {k1:.1f} s → {pn:.1f} s ({seconds_change(pn, k1)}): "
        f"{steps} steps per call first gives {seconds_change(kn, k1)}, then the pipeline's loop {seconds_change(pn, kn)}; "
        f"the pipeline's loop first gives {seconds_change(p1, k1)}, then {steps} steps per call {seconds_change(pn, p1)}.",
        f"Final weights at 1 and {steps} steps per call: "
        + ", ".join(f"{loop}'s loop {'identical' if same[loop] else 'DIFFERENT'}" for loop in LOOPS) + ".",
        f"Training seconds by round ({', '.join(training['runs'])} = batch loop-steps per call): {by_round}.",
    ]
    return lines


def report(results: dict, command: str) -> str:
    lines = [
        *([f"**INTERRUPTED by {results['interrupted']}: only what finished before is shown.**", ""]
          if results.get("interrupted") else []),
        f"Measured {results['date']} on {results['machine']} ({results['versions']}).",
        f"Load average before / after: {results['load_before']} / {results['load_after']}.",
        f"Command: `{command}`",
        "",
    ]
    comparison = results.get("comparison")
    startup = results.get("startup")
    if comparison or startup:
        steps = comparison["steps_per_execution"] if comparison else "N"
        lines += [
            "| measure | " + " | ".join(SIDES.values()).format(steps=steps) + " | target | result |",
            "|---|---|---|---|---|---|",
        ]
    if comparison:
        lines += comparison_rows(comparison)
    if startup:
        ok = startup["median_s"] <= IMPORT_TARGET_S and not startup["tensorflow_imported"]
        lines.append(
            f"| load the code location: import `mnist_pipeline.definitions`, build `defs()` (median of {IMPORT_RUNS}) | | | {startup['median_s']:.2f} s "
            f"(min {startup['min_s']:.2f}, max {startup['max_s']:.2f}); TensorFlow imported: "
            f"{'yes' if startup['tensorflow_imported'] else 'no'} | ≤ {IMPORT_TARGET_S} s, no TensorFlow | {verdict(ok)} |"
        )
    if comparison:
        recipe = comparison["recipe"]
        rounds = comparison.get("rounds", 1)
        lines += [
            "",
            f"Recipe of all three: {recipe['optimizer']} lr {recipe['learning_rate']}, batch {recipe['batch_size']}, "
            f"{recipe['epochs']} epochs, validation fraction {recipe['validation_fraction']}, seed {recipe['seed']}.",
            f"Medians of {rounds} round(s), rotating which side runs first. Wall times by round: {comparison_rounds(comparison)}.",
            "",
            "Pipeline steps (seconds, loading inputs and storing outputs included):",
            "",
            "| " + " | ".join(comparison["pipeline"]["steps"]) + " |",
            "|" + "---|" * len(comparison["pipeline"]["steps"]),
            "| " + " | ".join(f"{s:.2f}" for s in comparison["pipeline"]["steps"].values()) + " |",
        ]
    if results.get("training"):
        lines += ["", *training_section(results["training"])]
    presets = results.get("presets")
    if presets:
        lines += [
            "",
            "| preset | epochs x batch | seeds | test accuracy, mean ± sd (min–max) | validation accuracy | "
            "training seconds, mean ± sd (min–max) | target | result |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for preset, runs in presets.items():
            accuracy = [run["test_accuracy"] for run in runs]
            seconds = [run["training_seconds"] for run in runs]
            target_accuracy, target_seconds = PRESET_TARGETS.get(preset, (None, None))
            target, ok = "", True
            if target_accuracy is not None:
                target = f"mean ≥ {target_accuracy:.1%}"
                ok = statistics.fmean(accuracy) >= target_accuracy
            if target_seconds is not None:
                target += f", training ≤ {target_seconds:.0f} s"
                ok = ok and statistics.fmean(seconds) <= target_seconds
            lines.append(
                f"| {preset} | {runs[0]['epochs']} x {runs[0]['batch_size']} | {len(runs)} | {spread(accuracy, 100, 2, '%')} | "
                f"{spread([run['val_accuracy'] for run in runs], 100, 2, '%')} | {spread(seconds, 1, 1, ' s')} | "
                f"{target} | {verdict(ok) if target else ''} |"
            )
    return "\n".join(lines)


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    from mnist_pipeline.ml.model.presets import PRESETS
    from mnist_pipeline.paths import default_cache_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {','.join(PARTS)} (default: all)")
    parser.add_argument("--epochs", type=int, help="epochs of the comparison and the training part (default: the pipeline's default)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the comparison and the training part, rotating which runs first; medians are reported (default: 3, "
                             "as wall times on a shared 2-core machine vary by several seconds from run to run)")
    parser.add_argument("--presets", default="fast,best", help=f"comma-separated, of {','.join(PRESETS)} (default: fast,best)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per preset (default: 3)")
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory of the runs")
    args = parser.parse_args(argv)
    parts = args.parts.split(",")
    presets = args.presets.split(",")
    unknown = sorted(set(parts) - set(PARTS)) + sorted(set(presets) - set(PRESETS))
    if args.rounds < 1 or args.seeds < 1:
        parser.error(f"--rounds and --seeds expect at least 1; found {args.rounds} and {args.seeds}")
    if unknown:
        parser.error(f"--parts expects names from {list(PARTS)} and --presets from {list(PRESETS)}; found {unknown}")

    cache_dir = Path(os.environ.get("MNIST_CACHE_DIR") or default_cache_dir())
    ensure_cache(cache_dir)
    results: dict = {
        "date": datetime.date.today().isoformat(),
        "machine": machine_description(),
        "versions": library_versions(),
        "load_before": load_average(),
    }
    command = "./scripts/benchmark" + "".join(f" {arg}" for arg in (argv if argv is not None else sys.argv[1:]))
    work = Path(tempfile.mkdtemp(prefix="mnist-benchmark-"))
    signal.signal(signal.SIGTERM, raise_interrupted)
    interrupted = None
    try:
        if "startup" in parts:
            print("startup: loading the code location (mnist_pipeline.definitions)", file=sys.stderr)
            results["startup"] = measure_startup()
            save(results, args.json)
        if "comparison" in parts:
            results["comparison"] = measure_comparison(work, cache_dir, args.epochs, args.rounds)
            save(results, args.json)
        if "training" in parts:
            results["training"] = measure_training(work, cache_dir, args.epochs, args.rounds)
            save(results, args.json)
        if "presets" in parts:
            results["presets"] = {}
            measure_presets(work, cache_dir, presets, args.seeds, results["presets"])
    except (Interrupted, KeyboardInterrupt) as error:
        interrupted = str(error) or "SIGINT"
        results["interrupted"] = interrupted
    finally:
        if args.keep:
            print(f"runs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["load_after"] = load_average()
    save(results, args.json)
    print(report(results, command))
    if interrupted:
        print(f"\nINTERRUPTED by {interrupted}: the tables hold only what finished before.", file=sys.stderr)
        return 1
    return 0


class Interrupted(Exception):
    """The benchmark was asked to stop (SIGTERM)."""


def raise_interrupted(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def save(results: dict, path: Path | None) -> None:
    if path:
        path.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
