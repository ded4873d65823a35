"""Killed and concurrent runs, with real processes: nothing good is lost, nothing is corrupted."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from mnist_pipeline.defs.resources import io_managers
from mnist_pipeline_tests.synthetic import make_dataset, write_idx_dir

pytestmark = pytest.mark.slow  # the fast tier (-m 'not slow') leaves this module out

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 6


@pytest.fixture(scope="module")
def bigger_idx_dir(tmp_path_factory) -> Path:
    """Enough images that an epoch takes a moment, so a kill lands mid-training."""
    return write_idx_dir(make_dataset(num_train=6000, num_test=200), tmp_path_factory.mktemp("idx"))


def pipeline_env(idx_dir: Path, home: Path) -> dict:
    (home / "dagster_home").mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "DAGSTER_HOME": str(home / "dagster_home"),
        "MNIST_PIPELINE_HOME": str(home),
        "MNIST_DATA_DIR": str(idx_dir),
        "MNIST_PIPELINE_ENV": "offline",
        "MNIST_MIN_TEST_ACCURACY": "0",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }


def run_args(seed: int) -> list[str]:
    return [sys.executable, "-m", "mnist_pipeline", "run", "--epochs", str(EPOCHS), "--seed", str(seed)]


def run_pipeline(idx_dir: Path, home: Path, seed: int) -> subprocess.CompletedProcess:
    result = subprocess.run(run_args(seed), cwd=REPO, env=pipeline_env(idx_dir, home), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def trained_weights(home: Path) -> list[np.ndarray]:
    storage = home / "storage"
    return io_managers(str(storage))["registry_model_io_manager"].read(dg.AssetKey("trained_model")).model.get_weights()


def kill_mid_training(idx_dir: Path, home: Path, seed: int) -> int:
    """Start a run, SIGKILL it once a checkpoint after epoch 2+ exists; return the epochs it finished."""
    process = subprocess.Popen(run_args(seed), cwd=REPO, env=pipeline_env(idx_dir, home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            states = list((home / "storage" / "training_checkpoints").glob("*/state.json"))
            if states:
                import json

                done = json.loads(states[0].read_text())["epochs_done"]
                if 2 <= done < EPOCHS:
                    process.send_signal(signal.SIGKILL)
                    process.wait(timeout=30)
                    return done
            if process.poll() is not None:
                pytest.fail(f"training finished (exit {process.returncode}) before it could be killed")
            time.sleep(0.02)
        pytest.fail("no checkpoint appeared within 300 s")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_killed_training_keeps_the_good_model_and_resumes_to_identical_weights(bigger_idx_dir, tmp_path):
    home = tmp_path / "home"
    run_pipeline(bigger_idx_dir, home, seed=0)
    good = trained_weights(home)

    done = kill_mid_training(bigger_idx_dir, home, seed=1)
    # The killed run left the earlier model whole and loadable.
    for before, after in zip(good, trained_weights(home)):
        assert before.tobytes() == after.tobytes()

    resumed = run_pipeline(bigger_idx_dir, home, seed=1)
    assert f"Resuming from the checkpoint after epoch {done} of {EPOCHS}" in resumed.stdout + resumed.stderr
    assert not any((home / "storage" / "training_checkpoints").glob("*/state.json")), "checkpoint removed when done"

    uninterrupted_home = tmp_path / "uninterrupted"
    run_pipeline(bigger_idx_dir, uninterrupted_home, seed=1)
    for a, b in zip(trained_weights(home), trained_weights(uninterrupted_home)):
        assert a.tobytes() == b.tobytes()


def test_two_runs_at_once_do_not_corrupt_each_other(bigger_idx_dir, tmp_path):
    home = tmp_path / "home"
    env = pipeline_env(bigger_idx_dir, home)
    # Create the Dagster instance's databases first, as any DAGSTER_HOME in use has them: two
    # processes creating the same fresh SQLite schema at once is a race inside Dagster itself.
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]):
        pass
    processes = [
        subprocess.Popen(run_args(seed=3), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    reference_home = tmp_path / "reference"
    run_pipeline(bigger_idx_dir, reference_home, seed=3)
    for a, b in zip(trained_weights(home), trained_weights(reference_home)):
        assert a.tobytes() == b.tobytes()
    storage = home / "storage"
    assert not [p.name for p in storage.rglob(".*.tmp*")], "no temporary files left behind"
