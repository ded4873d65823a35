"""Running scripts/cluster from the tests: shared by test_cluster.py and the object-store tests (through conftest.py).

One cluster per test session (conftest.py's `cluster_home`, started once by `cluster_up`): the test
that stops it (marked `stops_cluster`) runs after every other test, and the session's finalizer runs
`down` whatever happened, so a failing test never leaves it running.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "cluster"
# Not the script's default (28300), so a user's own cluster keeps running; below Linux's ephemeral
# range (32768-60999), so no client's outgoing connection takes one of its ports (one did, in a CI
# run at 47400); movable, so that two checkouts can run the cluster tests at once.
PORT_BASE = int(os.environ.get("MNIST_TEST_CLUSTER_PORT_BASE", "28400"))
EPHEMERAL_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def run_cluster(
    command: str, home: Path, *, check: bool = True, port_base: int = PORT_BASE, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env or {}), "MNIST_CLUSTER_HOME": str(home), "MNIST_CLUSTER_PORT_BASE": str(port_base)}
    result = subprocess.run([str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=1200, cwd=REPO)
    if check and result.returncode != 0:
        raise AssertionError(f"scripts/cluster {command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def pipeline_settings(home: Path) -> dict[str, str]:
    """The pipeline's settings for the workers and the runs: the synthetic data set in the cluster home, no accuracy gate.

    The workers run the steps and read these from the environment `up` ran in. Artifacts go where
    `cluster env`'s MNIST_STORAGE_URL says (the object store), which comes before MNIST_PIPELINE_HOME.
    """
    return {
        "MNIST_DATA_DIR": str(home / "idx"),
        "MNIST_PIPELINE_HOME": str(home / "pipeline_home"),
        "MNIST_MIN_TEST_ACCURACY": "0",
    }


def cluster_env(home: Path) -> dict[str, str]:
    """The variables `scripts/cluster env` exports."""
    env = {}
    for line in run_cluster("env", home).stdout.splitlines():
        assert line.startswith("export "), line
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value.strip("'")
    return env
