"""The project as a `dg` project: `dg check defs` and `dg list defs` from the repository root, as a user runs them.

`dg` reads [tool.dg] in pyproject.toml and loads the code location in the
project's .venv; what it lists must be exactly what the code location holds.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mnist_pipeline.definitions import defs

pytestmark = pytest.mark.slow  # each dg command starts a process that loads the code location

REPO = Path(__file__).resolve().parents[1]
DG_TIMEOUT_S = 180


def dg_executable() -> Path:
    """The `dg` beside this interpreter, or a failure saying how to install it."""
    dg = Path(sys.executable).parent / "dg"
    if not dg.is_file():
        pytest.fail(
            f"dg: expected the `dg` command at {dg} (package dagster-dg-cli, in the project's dev extra), "
            "found no such file; install it with ./scripts/install (or pip install -c constraints.txt -e '.[dev]')"
        )
    return dg


def run_dg(*args: str, dagster_home: Path) -> subprocess.CompletedProcess:
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "VIRTUAL_ENV": sys.prefix,  # the environment the scripts activate: dg warns when it is another one
    }
    result = subprocess.run(
        [str(dg_executable()), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=DG_TIMEOUT_S
    )
    assert result.returncode == 0, f"dg {' '.join(args)} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def test_dg_check_defs_loads_the_code_location(tmp_path):
    result = run_dg("check", "defs", dagster_home=tmp_path / "dagster_home")
    assert "All definitions loaded successfully." in result.stdout + result.stderr
    assert "virtual environment does not match" not in result.stderr


def test_dg_list_defs_lists_what_the_code_location_holds(tmp_path):
    listed = json.loads(run_dg("list", "defs", "--json", dagster_home=tmp_path / "dagster_home").stdout)
    held = defs()
    graph = held.resolve_asset_graph()
    assert {asset["asset_key"] for asset in listed["assets"]} == {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {check["key"] for check in listed["asset_checks"]} == {key.to_user_string() for key in graph.asset_check_keys}
    assert {job["name"] for job in listed["jobs"]} == {job.name for job in held.jobs}
    assert {schedule["name"] for schedule in listed["schedules"]} == {schedule.name for schedule in held.schedules}
    assert {sensor["name"] for sensor in listed["sensors"]} == {sensor.name for sensor in held.sensors}
    assert {resource["name"] for resource in listed["resources"]} == set(held.resources)


def test_dg_help_lists_the_commands_options(tmp_path):
    """With typer 0.26 or later, dg 1.13.27's help shows the usage line and nothing else (pyproject.toml pins typer below)."""
    result = run_dg("list", "defs", "--help", dagster_home=tmp_path / "dagster_home")
    assert "--json" in result.stdout, result.stdout
