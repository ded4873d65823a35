"""What `mnist-pipeline` prints, run as a real subprocess on the synthetic data set.

One line per step with its outcome and the summary, not Dagster's event log
(unless --verbose); a progress bar on a terminal only; a failed run ends with
its root cause on stderr (the file, the field, or the accuracy gate with what
to run next), a non-zero exit code and its --json file.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from mnist_pipeline_tests.synthetic import make_dataset, write_idx_dir

pytestmark = pytest.mark.slow  # the fast tier (-m 'not slow') leaves this module out

REPO = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).with_name("mnist-pipeline")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LOCATION_VARIABLES = ("DAGSTER_HOME", "MNIST_PIPELINE_HOME", "MNIST_STORAGE_DIR", "MNIST_CACHE_DIR", "MNIST_DATA_DIR")


def full_pipeline_steps() -> list[str]:
    from mnist_pipeline.definitions import defs

    return [node.name for node in defs().resolve_job_def("mnist_full_pipeline").nodes_in_topological_order]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_idx_dir(make_dataset(), tmp_path_factory.mktemp("idx"))


def cli_env(home: Path, data_dir: Path, **extra: str) -> dict[str, str]:
    """A fresh Dagster home and pipeline home (as scripts/env.sh sets them up), reading `data_dir`."""
    (home / "dagster_home").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "scripts" / "dagster.yaml", home / "dagster_home" / "dagster.yaml")
    env = {name: value for name, value in os.environ.items() if name not in LOCATION_VARIABLES and not name.startswith("MNIST_")}
    env.update(
        DAGSTER_HOME=str(home / "dagster_home"),
        MNIST_PIPELINE_HOME=str(home),
        MNIST_DATA_DIR=str(data_dir),
        MNIST_PIPELINE_ENV="offline",
        MNIST_MIN_TEST_ACCURACY="0",
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    env.update(extra)
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=600)


def step_line(stdout: str, step: str) -> str:
    """The one line that reports `step`'s outcome (clock, step, outcome, ...); a retried step has "retrying" lines before it."""
    lines = [line for line in stdout.splitlines() if re.match(rf"^\d\d:\d\d:\d\d  {re.escape(step)} +(succeeded|failed|skipped) ", line + " ")]
    assert len(lines) == 1, f"expected one outcome line for {step}, found {lines}\n{stdout}"
    return lines[0]


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_plain_output_is_one_line_per_step_and_the_summary(data_dir, tmp_path):
    env = cli_env(tmp_path / "home", data_dir)
    summary = tmp_path / "summary.json"
    result = cli(env, "run", "--epochs", "1", "--json", str(summary))
    assert result.returncode == 0, result.stderr[-3000:]

    for step in full_pipeline_steps():
        assert re.search(r" succeeded +\d+\.\d s", step_line(result.stdout, step))
    assert "4 checks passed" in step_line(result.stdout, "raw_mnist_checks")
    assert re.search(r"^\d\d:\d\d:\d\d +trained_model: epoch 1/1: accuracy=", result.stdout, re.MULTILINE)
    report = json.loads(summary.read_text())
    assert f"Run {report['run_id']} succeeded in " in result.stdout
    assert f"Test accuracy: {report['metrics']['test_accuracy']:.4f}" in result.stdout
    assert report["success"] is True and report["failure"] is None
    # No event log, no bar, no escape codes: a pipe gets plain lines.
    everything = result.stdout + result.stderr
    for event_log_mark in ("DEBUG", "STEP_START", "STEP_SUCCESS", "RESOURCE_INIT", " - dagster - "):
        assert event_log_mark not in everything
    assert "\x1b[" not in result.stdout and "━" not in result.stdout

    # --verbose keeps Dagster's event log (here: update, which finds nothing changed).
    verbose = cli(env, "update", "--verbose")
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert re.search(r" - dagster - DEBUG - mnist_observe_sources - .* - RUN_START - ", verbose.stderr)
    assert "STEP_SUCCESS" in verbose.stderr
    assert "Nothing changed" in verbose.stdout


