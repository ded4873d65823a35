"""Advisory file locks (flock), shared by the writers and the housekeeping that must not race them.

A lock is held by an open file handle, so it is released when its holder
exits, however it exits (a SIGKILLed run leaves no stale lock behind).
"""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

# The lock file inside a directory that one process at a time may write (a training checkpoint, the model registry).
LOCK_FILE = ".lock"


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold the lock on `path` (created if missing), waiting for any other holder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def lock_unless_held(path: Path) -> Iterator[bool]:
    """Take the lock on `path` without waiting: yields True (holding it) if it was free, False if another holds it.

    A missing lock file counts as free; it is not created.
    """
    try:
        handle = open(path, "r")
    except FileNotFoundError:
        yield True
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
