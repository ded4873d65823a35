"""Benchmark: `mnist-pipeline run --preset fast` on the cluster against the embedded default, on real MNIST.

    .venv/bin/python benchmarks/cluster.py                 # 3 rounds
    .venv/bin/python benchmarks/cluster.py --rounds 1      # a quick check

Stands up a cluster of its own (`scripts/cluster up`: PostgreSQL, Redis, SeaweedFS, two Celery
workers, daemon, webserver) in a temporary home on ports from 28800, and always brings it down.
Each round runs the same command on each side, alternating which goes first, with the round's
number as the seed, so that each run trains (a seed is part of the training key):

  embedded  a fresh DAGSTER_HOME and storage, the in-process executor (the default)
  cluster   `scripts/cluster env`'s variables: the instance in PostgreSQL, the artifacts in
            the object store, every step a Celery task on a worker

MNIST comes from the pipeline's cache, filled before anything is timed; the workers read it from
the same cache (they run the steps with the settings of the environment `up` ran in). Prints a
markdown table: the command's wall time, training seconds, each step's duration on each side (from
STEP_START to STEP_SUCCESS in the run's event log) and their difference, and on the cluster the wait
from a step's submission to Celery to its start on a worker.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from run import child_env, ensure_cache, library_versions, load_average, machine_description, run_measured  # noqa: E402

PORT_BASE = "28800"  # not the user's cluster (28300) nor the tests' (28400)
SIDES = ("embedded", "cluster")
SUBMITTED = "Submitting celery task for step"


def cluster(command: str, home: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "cluster"), command],
        env={**env, "MNIST_CLUSTER_HOME": str(home), "MNIST_CLUSTER_PORT_BASE": PORT_BASE},
        cwd=REPO, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"scripts/cluster {command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def exported(env_output: str) -> dict[str, str]:
    """The variables of `scripts/cluster env`'s `export NAME='value'` lines."""
    variables = {}
    for line in env_output.splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            variables[name] = value.strip("'")
    return variables


def step_times(events: list[tuple[str, str | None, float, str]]) -> dict[str, dict[str, float]]:
    """Per step: `seconds` from STEP_START to STEP_SUCCESS, and `queued` from its submission to Celery to its start.

    `events` are (event type, step key, timestamp, message) in the event log's order.
    """
    submitted: dict[str, float] = {}
    started: dict[str, float] = {}
    times: dict[str, dict[str, float]] = {}
    for event_type, step, timestamp, message in events:
        if step is None:
            continue
        if event_type == "ENGINE_EVENT" and message.startswith(SUBMITTED):
            submitted.setdefault(step, timestamp)
        elif event_type == "STEP_START":
            started[step] = timestamp
            if step in submitted:
                times.setdefault(step, {})["queued"] = timestamp - submitted[step]
        elif event_type == "STEP_SUCCESS" and step in started:
            times.setdefault(step, {})["seconds"] = timestamp - started[step]
    return times


def run_events(dagster_home: str, run_id: str, env: dict[str, str]) -> list[tuple[str, str | None, float, str]]:
    """The run's events, read in a child process with the side's environment (the cluster's instance is in PostgreSQL)."""
    code = (
        "import json, sys, dagster as dg\n"
        "with dg.DagsterInstance.get() as instance:\n"
        "    print(json.dumps([(e.dagster_event.event_type_value, e.step_key, e.timestamp, e.message or '')\n"
        "                      for e in instance.all_logs(sys.argv[1]) if e.dagster_event is not None]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, run_id], env={**env, "DAGSTER_HOME": dagster_home},
                            cwd=REPO, capture_output=True, text=True, check=True)
    return [tuple(event) for event in json.loads(result.stdout)]


