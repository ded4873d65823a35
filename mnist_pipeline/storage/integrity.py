"""SHA-256 of stored files, and the one check that a file is still what was written.

Every writer that stores a file records its SHA-256 when it writes it; every
reader that relies on the file calls `verify_file` first, so a truncated,
damaged or missing file is reported as such (naming the file, the expected
and the found hash) instead of surfacing later as an unrelated error.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK_BYTES = 1 << 20


class IntegrityError(ValueError):
    """A stored file is missing or no longer matches the SHA-256 recorded when it was written.

    Not transient: retrying cannot repair it. Rewriting the file (re-running what wrote it) does.
    """


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: Path, expected_sha256: str, *, what: str) -> None:
    """Raise IntegrityError unless `path` exists with SHA-256 `expected_sha256`.

    `what` says what the file is (for example "model version 0fd6... of the registry"), for the message.
    """
    path = Path(path)
    if not path.is_file():
        raise IntegrityError(f"{path}: expected {what} with SHA-256 {expected_sha256}, found no file")
    found = file_sha256(path)
    if found != expected_sha256:
        raise IntegrityError(
            f"{path}: expected {what} with SHA-256 {expected_sha256}, found SHA-256 {found} "
            f"({path.stat().st_size} bytes): the file is damaged"
        )


def verify_zip_archive(path: Path, *, what: str) -> None:
    """Raise IntegrityError unless `path` is a ZIP archive whose every member passes its CRC-32 check.

    For files stored before their SHA-256 was recorded (a .keras model is a ZIP archive): it catches
    truncation and damage to any member, though not a whole archive replaced by another sound one.
    """
    import zipfile
    import zlib

    path = Path(path)
    if not path.is_file():
        raise IntegrityError(f"{path}: expected {what} (a ZIP archive), found no file")
    try:
        with zipfile.ZipFile(path) as archive:
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
