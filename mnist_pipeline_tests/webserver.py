"""The Dagster UI for tests, started as ./scripts/dev starts it: `dg dev` in the project directory.

Its own DAGSTER_HOME, a free port on 127.0.0.1, bounded waits. `dg dev`
starts the webserver and the daemon; runs launched through the UI start at
once all the same (SyncInMemoryRunCoordinator and DefaultRunLauncher in its
dagster.yaml), without waiting for the daemon's queue. `dg dev` and
everything it starts (webserver, daemon, code servers, run workers) share one
process group, which `stop` ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

import requests
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

INSTANCE_YAML = """\
# Runs launched from the UI start at once, without the daemon.
run_coordinator:
  module: dagster._core.run_coordinator.sync_in_memory_run_coordinator
  class: SyncInMemoryRunCoordinator
run_launcher:
  module: dagster
  class: DefaultRunLauncher
telemetry:
  enabled: false
"""

FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}

WORKSPACE_QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
    ... on PythonError { message }
  }
}
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Webserver:
    def __init__(self, project: Path, dagster_home: Path, env: Mapping[str, str], log_path: Path, instance_yaml: str = INSTANCE_YAML):
        self.project = project
        self.instance_yaml = instance_yaml
        self.dagster_home = dagster_home
        # VIRTUAL_ENV as the scripts set it (scripts/env.sh): dg warns when the active environment is another one.
        self.env = {**env, "DAGSTER_HOME": str(dagster_home), "VIRTUAL_ENV": sys.prefix}
        self.log_path = log_path
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base_url}/graphql"
        self.client = DagsterGraphQLClient("127.0.0.1", port_number=self.port, timeout=60)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        (self.dagster_home / "dagster.yaml").write_text(self.instance_yaml)
        dg = Path(sys.executable).parent / "dg"
        if not dg.is_file():
            raise FileNotFoundError(
                f"dg: expected the `dg` command at {dg} (package dagster-dg-cli, in the project's dev extra), "
                "found no such file; install it with ./scripts/install"
            )
        command = [str(dg), "dev", "-h", "127.0.0.1", "-p", str(self.port)]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.project,  # dg finds the project ([tool.dg] in pyproject.toml) from here
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, ended as one in stop()
            )

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no server log)"

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = requests.post(self.url, json={"query": query, "variables": variables or {}}, timeout=60)
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise AssertionError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def wait_until_loaded(self, location: str, timeout: float) -> None:
        """Until the server answers and `location` is loaded; fails at once if the server exits or the code fails to load."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"dg dev exited before the webserver was ready:\n{self.log_tail()}")
            try:
                workspace = self.graphql(WORKSPACE_QUERY)["workspaceOrError"]
            except requests.RequestException as error:
                last = f"{type(error).__name__}: {error}"
            else:
                entries = {entry["name"]: entry for entry in workspace.get("locationEntries", [])}
                entry = entries.get(location)
                if entry and entry["locationOrLoadError"] and entry["locationOrLoadError"]["__typename"] == "PythonError":
                    raise RuntimeError(f"code location {location} failed to load: {entry['locationOrLoadError']['message']}")
                if entry and entry["loadStatus"] == "LOADED":
                    return
                last = f"workspace: {workspace}"
            time.sleep(0.5)
        raise TimeoutError(f"dg dev's webserver not ready after {timeout} s ({last}):\n{self.log_tail()}")

    def wait_for_run(self, run_id: str, timeout: float) -> DagsterRunStatus:
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            status = self.client.get_run_status(run_id)
            if status in FINISHED:
                return status
            time.sleep(1.0)
        raise TimeoutError(f"run {run_id} still {status} after {timeout} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 10) -> None:
        """Ends the server's whole process group: SIGTERM, then SIGKILL if it has not exited in `timeout` s."""
        if self.process is None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # Children (code server, run workers) may outlive the server by a moment: end what is left of the group
        # and give it a few seconds to go.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            time.sleep(0.2)


@contextmanager
def running_webserver(
    project: Path, dagster_home: Path, env: Mapping[str, str], log_path: Path, location: str, timeout: float,
    instance_yaml: str = INSTANCE_YAML,
) -> Iterator[Webserver]:
    """A started, loaded server, stopped on the way out whatever happens."""
    server = Webserver(project, dagster_home, env, log_path, instance_yaml)
    try:
        server.start()
        server.wait_until_loaded(location, timeout)
        yield server
    finally:
        server.stop()
