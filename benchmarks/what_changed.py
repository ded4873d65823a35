"""Cold full materialization vs an immediate second "what changed" run.

    .venv/bin/python benchmarks/what_changed.py [--epochs N]

Both runs are `mnist-pipeline update` in a fresh process against a fresh
DAGSTER_HOME and storage (MNIST read from the usual cache, fetched if absent),
so each pays Python's and Dagster's start-up as a user would. Goal: the second
run under 3 s wall and zero training steps.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SECOND_RUN_GOAL_S = 3.0


def update(env: dict, summary: Path, extra: list[str]) -> tuple[float, dict, str]:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "mnist_pipeline", "update", "--json", str(summary), *extra],
        cwd=REPO, env=env, capture_output=True, text=True,
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"`mnist-pipeline update` failed:\n{result.stderr[-4000:]}")
    materialized_line = next(line for line in result.stdout.splitlines() if line.startswith("Materialized "))
    return wall, json.loads(summary.read_text()), materialized_line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="epochs for the cold run (default: the pipeline's, 10)")
    args = parser.parse_args()

    from mnist_pipeline.paths import default_cache_dir

    cache = os.environ.get("MNIST_CACHE_DIR") or str(default_cache_dir())
    with tempfile.TemporaryDirectory(prefix="mnist-bench-") as tmp:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(Path(tmp) / "dagster_home"),
            "MNIST_PIPELINE_HOME": str(Path(tmp) / "home"),
            "MNIST_CACHE_DIR": cache,
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
        Path(env["DAGSTER_HOME"]).mkdir()
        extra = ["--epochs", str(args.epochs)] if args.epochs else []
        cold_s, cold, cold_line = update(env, Path(tmp) / "cold.json", extra)
        warm_s, warm, warm_line = update(env, Path(tmp) / "warm.json", [])

    trained_again = "trained_model" in warm["paths"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"cold full materialization:   {cold_s:7.2f} s wall  ({cold_line})")
    if "test_accuracy" in cold["metrics"]:
        print(f"  test accuracy {cold['metrics']['test_accuracy']:.4f}, training {cold['metrics']['training_seconds']:.1f} s")
    print(f"second 'what changed' run:   {warm_s:7.2f} s wall  ({warm_line})")
    steps = "unknown (trained again)" if trained_again else 0
    print(f"  training steps in the second run: {steps}")
    verdict = "PASS" if warm_s < SECOND_RUN_GOAL_S and not trained_again else "FAIL"
    print(f"goal: second run < {SECOND_RUN_GOAL_S:.0f} s wall with zero training steps: {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
