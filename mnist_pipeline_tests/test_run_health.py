"""A run whose process is SIGKILLed ends up FAILURE, not STARTED forever (real processes, a real daemon)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from mnist_pipeline.defs.model.config import hyperparameters_run_config
from mnist_pipeline.defs.automation.run_health import fail_dead_runs, process_alive, run_process
from mnist_pipeline_tests.synthetic import make_dataset, write_idx_dir

pytestmark = pytest.mark.slow  # the fast tier (-m 'not slow') leaves this module out

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCRIPTS_SETTINGS = REPO / "scripts" / "dagster.yaml"


@pytest.fixture(scope="module")
def bigger_idx_dir(tmp_path_factory) -> Path:
    """Enough images that a run is still going when it is killed."""
    return write_idx_dir(make_dataset(num_train=6000, num_test=200), tmp_path_factory.mktemp("idx"))


def pipeline_env(dagster_home: Path, idx_dir: Path, pipeline_home: Path) -> dict:
    return {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "MNIST_PIPELINE_HOME": str(pipeline_home),
        "MNIST_DATA_DIR": str(idx_dir),
        "MNIST_PIPELINE_ENV": "offline",
        "MNIST_MIN_TEST_ACCURACY": "0",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }


def dagster_home_with_script_settings(tmp_path: Path, poll_interval_seconds: int = 1) -> Path:
    """A DAGSTER_HOME with scripts/dagster.yaml, its monitoring interval shortened for the test."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    settings = SCRIPTS_SETTINGS.read_text()
    assert "poll_interval_seconds: 60" in settings
    (home / "dagster.yaml").write_text(settings.replace("poll_interval_seconds: 60", f"poll_interval_seconds: {poll_interval_seconds}"))
    return home



def start_cli_run(env: dict, log: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "mnist_pipeline", "run", "--epochs", "50", "--batch-size", "30"]
    with open(log, "wb") as out:
        return subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_until_started(instance: dg.DagsterInstance, process: subprocess.Popen, log: Path, timeout: float = 300) -> dg.DagsterRun:
    """The run that `process` executes, once it is STARTED and has logged its start."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
            if run_process(instance, run.run_id) is not None:
                return run
        if process.poll() is not None:
            pytest.fail(f"the run exited ({process.returncode}) before it could be killed:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"no run started within {timeout} s:\n{log.read_text()[-3000:]}")


def wait_for_status(instance: dg.DagsterInstance, run_id: str, status: dg.DagsterRunStatus, timeout: float) -> dg.DagsterRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run.status == status:
            return run
        time.sleep(1)
    pytest.fail(f"run {run_id} is {instance.get_run_by_id(run_id).status}, not {status}, after {timeout} s")


def stop(process: subprocess.Popen | None) -> None:
    """Stop a process this test started, and the processes it started (its own session)."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        pass
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def failure_message(instance: dg.DagsterInstance, run_id: str) -> str:
    failures = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    return failures[-1].dagster_event.message if failures else ""


def test_the_scripts_settings_enable_run_monitoring(tmp_path, open_instance):
    with open_instance(dagster_home_with_script_settings(tmp_path)) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_start_timeout_seconds == 180
        assert instance.run_monitoring_max_resume_run_attempts == 0


def test_a_process_is_alive_only_if_it_started_before_the_run_it_is_taken_for():
    assert process_alive(os.getpid(), started_by=time.time())
    assert not process_alive(os.getpid(), started_by=0.0), "a reused process id is not the run's process"
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert not process_alive(int(finished.stdout), started_by=time.time())


