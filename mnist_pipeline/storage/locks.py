"""Advisory file locks (flock), shared by the writers and the housekeeping that must not race them.

A lock is held by an open file handle, so it is released when its holder
exits, however it exits (a SIGKILLed run leaves no stale lock behind).

In an object store there is no lock: a lock file on one machine's disk would
not stop another machine, and a lock object has no holder to die with (a
killed run would leave it behind). Nothing needs one there, because what the
lock serializes on a disk is safe without it in an object store:
  - every object is written with one PUT, so a reader sees it whole or not at all;
  - a model version is its content hash, and a training checkpoint is named
    after everything that decides its weights: two runs writing the same
    version or checkpoint at once write the same model, and either write is right;
  - the registry writes a version's manifest last, so a version is listed only
    once its files are there; two runs registering the same version at once
    may each record only its own run id in `runs` (the last manifest PUT wins),
    which loses a line of lineage, never a file.
So `exclusive_lock` holds nothing there, and `lock_unless_held` reports it free.
"""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from typing import Callable, Iterator

from mnist_pipeline.storage.location import StoragePath, is_remote

# The lock file inside a directory that one process at a time may write (a training checkpoint, the model registry).
LOCK_FILE = ".lock"


@contextmanager
def exclusive_lock(path: StoragePath, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the lock on `path` (created if missing), waiting for any other holder (calling `on_wait` first, if given).

    In an object store: holds nothing (see the module docstring).
    """
    if is_remote(path):
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def lock_unless_held(path: StoragePath) -> Iterator[bool]:
    """Take the lock on `path` without waiting: yields True (holding it) if it was free, False if another holds it.

    A missing lock file counts as free; it is not created. In an object store: always free (no locks there).
    """
    if is_remote(path):
        yield True
        return
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
