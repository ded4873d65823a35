"""SHA-256 of stored files, and the one check that a file is still what was written.

Every writer that stores a file records its SHA-256 when it writes it; every
reader that relies on the file calls `verify_file` first, so a truncated,
damaged or missing file is reported as such (naming the file, the expected
and the found hash) instead of surfacing later as an unrelated error.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from mnist_pipeline.storage.atomic import atomic_write_json, local_copy
from mnist_pipeline.storage.location import StoragePath, is_remote, read_text

CHUNK_BYTES = 1 << 20


class IntegrityError(ValueError):
    """A stored file is missing or no longer matches the SHA-256 recorded when it was written.

    Not transient: retrying cannot repair it. Rewriting the file (re-running what wrote it) does.
    """


def file_sha256(path: StoragePath) -> str:
    digest = hashlib.sha256()
    # Through a local copy (one GET) in an object store, for the reason `read_bytes` gives.
    with local_copy(path) as local, local.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: StoragePath, expected_sha256: str, *, what: str) -> None:
    """Raise IntegrityError unless `path` exists with SHA-256 `expected_sha256`.

    `what` says what the file is (for example "model version 0fd6... of the registry"), for the message.
    """
    if not path.is_file():
        raise IntegrityError(f"{path}: expected {what} with SHA-256 {expected_sha256}, found no file")
    found = file_sha256(path)
    if found != expected_sha256:
        raise IntegrityError(
            f"{path}: expected {what} with SHA-256 {expected_sha256}, found SHA-256 {found} "
            f"({path.stat().st_size} bytes): the file is damaged"
        )


def verify_zip_archive(path: StoragePath, *, what: str) -> None:
    """Raise IntegrityError unless `path` is a ZIP archive whose every member passes its CRC-32 check.

    For files stored before their SHA-256 was recorded (a .keras model is a ZIP archive): it catches
    truncation and damage to any member, though not a whole archive replaced by another sound one.
    """
    import zipfile
    import zlib

    if not path.is_file():
        raise IntegrityError(f"{path}: expected {what} (a ZIP archive), found no file")
    try:
        with local_copy(path) as local, zipfile.ZipFile(local) as archive:
            bad_member = archive.testzip()
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as error:
        raise IntegrityError(
            f"{path}: expected {what} (a ZIP archive), found {path.stat().st_size} bytes that are not one "
            f"({type(error).__name__}: {error}): the file is damaged"
        ) from error
    if bad_member is not None:
        raise IntegrityError(
            f"{path}: expected {what} (a ZIP archive), found member {bad_member!r} failing its CRC-32 check: the file is damaged"
        )


# --- Directories, records beside an artifact, and not hashing an unchanged file twice -------------

RECORD_SUFFIX = ".sha256.json"


def _stat_identity(path: Path) -> tuple[int, ...]:
    status = os.stat(path)
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


# path -> (stat identity when hashed, SHA-256), for this process only, never stored. Every write
# to a file changes its size or mtime, and ctime (which cannot be set from user space), so a file
# whose identity is unchanged since this process hashed it still has that hash, and a run's later
# steps need not read a 200 MB data set again to verify it. A new process reads every file again.
_HASHED: dict[Path, tuple[tuple[int, ...], str]] = {}
# File timestamps advance in clock ticks (a few milliseconds): a write in the same tick as the last
# one would not show in them. A hash is remembered only for a file last written well before then.
_TIMESTAMP_MARGIN_NS = 100_000_000


def _remember(path: Path, identity: tuple[int, ...], sha256: str) -> None:
    if identity[3] < time.time_ns() - _TIMESTAMP_MARGIN_NS:  # mtime
        _HASHED[path] = (identity, sha256)


def stored_file_sha256(path: StoragePath) -> str:
    """`file_sha256(path)`, reused if this process already hashed the same file unchanged (on a local disk:
    an object store offers no inode and change time to tell an unchanged object by, so it is read again)."""
    if is_remote(path):
        return file_sha256(path)
    path = Path(path).absolute()
    before = _stat_identity(path)
    known = _HASHED.get(path)
    if known is not None and known[0] == before:
        return known[1]
    found = file_sha256(path)
    if _stat_identity(path) == before:  # not written to while being read
        _remember(path, before, found)
    return found


def hash_before_publishing(tmp: Path) -> tuple[str, tuple[int, ...]]:
    """SHA-256 of a file about to be renamed into place, and its identity, for `remember_published`.

    Hashed before the rename, the artifact and the record of its hash appear within moments of each
    other, not a whole hash apart, for any process reading both in between.
    """
    return file_sha256(tmp), _stat_identity(tmp)


def remember_published(path: StoragePath, hashed: tuple[str, tuple[int, ...]]) -> None:
    """Remember the hash `hash_before_publishing` gave, if `path` is still that file, renamed into place
    (same inode, size and mtime: a rename changes only its ctime)."""
    sha256, before = hashed
    if is_remote(path):  # nothing to remember it by (see stored_file_sha256)
        return
    path = Path(path).absolute()
    now = _stat_identity(path)
    if now[:4] == before[:4]:
        _remember(path, now, sha256)


def directory_sha256(path: StoragePath) -> str:
    """SHA-256 identifying the regular files directly inside directory `path`: each name with its
    content's SHA-256, in name order. An added, removed, renamed or changed file changes it."""
    digest = hashlib.sha256()
    for entry in sorted(path.iterdir(), key=lambda entry: entry.name):
        if entry.is_file():
            digest.update(entry.name.encode() + b"\0" + bytes.fromhex(stored_file_sha256(entry)))
    return digest.hexdigest()


def stored_sha256(path: StoragePath) -> str:
    """SHA-256 of a stored file, or of a directory of files."""
    return directory_sha256(path) if path.is_dir() else stored_file_sha256(path)


def verify_stored(path: StoragePath, expected_sha256: str, *, what: str) -> None:
    """Like `verify_file`, for a file or a directory of files; IntegrityError unless `path` has `expected_sha256`."""
    if not path.exists():
        raise IntegrityError(f"{path}: expected {what} with SHA-256 {expected_sha256}, found nothing there")
    found = stored_sha256(path)
    if found != expected_sha256:
        size = f"{path.stat().st_size} bytes" if path.is_file() else f"{sum(1 for _ in path.iterdir())} files"
        raise IntegrityError(
            f"{path}: expected {what} with SHA-256 {expected_sha256}, found SHA-256 {found} ({size}): it is damaged"
        )


def record_path(path: StoragePath) -> StoragePath:
    """Where the SHA-256 of `path` is recorded: a JSON file beside it, `<name>.sha256.json`."""
    return path.with_name(path.name + RECORD_SUFFIX)


def write_record(path: StoragePath, sha256: str, **details: Any) -> None:
    """Record, atomically and after `path` itself was written, that `path` has SHA-256 `sha256`.

    Written second: a crash between the two leaves a new artifact beside the old record, which
    `verify_stored` then reports as damaged rather than passing unchecked.
    """
    atomic_write_json(record_path(path), {"sha256": sha256, **details})


def recorded_sha256(path: StoragePath) -> str | None:
    """The SHA-256 recorded for `path` when it was written, or None when no record exists."""
    record = record_path(path)
    try:
        value = json.loads(read_text(record))["sha256"]
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as error:
        raise IntegrityError(
            f"{record}: expected a JSON record {{\"sha256\": ...}} of {path.name}, found an unreadable one ({error})"
        ) from error
    if not isinstance(value, str):
        raise IntegrityError(f"{record}: expected a SHA-256 string under \"sha256\", found {value!r}")
    return value