def test_terminal_output_has_a_progress_bar(tmp_path):
    data_dir = write_idx_dir(make_dataset(num_train=3000, num_test=100), tmp_path / "idx")
    env = cli_env(tmp_path / "home", data_dir, TERM="xterm-256color", COLUMNS="160")
    leader, follower = pty.openpty()
    process = subprocess.Popen([str(CLI), "run", "--epochs", "2"], env=env, cwd=REPO, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=60) == 0
    screen = b"".join(chunks).decode("utf-8", "replace")
    text = ANSI.sub("", screen)
    # The bar: each epoch's row with its bar and the running metrics, drawn in place (escape codes).
    assert re.search(r"epoch 2/2 +[━╸╺]+ *accuracy \d\.\d{4}  loss \d\.\d{4}", text), text[-3000:]
    assert "\x1b[" in screen
    assert re.search(r"trained_model +succeeded", text)
    assert "Test accuracy:" in text


def test_bad_data_directory_ends_with_the_file(tmp_path):
    data_dir = write_idx_dir(make_dataset(), tmp_path / "idx")
    (data_dir / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05ab")  # truncated
    summary = tmp_path / "summary.json"
    result = cli(cli_env(tmp_path / "home", data_dir), "run", "--epochs", "1", "--json", str(summary))
    assert result.returncode != 0
    last = last_line(result.stderr)
    assert f"{data_dir / 't10k-labels-idx1-ubyte'}: truncated" in last
    assert "raw_mnist" in last
    assert "max_retries" not in last and "Error occurred while executing" not in last
    assert "t10k-labels-idx1-ubyte: truncated" in step_line(result.stdout, "raw_mnist")
    assert "upstream step raw_mnist failed" in step_line(result.stdout, "trained_model")
    failure = json.loads(summary.read_text())["failure"]
    assert failure["step"] == "raw_mnist" and "t10k-labels-idx1-ubyte: truncated" in failure["message"]


def test_epochs_zero_ends_with_the_field(data_dir, tmp_path):
    result = cli(cli_env(tmp_path / "home", data_dir), "run", "--epochs", "0")
    assert result.returncode != 0
    last = last_line(result.stderr)
    assert "hyperparameters" in last and "epochs" in last
    assert "Error occurred while executing" not in last
    assert "failed" in step_line(result.stdout, "hyperparameters")
    assert "skipped" in step_line(result.stdout, "trained_model")


def test_accuracy_gate_failure_says_what_to_run_and_that_command_draws_the_plots(data_dir, tmp_path):
    home = tmp_path / "home"
    summary = tmp_path / "summary.json"
    result = cli(cli_env(home, data_dir, MNIST_MIN_TEST_ACCURACY="0.999"), "run", "--epochs", "1", "--json", str(summary))
    assert result.returncode != 0

    report = json.loads(summary.read_text())
    version, accuracy = report["metrics"]["model_version"], report["metrics"]["test_accuracy"]
    assert report["success"] is False
    assert report["failure"]["step"] == "evaluation_metrics_accuracy_gate"
    assert report["failure"]["check"] == "evaluation_metrics:accuracy_gate"
    assert report["failure"]["gate"] == {"test_accuracy": accuracy, "threshold": 0.999, "model_version": version}
    assert "predictions_table" not in report["paths"]

    last = last_line(result.stderr)
    assert f"model {version} has test accuracy {accuracy:.4f}, below the threshold 0.9990 (MNIST_MIN_TEST_ACCURACY)" in last
    assert "registered but not served" in last
    assert (home / "storage" / "model_registry" / version / "manifest.json").exists()
    assert not (home / "storage" / "production_model.json").exists()
    assert "failed" in step_line(result.stdout, "evaluation_metrics_accuracy_gate")
    for step in ("predictions_table", "digit_plots", "production_model"):
        assert "skipped" in step_line(result.stdout, step) and "evaluation_metrics:accuracy_gate" in step_line(result.stdout, step)

    # The command it prints works as pasted, from a shell that has none of the pipeline's variables set.
    command = last.split("To draw them anyway: ", 1)[1]
    assert "predictions-and-plots" in command
    bare = {name: value for name, value in os.environ.items() if name not in LOCATION_VARIABLES and not name.startswith("MNIST_")}
    redraw = subprocess.run(["bash", "-c", command], env=bare, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert redraw.returncode == 0, redraw.stderr[-3000:]
    for step in ("predictions_table", "predictions_table_checks", "digit_plots"):
        assert "succeeded" in step_line(redraw.stdout, step)
    assert (home / "storage" / "predictions_table.parquet").exists()
    assert any((home / "storage" / "digit_plots").glob("*.png"))
    assert not (home / "storage" / "production_model.json").exists()


# The root cause, in process: the same extraction whether or not Dagster retried the step first.
@pytest.mark.parametrize("retries", [0, 1])
def test_root_cause_is_the_error_the_step_raised(retries):
    from mnist_pipeline.cli.run_outcome import failure_of

    @dg.asset(retry_policy=dg.RetryPolicy(max_retries=retries) if retries else None)
    def broken() -> None:
        try:
            {}["images"]
        except KeyError as missing:
            raise ValueError("/data/train-images-idx3-ubyte: expected magic 2051, found 2049") from missing

    result = dg.materialize([broken], raise_on_error=False)
    assert not result.success
    failure = failure_of(result, {})
    assert failure.step == "broken" and failure.check is None
    assert failure.message == "ValueError: /data/train-images-idx3-ubyte: expected magic 2051, found 2049"


def test_training_progress_reaches_its_watcher_on_the_training_thread_throttled(tmp_path):
    """Real Keras training: the bar hears of batches at most every 0.25 s, on the training thread, with the running metrics."""
    import threading

    import numpy as np

    from mnist_pipeline.ml.model.network import build_tutorial_model, compile_model, progress_callbacks
    from mnist_pipeline.ml.model.progress import watching_training
    from mnist_pipeline.ml.model.training import fit_resumably

    class Recorder:
        def __init__(self):
            self.epochs, self.batches, self.finished = [], [], []

        def epoch_started(self, epoch, epochs, steps_per_epoch):
            self.epochs.append((epoch, epochs, steps_per_epoch))

        def batch_finished(self, steps_done, logs):
            self.batches.append((time.monotonic(), threading.get_ident(), steps_done, dict(logs)))

        def epoch_finished(self, epoch, logs):
            self.finished.append((epoch, dict(logs)))

    data = make_dataset(num_train=2000, num_test=10)
    images, labels = data.train_images.astype(np.float32) / 255, data.train_labels
    indices = np.arange(len(labels))
    recorder = Recorder()
    assert progress_callbacks() == []  # nobody watching: training gets no extra callback
    with watching_training(recorder):
        fit_resumably(
            compile_model(build_tutorial_model(0), "sgd", 0.01), images, labels, indices[:1800], indices[1800:],
            epochs=2, batch_size=10, seed=0, checkpoint_dir=tmp_path / "checkpoint", log=lambda message: None,
        )
    assert recorder.epochs == [(0, 2, 180), (1, 2, 180)]
    assert [epoch for epoch, _ in recorder.finished] == [0, 1]
    assert recorder.batches, "no batch update reached the watcher"
    assert {thread for _, thread, _, _ in recorder.batches} == {threading.get_ident()}
    assert all(0 < steps <= 180 and {"loss", "accuracy"} <= set(logs) for _, _, steps, logs in recorder.batches)
    times = [moment for moment, _, _, _ in recorder.batches]
    assert all(later - earlier >= 0.25 for earlier, later in zip(times, times[1:]))


def test_an_interrupted_step_is_said_so_not_named_by_dagster_s_class_path():
    """Dagster's interruption (what SIGINT or SIGTERM raises in a step) has its class's path as its whole message."""
    from mnist_pipeline.cli.run_outcome import INTERRUPTED, failure_of, root_cause
    from mnist_pipeline.defs.interrupts import was_interrupted

    @dg.asset
    def training() -> None:
        raise dg.DagsterExecutionInterruptedError()

    result = dg.materialize([training], raise_on_error=False)
    failure = failure_of(result, {})
    assert failure.step == "training" and failure.message == INTERRUPTED == "interrupted (SIGINT or SIGTERM)"
    assert failure.interrupted and was_interrupted(result.all_events)
    assert root_cause(result.get_step_failure_events()[0].step_failure_data.error) == INTERRUPTED

    @dg.asset
    def broken() -> None:
        raise ValueError("/data/train-images-idx3-ubyte: expected magic 2051, found 2049")

    other = dg.materialize([broken], raise_on_error=False)
    assert not failure_of(other, {}).interrupted and not was_interrupted(other.all_events)
