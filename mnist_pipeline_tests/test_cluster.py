"""scripts/cluster: the multi-machine deployment's infrastructure, stood up for real on this machine.

One cluster for the session (conftest.py's `cluster_home`, a temporary MNIST_CLUSTER_HOME, on its
own port block so that a cluster the user runs on the default ports is left alone): `up` from
nothing, then each component is checked through its own client, then a second `up` is a no-op,
then `down` (run after every other cluster test of the session: marked `stops_cluster`) leaves
no listener and no process. The session's finalizer runs `down` whatever happened, so a failing
test never leaves the cluster running.

The first `up` on a fresh machine installs PostgreSQL and Redis (apt-get) and the `cluster` extra.
Deselect with -m "not cluster".
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import textwrap
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import yaml

pytestmark = pytest.mark.cluster

from mnist_pipeline.defs.executor import TRAINING_POOL
from mnist_pipeline_tests.cluster_support import (
    EPHEMERAL_PORT_RANGE,
    PORT_BASE,
    REPO,
    SCRIPT,
    pipeline_settings,
    run_cluster,
)
from mnist_pipeline_tests.cluster_support import cluster_env as exported_env

PYTHON = REPO / ".venv" / "bin" / "python"
PORTS = range(PORT_BASE, PORT_BASE + 11)
COMPONENTS = ["postgresql", "redis", "seaweedfs", "worker-dagster", "worker-training", "daemon", "webserver"]
PROCESS_COMPONENTS = [name for name in COMPONENTS if name != "postgresql"]  # pg_ctl manages PostgreSQL


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def processes_under(home: Path) -> list[str]:
    """Command lines of the running processes that mention the cluster home."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next(line for line in (proc / "status").read_text().splitlines() if line.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if str(home) in cmdline and "zombie" not in state:
            found.append(f"{proc.name}: {cmdline}")
    return found


