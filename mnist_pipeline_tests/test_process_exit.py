"""cli/process_exit.py: the command's process ends with its exit code, its output and every handler run, but no module teardown."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CHILD = textwrap.dedent(
    """
    import atexit, logging, logging.handlers, sys
    from pathlib import Path
    from mnist_pipeline.cli.process_exit import exit_without_teardown

    out = Path(sys.argv[1])

    class WritesWhenTornDown:
        def __del__(self):
            (out / "torn_down").write_text("the module teardown ran")

    def command():
        global kept
        kept = WritesWhenTornDown()  # a module global: finalized only by the module teardown
        atexit.register(lambda: (out / "atexit").write_text("a handler registered by the command ran"))
        # Buffered until logging shuts down: only logging.shutdown() writes it.
        handler = logging.handlers.MemoryHandler(1000, target=logging.FileHandler(out / "log.txt"))
        logging.getLogger("child").addHandler(handler)
        logging.getLogger("child").warning("logged by the command")
        print("printed by the command")  # stdout is a pipe: block-buffered, written only when flushed
        if sys.argv[2] == "raise":
            raise RuntimeError("the command failed")
        return int(sys.argv[2])

    exit_without_teardown(command)
    """
)


def run_child(tmp_path: Path, outcome: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), outcome], cwd=REPO, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("code", [0, 3])
def test_the_process_ends_with_the_commands_code_its_output_and_handlers_but_no_teardown(tmp_path, code):
    result = run_child(tmp_path, str(code))

    assert result.returncode == code, result.stderr
    assert result.stdout == "printed by the command\n"
    assert (tmp_path / "atexit").read_text() == "a handler registered by the command ran"
    assert (tmp_path / "log.txt").read_text() == "logged by the command\n"
    assert not (tmp_path / "torn_down").exists(), "the module teardown ran: the process was not ended early"


def test_a_command_that_raises_exits_as_python_does_with_its_traceback_last(tmp_path):
    result = run_child(tmp_path, "raise")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "RuntimeError: the command failed"
    assert result.stdout == "printed by the command\n"
    assert (tmp_path / "atexit").exists()
    assert (tmp_path / "log.txt").read_text() == "logged by the command\n"
