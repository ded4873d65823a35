"""Crash safety across machines: the `training` queue's Celery worker is killed mid-training (issue 12).

Killing the worker's whole process group (the `dagster-celery worker start` process, the Celery main
process and its pool process) is what a machine dying does to the step: nothing of the worker is left to
report a result. The run must end failed in a bounded time with a reason, and once the worker is back
(`scripts/cluster up` starts what is down), the same command resumes training from the checkpoint in the
object store and registers the same model version as an uninterrupted run.

Shares the session's cluster (conftest.py); the test restarts the worker it killed, so the later cluster
tests find every component up.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mnist_pipeline.defs.lost_workers import CENSUS_EVERY_SECONDS, WATCH_AFTER_SECONDS
from mnist_pipeline_tests.cluster_support import REPO, cluster_env, pipeline_settings, run_cluster

pytestmark = pytest.mark.cluster

# The session's data set is small (300 images): many short epochs, so a checkpoint after epoch 1 exists
# well before training ends.
EPOCHS = 30
SEED = 7
# How long the run waits on a silent worker (MNIST_WORKER_SILENCE_SECONDS, read by the run's process; 90 by
# default), and how long it may take to be marked failed once its training worker is gone: the watch on the
# step (defs/lost_workers.py) gives it up after that silence, counted from the last census the worker
# answered; then the run reports the failure and the command exits.
SILENCE_SECONDS = 30
FAILED_WITHIN_SECONDS = WATCH_AFTER_SECONDS + SILENCE_SECONDS + 2 * CENSUS_EVERY_SECONDS + 60


def run_command(home: Path, json_path: Path) -> list[str]:
    return [str(REPO / ".venv" / "bin" / "mnist-pipeline"), "run", "--epochs", str(EPOCHS), "--seed", str(SEED),
            "--json", str(json_path)]


def checkpoint_epochs(env: dict[str, str]) -> int:
    """The epochs done of the newest training checkpoint in the object store (0: none)."""
    import s3fs

    fs = s3fs.S3FileSystem(
        skip_instance_cache=True, key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"],
        client_kwargs={"endpoint_url": env["AWS_ENDPOINT_URL"], "region_name": env["AWS_REGION"]},
    )
    prefix = env["MNIST_STORAGE_URL"].removeprefix("s3://") + "/training_checkpoints"
    done = 0
    for key in fs.glob(f"{prefix}/*/state.json"):
        try:
            done = max(done, int(json.loads(fs.cat(key))["epochs_done"]))
        except (FileNotFoundError, ValueError, KeyError):
            continue  # replaced between the listing and the read
    return done


def run_to_end(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    result = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    return result.returncode, result.stdout + result.stderr


def test_killing_the_training_worker_fails_the_run_and_a_rerun_resumes_to_the_same_model_version(cluster_home, cluster_up):
    home = cluster_home
    exported = cluster_env(home)
    env = {**os.environ, **exported, **pipeline_settings(home)}

    # The version an uninterrupted run of the same command registers (the version is the model's content hash).
    code, output = run_to_end(run_command(home, home / "uninterrupted.json"), env)
    assert code == 0, output
    uninterrupted_version = json.loads((home / "uninterrupted.json").read_text())["metrics"]["model_version"]
    assert checkpoint_epochs(exported) == 0, "a finished training clears its checkpoint"

    # The same command, on a fresh training key would resume nothing: the finished run cleared its checkpoint,
    # so this run trains from scratch; kill the training worker once epoch 1+ is checkpointed.
    killed_json = home / "killed.json"
    run = subprocess.Popen(run_command(home, killed_json), env={**env, "MNIST_WORKER_SILENCE_SECONDS": str(SILENCE_SECONDS)}, cwd=REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 600
        while (done := checkpoint_epochs(exported)) < 1:
            assert run.poll() is None, f"the run ended before a checkpoint appeared:\n{run.stdout.read()}"
            assert time.monotonic() < deadline, "no training checkpoint in the object store within 600 s"
            time.sleep(0.2)
        assert done < EPOCHS
        worker_pid = int((home / "run" / "worker-training.pid").read_text())
        os.killpg(worker_pid, signal.SIGKILL)  # the whole worker, as when its machine dies
        killed_at = time.monotonic()
        try:
            killed_output, _ = run.communicate(timeout=FAILED_WITHIN_SECONDS)
            ended_by_itself = True
        except subprocess.TimeoutExpired:
            # What a user does with a run that waits on a dead worker: Ctrl-C (Dagster interrupts the run).
            ended_by_itself = False
            run.send_signal(signal.SIGINT)
            killed_output, _ = run.communicate(timeout=120)
        ended_after = time.monotonic() - killed_at
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    print(f"training worker killed after epoch {done}; the run ended after {ended_after:.0f} s, "
          f"{'by itself' if ended_by_itself else 'stopped by SIGINT'} (exit {run.returncode})")
    assert run.returncode != 0, killed_output

    # The worker back (up starts what is down), the same command resumes and registers the same version.
    up = run_cluster("up", home, env=pipeline_settings(home)).stdout
    assert "  worker-training: started" in up, up
    code, output = run_to_end(run_command(home, home / "resumed.json"), env)
    assert code == 0, output
    assert checkpoint_epochs(exported) == 0
    # Training logs the resume in the step's process (the worker's log) and its event log (the command's output).
    logged = output + (home / "logs" / "worker-training.log").read_text()
    resumed_at = [int(epoch) for epoch in re.findall(rf"Resuming from the checkpoint after epoch (\d+) of {EPOCHS}", logged)]
    assert resumed_at and resumed_at[-1] >= done, logged[-3000:]
    assert json.loads((home / "resumed.json").read_text())["metrics"]["model_version"] == uninterrupted_version

    # Checked last, once the worker is back for the later cluster tests.
    assert ended_by_itself, f"still waiting {FAILED_WITHIN_SECONDS:.0f} s after the training worker was killed:\n{killed_output[-3000:]}"
    assert ended_after < FAILED_WITHIN_SECONDS
    # The reason, naming the step and the worker, is what the user reads last.
    last_lines = "\n".join(killed_output.strip().splitlines()[-5:])
    assert re.search(r"step trained_model: its Celery worker training@\S+ has not answered for \d+ s", last_lines), killed_output[-3000:]


def test_a_signal_to_the_command_stops_the_training_on_its_worker(cluster_home, cluster_up):
    """Ctrl-C (or SIGTERM) to a run on the cluster stops the step on the worker, not only the waiting.

    dagster-celery answers the signal by revoking the step's task, which only keeps a task from starting: the
    training went on to its last epoch, and the command waited for it. The task is now revoked with SIGINT to
    the worker's pool process, where Dagster interrupts the step; the worker lives on and the checkpoint stays.
    """
    home = cluster_home
    exported = cluster_env(home)
    env = {**os.environ, **exported, **pipeline_settings(home)}
    epochs = 400  # far more than the wait below leaves time for: the run must be stopped, not finish
    command = [str(REPO / ".venv" / "bin" / "mnist-pipeline"), "run", "--epochs", str(epochs), "--seed", "11",
               "--json", str(home / "signalled.json")]  # fmt: skip
    run = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 600
        while checkpoint_epochs(exported) < 1:
            assert run.poll() is None, f"the run ended before a checkpoint appeared:\n{run.stdout.read()}"
            assert time.monotonic() < deadline, "no training checkpoint in the object store within 600 s"
            time.sleep(0.2)
        run.send_signal(signal.SIGINT)
        output, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 130, output[-3000:]
    assert output.strip().splitlines()[-1].endswith("FAILED: interrupted (SIGINT or SIGTERM)"), output[-3000:]
    stopped_at = checkpoint_epochs(exported)
    time.sleep(10)  # several epochs of this data set, had the training gone on
    assert checkpoint_epochs(exported) == stopped_at < epochs, "the training went on on its worker"
    assert "  worker-training  up" in run_cluster("status", home).stdout, "the worker lives on"

    # Its checkpoint is removed, so that no later test finds it (the crash test counts checkpoints).
    import s3fs

    fs = s3fs.S3FileSystem(
        skip_instance_cache=True, key=exported["AWS_ACCESS_KEY_ID"], secret=exported["AWS_SECRET_ACCESS_KEY"],
        client_kwargs={"endpoint_url": exported["AWS_ENDPOINT_URL"], "region_name": exported["AWS_REGION"]},
    )
    fs.rm(exported["MNIST_STORAGE_URL"].removeprefix("s3://") + "/training_checkpoints", recursive=True)
    assert checkpoint_epochs(exported) == 0