def test_dead_cli_run_is_failed_and_a_live_one_left_alone(bigger_idx_dir, tmp_path, open_instance):
    home = dagster_home_with_script_settings(tmp_path)
    log = tmp_path / "run.log"
    process = None
    try:
        with open_instance(home) as instance:  # its storage created before another process opens it
            process = start_cli_run(pipeline_env(home, bigger_idx_dir, tmp_path / "pipeline_home"), log)
            run = wait_until_started(instance, process, log)
            assert run_process(instance, run.run_id)[0] == process.pid, "the run's process is the command's"
            assert fail_dead_runs(instance) == [], "a live run is left alone"
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
            os.kill(process.pid, signal.SIGKILL)
            time.sleep(0.5)  # not reaped yet: a zombie, which runs nothing
            assert fail_dead_runs(instance) == [run.run_id]
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
            assert f"expected its process {process.pid} (which started it) to be running, found none" in failure_message(instance, run.run_id)
            assert fail_dead_runs(instance) == [], "failed once"
    finally:
        stop(process)


def write_workspace(tmp_path: Path) -> Path:
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: mnist_pipeline.definitions\n"
        f"      working_directory: {REPO}\n      location_name: mnist_pipeline\n"
    )
    return workspace


def start_daemon(instance: dg.DagsterInstance, env: dict, workspace: Path, log: Path) -> subprocess.Popen:
    """`dagster-daemon run`, as `dagster dev` runs it, once its sensor and monitoring loops are going."""
    with open(log, "wb") as out:
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
            cwd=workspace.parent, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    deadline = time.monotonic() + 180
    while not {"SENSOR", "MONITORING"} <= set(instance.get_daemon_heartbeats()):
        if daemon.poll() is not None or time.monotonic() > deadline:
            stop(daemon)
            pytest.fail(f"the daemon did not start its sensor and monitoring loops:\n{log.read_text()[-3000:]}")
        time.sleep(1)
    return daemon


def test_the_daemon_fails_a_sigkilled_cli_run(bigger_idx_dir, tmp_path, open_instance):
    """`dagster-daemon` (as `dagster dev` runs it) with the scripts' settings; `mnist-pipeline run` SIGKILLed."""
    home = dagster_home_with_script_settings(tmp_path)
    env = pipeline_env(home, bigger_idx_dir, tmp_path / "pipeline_home")
    daemon_log, run_log = tmp_path / "daemon.log", tmp_path / "run.log"
    daemon = run = None
    try:
        with open_instance(home) as instance:  # its storage created before another process opens it
            daemon = start_daemon(instance, env, write_workspace(tmp_path), daemon_log)
            run = start_cli_run(env, run_log)
            started = wait_until_started(instance, run, run_log)
            os.kill(run.pid, signal.SIGKILL)
            run.wait(timeout=30)
            # The sensor is evaluated every 30 s; allow for a slow, busy machine.
            failed = wait_for_status(instance, started.run_id, dg.DagsterRunStatus.FAILURE, timeout=180)
            assert f"expected its process {run.pid} (which started it) to be running, found none" in failure_message(
                instance, failed.run_id
            ), daemon_log.read_text()[-3000:]
    finally:
        stop(run)
        stop(daemon)


def test_a_run_launched_through_the_code_server_is_failed_when_its_process_is_killed(bigger_idx_dir, tmp_path, open_instance):
    """What the UI and the daemon launch: the code server that started the run's process fails it (Dagster's own
    doing, with or without these settings), well before the sensor's next evaluation."""
    home = dagster_home_with_script_settings(tmp_path)
    env = pipeline_env(home, bigger_idx_dir, tmp_path / "pipeline_home")
    workspace = write_workspace(tmp_path)
    daemon_log = tmp_path / "daemon.log"
    daemon = None
    try:
        with open_instance(home) as instance:
            daemon = start_daemon(instance, env, workspace, daemon_log)
            config = json.dumps(hyperparameters_run_config(epochs=50, batch_size=30))
            launch = subprocess.run(  # queued; the daemon launches it through its code server
                [str(BIN / "dagster"), "job", "launch", "-w", str(workspace), "-j", "mnist_full_pipeline", "--config-json", config],
                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
            )
            assert launch.returncode == 0, launch.stderr[-3000:]
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                started = [r for r in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
                           if run_process(instance, r.run_id)]
                if started:
                    break
                time.sleep(0.5)
            else:
                pytest.fail(f"the launched run never started:\n{daemon_log.read_text()[-3000:]}")
            pid, _ = run_process(instance, started[0].run_id)
            assert pid not in (os.getpid(), daemon.pid), "the run executes in a process of its own"
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            wait_for_status(instance, started[0].run_id, dg.DagsterRunStatus.FAILURE, timeout=60)
            seconds = time.monotonic() - killed_at
            engine_messages = [e.dagster_event.message for e in instance.all_logs(started[0].run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)]
            assert any(f"Run execution process for {started[0].run_id} was terminated by signal 9 (SIGKILL)" in m for m in engine_messages), engine_messages
            print(f"marked FAILURE {seconds:.1f} s after the kill")
    finally:
        stop(daemon)


