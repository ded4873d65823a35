"""Write a file so that readers see the old version or the new one, never half.

Two implementations of each operation, chosen by the location (storage/location.py):

  a local directory   a temporary file beside the target, then one rename over it
                      (os.replace); a directory of files is published by switching
                      a symbolic link with one rename.
  an object store     the bytes are produced in a temporary local file (deleted
                      afterwards), then sent with one PUT: S3 makes an object visible
                      whole or not at all, so readers see the old object or the new
                      one. A directory of files is published under a new prefix named
                      after its content, then a small pointer object names it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from mnist_pipeline.storage.location import StoragePath, is_remote, read_text

# Beside a directory published in an object store: the object naming its current version (in place of the symlink).
PUBLISHED_POINTER_SUFFIX = ".published.json"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(target: StoragePath, write: Callable[[Path], None]) -> None:
    """Call `write(tmp_path)` on a temporary file beside `target`, then rename it over `target`.

    In an object store, `tmp_path` is a local temporary file, sent to `target` with one PUT, then deleted.
    If `write` raises, `target` is untouched and the temporary file removed.
    """
    if is_remote(target):
        _put_object(target, write)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    # Keep the target's extension: some writers (Keras, numpy) insist on it.
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{target.suffix}")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def local_staging_file(name: str) -> Iterator[Path]:
    """A path named `name` in a new local temporary directory, removed afterwards with whatever was written there."""
    with tempfile.TemporaryDirectory(prefix="mnist-pipeline-") as staging:
        yield Path(staging) / name


def _put_object(target: StoragePath, write: Callable[[Path], None]) -> None:
    # The temporary file keeps the target's name, extension included: Keras and numpy insist on it.
    with local_staging_file(target.name) as tmp:
        write(tmp)
        # One PUT (or, above s3fs's multipart threshold, one multipart upload, also made visible whole).
        target.fs.put_file(str(tmp), target.path)


@contextmanager
def local_copy(path: StoragePath) -> Iterator[Path]:
    """`path` as a local file, for readers that need one (Keras, a ZIP check): itself, or a downloaded copy deleted afterwards."""
    if not is_remote(path):
        yield path
        return
    with local_staging_file(path.name) as tmp:
        path.fs.get_file(path.path, str(tmp))
        yield tmp


def atomic_write_json(target: StoragePath, value: object) -> None:
    atomic_write(target, lambda tmp: tmp.write_text(_json_text(value)))


def _json_text(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True)


# --- Writes that must not overwrite what another writer wrote meanwhile (object store) -------------
# On a local disk, the writers that use these hold a lock (storage/locks.py), so they simply write.
# In an object store, S3 conditional writes take the lock's place: a PUT with If-None-Match: * creates
# an object only if it is absent, a PUT with If-Match: <ETag> replaces it only if it is unchanged since
# read. (SeaweedFS honours both; an S3 service that ignored them would make these plain writes.)


def _conditional_put(target: StoragePath, body: bytes, **condition: str) -> bool:
    bucket, key, _ = target.fs.split_path(target.path)
    try:
        target.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=body, **condition)
    except OSError as error:  # s3fs turns the S3 error into an OSError, keeping it as the cause
        response = getattr(error.__cause__, "response", None) or {}
        if response.get("Error", {}).get("Code") == "PreconditionFailed":
            return False
        raise
    return True


def stored_version(target: StoragePath) -> str | None:
    """What `write_json_if_unchanged` compares against: in an object store the object's ETag (None if it is
    absent); on a local disk always None (nothing to compare: the writer holds the lock)."""
    if not is_remote(target):
        return None
    bucket, key, _ = target.fs.split_path(target.path)
    try:
        return target.fs.call_s3("head_object", Bucket=bucket, Key=key)["ETag"]
    except FileNotFoundError:
        return None


def write_json_if_unchanged(target: StoragePath, value: object, seen: str | None) -> bool:
    """Write `value` as JSON to `target` unless another writer changed it since `stored_version` gave `seen`
    (None: since it was absent); False, writing nothing, if one did. On a local disk: write, True."""
    if not is_remote(target):
        atomic_write_json(target, value)
        return True
    condition = {"IfMatch": seen} if seen is not None else {"IfNoneMatch": "*"}
    return _conditional_put(target, _json_text(value).encode(), **condition)


def create_if_absent(target: StoragePath, write: Callable[[Path], None]) -> bool:
    """In an object store: create `target` from `write(tmp_path)` (as `atomic_write`) only if no object is
    there; False, writing nothing, if one is. On a local disk: write it (the writer holds the lock), True."""
    if not is_remote(target):
        atomic_write(target, write)
        return True
    with local_staging_file(target.name) as tmp:
        write(tmp)
        return _conditional_put(target, tmp.read_bytes(), IfNoneMatch="*")


def published_pointer(target: StoragePath) -> StoragePath:
    """In an object store, the object naming the published version of directory `target`."""
    return target.with_name(target.name + PUBLISHED_POINTER_SUFFIX)


def published_directory(target: StoragePath) -> StoragePath:
    """Where the files of the directory published as `target` are: `target` itself on a local disk (a
    symbolic link), the version its pointer object names in an object store (`target` if it has none)."""
    if not is_remote(target):
        return target
    try:
        version = json.loads(read_text(published_pointer(target)))["version"]
    except FileNotFoundError:
        return target
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{published_pointer(target)}: expected a JSON object {{\"version\": <name>}} naming the published "
            f"version of {target.name}, found an unreadable one ({error})"
        ) from error
    if not isinstance(version, str) or "/" in version or version in ("", ".", ".."):
        raise ValueError(f"{published_pointer(target)}: expected the name of a published version of {target.name}, found {version!r}")
    return _versions_dir(target) / version


def _versions_dir(target: StoragePath) -> StoragePath:
    # Not `.versions` in an object store: SeaweedFS keeps S3 object versions under names ending so, and
    # leaves them out of every listing (found by test_object_store.py: the plots were there but unlisted).
    return target.parent / f"{target.name}.{'sets' if is_remote(target) else 'versions'}"


def atomic_publish_directory(target: StoragePath, files: dict[str, bytes]) -> StoragePath:
    """Publish a set of files as directory `target`, all at once.

    The files go to `<target>.versions/<content hash>/`; `target` is a symbolic
    link switched to it by one rename. Earlier versions stay where they were.
    In an object store, they go to `<target>.sets/<content hash>/`, and the
    pointer object `<target>.published.json` names the version instead, written
    after every file of it (`published_directory`).
    """
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    versions = _versions_dir(target)
    version_dir = versions / digest.hexdigest()[:16]
    if is_remote(target):
        # Named after its content, so a concurrent writer of the same version writes the same bytes, and
        # no reader looks there before the pointer names it, written last.
        for name, content in files.items():
            (version_dir / name).write_bytes(content)
        atomic_write_json(published_pointer(target), {"version": version_dir.name})
        return version_dir
    if not version_dir.is_dir():
        versions.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=versions, prefix=".staging-"))
        try:
            for name, content in files.items():
                (staging / name).write_bytes(content)
            os.chmod(staging, 0o777 & ~_umask())
            os.rename(staging, version_dir)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not version_dir.is_dir():  # not a concurrent writer that got there first
                raise
    if target.exists() and not target.is_symlink():
        raise FileExistsError(f"{target}: expected a symbolic link to a published version, found a real path")
    link = target.parent / f".{target.name}.{os.getpid()}.link"
    link.unlink(missing_ok=True)
    os.symlink(os.path.relpath(version_dir, target.parent), link)
    os.replace(link, target)
    return version_dir
