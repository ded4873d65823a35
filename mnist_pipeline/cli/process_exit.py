"""Ending a command's process without the interpreter's module teardown.

When a command returns, its work is done: a run has finished and every event
is committed to the instance (which the command has closed), every file is
written atomically. What the interpreter does after that, tearing down every
module and object of TensorFlow, Keras, Dagster and SQLAlchemy one by one, took
1 to 2.5 s on the project's machine and does nothing a user needs (measured:
`benchmarks/process_exit.py`). So the console entry points end the process with
`os._exit` at the last moment of a normal exit:

- Python first does exit's real work, as always: it joins the non-daemon
  threads, then runs the atexit handlers in reverse order of registration, so
  every handler registered while the command ran (Dagster's, TensorFlow's,
  Alembic's) runs;
- the handler registered here, before the command started, runs after them:
  it shuts logging down (flushing its handlers), flushes the standard streams
  and ends the process with the command's exit code.

What is skipped: the module teardown, and the atexit handlers registered before
the command started (the standard library's; logging's is called here). A
command that raises is not affected: the traceback prints and the process
exits as usual.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from typing import Callable, NoReturn


def exit_without_teardown(command: Callable[[], int]) -> NoReturn:
    """Run `command`, then exit with its code, skipping the module teardown (see the module docstring)."""
    returned: list[int] = []

    def end_process() -> None:
        if not returned:  # the command raised: exit as usual
            return
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe or stream: nothing more can be written anyway
                pass
        os._exit(returned[0])

    atexit.register(end_process)  # before anything the command registers, so it runs after all of it
    returned.append(int(command() or 0))
    sys.exit(returned[0])