def source_env_sh(dagster_home: Path) -> None:
    subprocess.run(["bash", "-c", f'source "{REPO}/scripts/env.sh"'], env={**os.environ, "DAGSTER_HOME": str(dagster_home)}, check=True)


def test_env_sh_installs_the_settings_in_a_new_home(tmp_path):
    source_env_sh(tmp_path / "new_home")
    assert (tmp_path / "new_home" / "dagster.yaml").read_text() == SCRIPTS_SETTINGS.read_text()


def test_env_sh_adds_run_monitoring_to_an_existing_home_and_keeps_its_own_settings(tmp_path, open_instance):
    home = tmp_path / "home"
    home.mkdir()
    own = "telemetry:\n  enabled: true\nrun_retries:\n  enabled: true\n  max_retries: 1\n"
    (home / "dagster.yaml").write_text(own)
    source_env_sh(home)
    source_env_sh(home)  # a second time adds nothing
    settings = (home / "dagster.yaml").read_text()
    assert settings.startswith(own), "the user's settings are left as they were"
    assert settings.count("run_monitoring:") == 1 and settings.count("telemetry:") == 1
    with open_instance(home) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_retries_max_retries == 1


def test_env_sh_keeps_a_users_own_run_monitoring(tmp_path, open_instance):
    home = tmp_path / "home"
    home.mkdir()
    own = "run_monitoring:\n  enabled: false\n"
    (home / "dagster.yaml").write_text(own)
    source_env_sh(home)
    assert "run_monitoring:\n  enabled: false\n" in (home / "dagster.yaml").read_text()
    with open_instance(home) as instance:
        assert not instance.run_monitoring_enabled


# What scripts/dagster.yaml wrote before the training pool (2026-11-26 to 2026-11-27): a limit on a run tag
# that no run carries any more.
EARLIER_TRAINING_LIMIT = """concurrency:
  runs:
    tag_concurrency_limits:
      - key: mnist_pipeline/training
        value: "true"
        limit: 1
"""


def test_env_sh_turns_the_earlier_limit_on_training_runs_into_the_pool_limit(tmp_path, open_instance):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: true\n" + EARLIER_TRAINING_LIMIT)
    source_env_sh(home)
    source_env_sh(home)  # a second time changes nothing more
    settings = (home / "dagster.yaml").read_text()
    assert "mnist_pipeline/training" not in settings and settings.count("concurrency:") == 1
    assert settings.startswith("telemetry:\n  enabled: true\n"), "the user's other settings are left as they were"
    with open_instance(home) as instance:
        pools = instance.get_concurrency_config().pool_config
        assert (pools.pool_granularity.value, pools.default_pool_limit) == ("run", 1)


def test_env_sh_leaves_a_limit_on_training_runs_the_user_changed(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    own = EARLIER_TRAINING_LIMIT.replace("limit: 1", "limit: 2")
    (home / "dagster.yaml").write_text(own)
    source_env_sh(home)
    assert (home / "dagster.yaml").read_text().startswith(own)