def python_with_cluster_env(code: str, env: dict[str, str]) -> str:
    """Runs `code` in the project's Python (which has the cluster extra after `up`) with the cluster's env."""
    result = subprocess.run(
        [str(PYTHON), "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def cluster(cluster_home, cluster_up):
    return cluster_home, cluster_up


@pytest.fixture(scope="module")
def cluster_env(cluster) -> dict[str, str]:
    """The variables `scripts/cluster env` exports."""
    home, _ = cluster
    return exported_env(home)


def test_up_from_nothing_starts_every_component_and_status_reports_each_up(cluster):
    home, first_up = cluster
    for name in COMPONENTS:
        assert f"  {name}: answers" in first_up.stdout, first_up.stdout
    status = run_cluster("status", home).stdout
    states = {line.split()[0]: line.split()[1] for line in status.splitlines() if line.startswith("  ")}
    assert states == {name: "up" for name in COMPONENTS}, status
    assert f"http://127.0.0.1:{PORT_BASE}" in status
    # Nothing on stderr: a slip in the script (a backquote in a heredoc ran `training` as a command) shows there.
    assert first_up.stderr == "", first_up.stderr


def test_env_prints_the_variables_a_shell_needs(cluster, cluster_env):
    home, _ = cluster
    celery_config = yaml.safe_load((home / "celery.yaml").read_text())["execution"]["config"]
    assert cluster_env == {
        "DAGSTER_HOME": str(home / "dagster_home"),
        "MNIST_PIPELINE_ENV": "cluster",
        "MNIST_STORAGE_URL": "s3://mnist-pipeline/artifacts",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{PORT_BASE + 3}",
        "AWS_ACCESS_KEY_ID": cluster_env["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": cluster_env["AWS_SECRET_ACCESS_KEY"],
        "AWS_REGION": "us-east-1",
        # What the runs' executor sends the steps through: the broker and backend the workers use (celery.yaml).
        "MNIST_CELERY_BROKER_URL": celery_config["broker"],
        "MNIST_CELERY_BACKEND_URL": celery_config["backend"],
    }
    # Generated per cluster home, not a well-known default.
    assert len(cluster_env["AWS_SECRET_ACCESS_KEY"]) == 32
    assert re.fullmatch(rf"redis://:[0-9a-f]{{32}}@127\.0\.0\.1:{PORT_BASE + 2}/0", cluster_env["MNIST_CELERY_BROKER_URL"])
    assert cluster_env["MNIST_CELERY_BACKEND_URL"] == cluster_env["MNIST_CELERY_BROKER_URL"][:-1] + "1"


def test_the_dagster_instance_is_on_postgresql_with_the_queued_coordinator_and_s3_compute_logs(cluster_env):
    output = python_with_cluster_env(
        """
        import dagster as dg

        @dg.asset
        def cluster_probe():
            print("step output for the compute log")
            return 1

        instance = dg.DagsterInstance.get()
        result = dg.materialize([cluster_probe], instance=instance)
        print("probe:", type(instance.run_storage).__name__)
        print("probe:", type(instance.event_log_storage).__name__)
        print("probe:", type(instance.schedule_storage).__name__)
        print("probe:", type(instance.run_coordinator).__name__)
        print("probe:", type(instance.compute_log_manager).__name__)
        pools = instance.get_concurrency_config().pool_config
        print("probe:", f"{pools.pool_granularity.value}/{pools.default_pool_limit}")
        print("probe:", [(pool.name, pool.limit) for pool in instance.event_log_storage.get_pool_limits()] == [("training", 1)])
        print("probe:", result.run_id)
        import s3fs
        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        stdout_logs = fs.glob(f"mnist-pipeline/compute-logs/storage/{result.run_id}/compute_logs/*.out")
        print("probe:", b"step output for the compute log" in b"".join(fs.cat(key) for key in stdout_logs))
        """,
        cluster_env,
    )
    probes = [line.split()[1] for line in output.splitlines() if line.startswith("probe: ")]
    run_storage, event_log_storage, schedule_storage, coordinator, compute_logs, pools, pool_stored, run_id, step_output_in_s3 = probes
    assert (run_storage, event_log_storage, schedule_storage) == (
        "PostgresRunStorage",
        "PostgresEventLogStorage",
        "PostgresScheduleStorage",
    )
    assert coordinator == "QueuedRunCoordinator"
    assert pools == "run/1"  # one run in each concurrency pool at a time: one run that trains
    assert pool_stored == "True"  # stored by `up`, before the daemon saw a run of the pool
    assert compute_logs == "S3ComputeLogManager"
    assert step_output_in_s3 == "True"  # the step's stdout was uploaded to SeaweedFS

    # Read back by another process, and straight from PostgreSQL's `runs` table.
    read_back = python_with_cluster_env(
        f"""
        import dagster as dg
        run = dg.DagsterInstance.get().get_run_by_id({run_id!r})
        print(run.status.value)
        """,
        cluster_env,
    )
    assert read_back.strip() == "SUCCESS"
    rows = python_with_cluster_env(
        f"""
        import sqlalchemy
        import dagster as dg
        url = dg.DagsterInstance.get().run_storage.postgres_url
        with sqlalchemy.create_engine(url).connect() as connection:
            print(connection.execute(sqlalchemy.text("SELECT status FROM runs WHERE run_id = :id"), {{"id": {run_id!r}}}).scalar())
        """,
        cluster_env,
    )
    assert rows.strip() == "SUCCESS"


def test_an_object_written_at_the_storage_url_reads_back_through_s3fs(cluster_env):
    key = f"cluster-test-{uuid.uuid4().hex}.bin"
    output = python_with_cluster_env(
        f"""
        import os
        import s3fs
        from upath import UPath

        url = os.environ["MNIST_STORAGE_URL"] + "/{key}"
        payload = bytes(range(256)) * 64
        with s3fs.S3FileSystem(skip_instance_cache=True).open(url, "wb") as file:
            file.write(payload)
        fresh = s3fs.S3FileSystem(skip_instance_cache=True)
        assert fresh.cat(url) == payload
        assert UPath(url).read_bytes() == payload
        print(fresh.size(url))
        fresh.rm(url)
        print(fresh.exists(url))
        """,
        cluster_env,
    )
    assert output.split() == [str(256 * 64), "False"]


def test_redis_answers_and_a_worker_consumes_each_queue(cluster):
    home, _ = cluster
    output = python_with_cluster_env(
        f"""
        import celery
        import redis
        import yaml

        config = yaml.safe_load(open({str(home / "celery.yaml")!r}))["execution"]["config"]
        print(redis.Redis.from_url(config["broker"]).ping())
        app = celery.Celery(broker=config["broker"], backend=config["backend"])
        queues = app.control.inspect(timeout=5.0).active_queues() or {{}}
        for worker, consumed in sorted(queues.items()):
            print(worker.split("@")[0], ",".join(sorted(queue["name"] for queue in consumed)))
        """,
        {},
    )
    assert output.splitlines() == ["True", "dagster dagster", "training training"]


STEP_EVENTS_READ_FROM_POSTGRESQL = """
import contextlib
import json
import sys
import dagster as dg

run = dg.DagsterInstance.get().get_run_by_id(sys.argv[1])
steps, run_pids = {}, set()
for entry in dg.DagsterInstance.get().all_logs(run.run_id):
    event = entry.dagster_event
    if event is None:
        continue
    if event.event_type == dg.DagsterEventType.RUN_START:
        run_pids.add(event.pid)
    elif event.step_key and event.event_type == dg.DagsterEventType.STEP_START:
        steps.setdefault(event.step_key, {})["pid"] = event.pid
    elif event.step_key and event.is_engine_event and "Celery worker" in event.engine_event_data.metadata:
        # dagster-celery's task reports the worker (its node name, <queue>@<host>) that took the step.
        steps.setdefault(event.step_key, {})["worker"] = event.engine_event_data.metadata["Celery worker"].value
pools = sorted(run.run_op_concurrency.all_pools or []) if run.run_op_concurrency else []
print(json.dumps({"status": run.status.value, "pools": pools, "run_pids": sorted(run_pids), "steps": steps}))
"""


def preloaded_pids(home: Path, queue: str) -> list[int]:
    """The pool processes of a queue's worker that imported TensorFlow and the code location (mnist_pipeline/cluster/worker.py)."""
    log = (home / "logs" / f"worker-{queue}.log").read_text()
    return [int(pid) for pid in re.findall(r"mnist_pipeline preloaded TensorFlow \S+, Keras \S+ and the code location in pid (\d+)", log)]


def test_mnist_pipeline_run_executes_every_step_on_a_worker_and_trains_on_the_training_queue(cluster, cluster_env):
    """The user's path: `eval "$(scripts/cluster env)"; mnist-pipeline run`; then the run's events, read from PostgreSQL."""
    home, _ = cluster
    env = {**os.environ, **cluster_env, **pipeline_settings(home)}
    command = [str(REPO / ".venv" / "bin" / "mnist-pipeline"), "run", "--epochs", "1", "--json", str(home / "run.json")]
    with subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as run:
        output, _ = run.communicate(timeout=600)
    assert run.returncode == 0, output
    # The command shows each step's line, as on one machine, from the events the workers record (cli/display.py).
    for step in ("raw_mnist", "scaled_mnist", "compiled_model", "trained_model", "evaluation_metrics", "digit_plots"):
        assert len(re.findall(rf"  {step} +succeeded", output)) == 1, output
    assert "already registered" not in output  # dagster-celery's task registered again per step: filtered (defs/executor.py)
    run_id = json.loads((home / "run.json").read_text())["run_id"]
    events = json.loads(
        subprocess.run(
            [str(PYTHON), "-c", STEP_EVENTS_READ_FROM_POSTGRESQL, run_id],
            env={**os.environ, **cluster_env}, capture_output=True, text=True, timeout=300, cwd=REPO, check=True,
        ).stdout
    )
    assert events["status"] == "SUCCESS"
    # Every artifact the run reports is in the object store, none on the disk of a process that ran a step.
    paths = json.loads((home / "run.json").read_text())["paths"]
    assert paths and all(str(path).startswith(cluster_env["MNIST_STORAGE_URL"] + "/") for path in paths.values()), paths
    assert events["pools"] == [TRAINING_POOL]  # what the cluster's run queue limits, recorded in PostgreSQL
    assert events["run_pids"] == [run.pid]  # the run was orchestrated by the command's own process
    steps = events["steps"]
    assert {"hyperparameters", "raw_mnist", "scaled_mnist", "compiled_model", "trained_model", "evaluation_metrics",
            "predictions_table", "digit_plots", "production_model"} <= set(steps)

    # Each worker loaded TensorFlow once, in its one pool process, which then ran every step of its queue.
    dagster_pid, = preloaded_pids(home, "dagster")
    training_pid, = preloaded_pids(home, "training")
    training = steps.pop("trained_model")
    assert (training["worker"].split("@")[0], training["pid"]) == ("training", training_pid)
    assert {(step["worker"].split("@")[0], step["pid"]) for step in steps.values()} == {("dagster", dagster_pid)}, steps
    assert run.pid not in {dagster_pid, training_pid}


def test_up_a_second_time_is_a_no_op(cluster):
    home, _ = cluster
    pids_before = {name: (home / "run" / f"{name}.pid").read_text() for name in PROCESS_COMPONENTS}
    second_up = run_cluster("up", home).stdout
    for name in COMPONENTS:
        assert f"  {name}: already running" in second_up, second_up
        assert f"  {name}: answers" in second_up, second_up
    assert "started (pid" not in second_up
    assert {name: (home / "run" / f"{name}.pid").read_text() for name in PROCESS_COMPONENTS} == pids_before


@pytest.mark.stops_cluster
def test_down_leaves_no_listener_and_no_process_and_can_run_twice(cluster):
    home, _ = cluster
    assert all(listening(port) for port in PORTS)  # every port of the block was in use
    down = run_cluster("down", home).stdout
    for name in COMPONENTS:
        assert f"  {name}: stopped" in down, down
    assert [port for port in PORTS if listening(port)] == []
    assert processes_under(home) == []
    assert not (home / "postgres" / "data" / "postmaster.pid").exists()
    again = run_cluster("down", home)
    assert again.returncode == 0
    assert "stopped" not in again.stdout


@contextlib.contextmanager
def listener_in_a_free_block(offset: int, first: int = PORT_BASE + 100) -> Iterator[int]:
    """A port base from `first` on whose block no program listens, with port base+offset then listened on
    by this test (another program), so that `up` stops at its checks. Not one fixed block: a block in
    Linux's ephemeral range may have a port briefly taken by a client's outgoing connection."""
    for base in range(first, first + 200, len(PORTS)):
        if any(listening(port) for port in range(base, base + len(PORTS))):
            continue
        with socket.socket() as other_program:
            other_program.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                other_program.bind(("127.0.0.1", base + offset))
            except OSError:
                continue
            other_program.listen()
            yield base
            return
    pytest.fail(f"no free block of {len(PORTS)} ports between {first} and {first + 200}")


def test_up_names_the_ports_in_use_by_another_program(tmp_path):
    """A port of the block already taken by something else: `up` starts nothing and says how to move."""
    home = tmp_path / "cluster"
    with listener_in_a_free_block(offset=2) as base:
        result = run_cluster("up", home, check=False, port_base=base)
    assert result.returncode == 1
    assert (
        f"cluster: ports {base + 2} are already in use by another program; "
        f"choose another block with MNIST_CLUSTER_PORT_BASE (now {base})"
    ) in result.stderr
    assert "warning" not in result.stderr  # the block lies below the ephemeral range
    assert not (home / "secrets.env").exists()


def test_up_warns_when_its_ports_overlap_the_ephemeral_range(tmp_path):
    """A block in the range the kernel takes clients' local ports from works until a client takes one of its
    ports: `up` says so. (A port of the block is held, so that `up` stops before starting anything.)"""
    low, high = map(int, EPHEMERAL_PORT_RANGE.read_text().split())
    with listener_in_a_free_block(offset=5, first=low + 1000) as base:
        result = run_cluster("up", tmp_path / "cluster", check=False, port_base=base)
    assert result.returncode == 1
    assert (
        f"cluster: warning: ports {base}-{base + len(PORTS) - 1} overlap this machine's ephemeral port range "
        f"({low}-{high}, {EPHEMERAL_PORT_RANGE}): any outgoing connection may take one of them, and a component "
        "then fails to start; choose MNIST_CLUSTER_PORT_BASE outside it"
    ) in result.stderr
    assert f"cluster: ports {base + 5} are already in use by another program" in result.stderr


def test_the_default_port_block_lies_below_the_ephemeral_range():
    """No client's outgoing connection can take a port of the block a user gets without setting one."""
    low, _ = map(int, EPHEMERAL_PORT_RANGE.read_text().split())
    default = int(re.search(r'base="\$\{MNIST_CLUSTER_PORT_BASE:-(\d+)\}"', SCRIPT.read_text()).group(1))
    assert default + len(PORTS) - 1 < low, (default, low)


def test_env_and_status_without_a_cluster_say_to_run_up(tmp_path):
    for command in ("env", "status"):
        result = run_cluster(command, tmp_path / "none", check=False)
        assert result.returncode == 1
        assert f"cluster: no cluster in {tmp_path / 'none'} yet; run: {SCRIPT} up" in result.stderr