def markdown(results: dict[str, list[dict]]) -> str:
    """The table: wall and training seconds, then each step (median over rounds) on each side and the difference."""
    def median(side: str, pick) -> float | None:
        values = [value for result in results[side] if (value := pick(result)) is not None]
        return statistics.median(values) if values else None

    def cell(value: float | None) -> str:
        return "" if value is None else f"{value:.1f} s"

    rows = ["| measure | embedded (in-process) | cluster (Celery workers) | cluster - embedded |", "|---|---|---|---|"]
    for label, pick in [("wall time, launch to exit", lambda r: r["wall_s"]),
                        ("training (as the run reports it)", lambda r: r["training_s"])]:
        embedded, on_cluster = median("embedded", pick), median("cluster", pick)
        rows.append(f"| {label} | {cell(embedded)} | {cell(on_cluster)} | {cell(on_cluster - embedded)} |")
    steps = sorted({step for side in SIDES for result in results[side] for step in result["steps"]},
                   key=lambda step: min(r["steps"].get(step, {}).get("order", 1e9) for side in SIDES for r in results[side]))
    for step in steps:
        embedded = median("embedded", lambda r: r["steps"].get(step, {}).get("seconds"))
        on_cluster = median("cluster", lambda r: r["steps"].get(step, {}).get("seconds"))
        queued = median("cluster", lambda r: r["steps"].get(step, {}).get("queued"))
        difference = cell(on_cluster - embedded) if None not in (embedded, on_cluster) else ""
        queue_note = f" (+{queued:.1f} s from submission to start)" if queued is not None else ""
        rows.append(f"| step `{step}` | {cell(embedded)} | {cell(on_cluster)}{queue_note} | {difference} |")
    return "\n".join(rows)


def one_run(side: str, seed: int, work: Path, env: dict[str, str]) -> dict:
    summary = work / f"{side}-s{seed}.json"
    command = [str(REPO / ".venv" / "bin" / "mnist-pipeline"), "run", "--preset", "fast", "--seed", str(seed),
               "--json", str(summary)]
    measured = run_measured(command, env, work / f"{side}-s{seed}-logs")
    report = json.loads(summary.read_text())
    times = step_times(run_events(env["DAGSTER_HOME"], report["run_id"], env))
    for order, step in enumerate(times):
        times[step]["order"] = order
    training = report.get("metrics", {}).get("training_seconds")
    return {"wall_s": measured.wall_s, "training_s": training, "steps": times,
            "accuracy": report.get("metrics", {}).get("test_accuracy")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write every round's figures here")
    args = parser.parse_args()

    from mnist_pipeline.paths import default_cache_dir

    work = Path(tempfile.mkdtemp(prefix="mnist-cluster-bench-"))
    work.chmod(0o755)  # PostgreSQL runs as its own user and must reach its data directory in the cluster home
    cache_dir = Path(os.environ.get("MNIST_CACHE_DIR") or default_cache_dir())
    ensure_cache(cache_dir)
    settings = {"MNIST_CACHE_DIR": str(cache_dir), "MNIST_PIPELINE_HOME": str(work / "cluster_pipeline_home")}
    home = work / "cluster"
    before = load_average()
    results: dict[str, list[dict]] = {side: [] for side in SIDES}
    try:
        cluster("up", home, child_env(**settings))
        cluster_variables = exported(cluster("env", home, child_env()))
        for seed in range(args.rounds):
            order = SIDES if seed % 2 == 0 else tuple(reversed(SIDES))
            for side in order:
                if side == "cluster":
                    env = child_env(**settings, **cluster_variables)
                else:
                    side_home = work / f"embedded-s{seed}"
                    (side_home / "dagster_home").mkdir(parents=True)
                    env = child_env(MNIST_CACHE_DIR=str(cache_dir), MNIST_PIPELINE_HOME=str(side_home / "home"),
                                    DAGSTER_HOME=str(side_home / "dagster_home"), MNIST_PIPELINE_ENV="offline")
                result = one_run(side, seed, work, env)
                results[side].append(result)
                print(f"round {seed + 1} {side}: {result['wall_s']:.1f} s, training {result['training_s']} s, "
                      f"test accuracy {result['accuracy']}", file=sys.stderr)
    finally:
        cluster("down", home, child_env())
    print(f"Measured {time.strftime('%Y-%m-%d')} on {machine_description()} ({library_versions()}).")
    print(f"Load average before / after: {before} / {load_average()}.")
    print(f"Command: `.venv/bin/python benchmarks/cluster.py --rounds {args.rounds}`; `mnist-pipeline run --preset fast "
          f"--seed ROUND` on real MNIST, medians of {args.rounds} round(s) alternating which side runs first.\n")
    print(markdown(results))
    print("\nWall times by round: " + "; ".join(
        f"round {i + 1}: embedded {results['embedded'][i]['wall_s']:.1f} s, cluster {results['cluster'][i]['wall_s']:.1f} s"
        for i in range(args.rounds)))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
