"""A storage location: a local directory (the default) or a prefix in an S3-compatible object store.

One value names where artifacts go, written either way:

    /some/directory, ~/dir           a local directory: a `pathlib.Path`, stored as before
    s3://bucket/prefix               a prefix in the bucket: a `upath.UPath` over s3fs

Both kinds are used through the same path operations (`/`, `name`, `exists()`,
`read_bytes()`, `iterdir()`, `unlink()`...); what differs between a file system
and an object store (an atomic write, publishing a directory, holding a lock,
memory-mapping) is decided in the storage modules by `is_remote`, in one place each.

The endpoint and credentials of the object store come from the standard AWS
variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), which
botocore reads itself: nothing here reads the environment.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Union

# A local directory or an object-store prefix (upath.UPath, imported only when one is used).
StoragePath = Union[Path, Any]

SUPPORTED_SCHEMES = ("s3",)
EXPECTED_FORM = "a local directory or an S3 URL of the form s3://bucket/prefix"
# S3 bucket names: 3-63 characters, lower-case letters, digits, dots and hyphens, starting and ending alphanumeric.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$")
CLUSTER_EXTRA_HINT = "install the `cluster` extra: .venv/bin/pip install -e '.[cluster]' (scripts/cluster up installs it)"


class StorageLocationError(ValueError):
    """A storage location is not a local directory or an s3:// URL of the form the pipeline accepts."""


def is_url(value: str) -> bool:
    return _URL.match(value) is not None


def is_remote(path: StoragePath) -> bool:
    """True for an object-store location (a UPath), False for a local `pathlib.Path`."""
    return not isinstance(path, Path)


def storage_location(value: str, source: str) -> StoragePath:
    """The location `value` names: a local directory (made absolute) or an s3:// prefix.

    `source` names where the value came from (a variable or a resource field), for the error message.
    """
    match = _URL.match(value)
    if match is None:
        return Path(value).expanduser().resolve()
    scheme, rest = match["scheme"], match["rest"]
    found = f"found {value!r}"
    if scheme.lower() not in SUPPORTED_SCHEMES:
        raise StorageLocationError(f"{source}: expected {EXPECTED_FORM}, {found} (scheme {scheme!r} is not supported)")
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET.match(bucket):
        raise StorageLocationError(
            f"{source}: expected {EXPECTED_FORM}, {found} (bucket {bucket!r} is not an S3 bucket name: "
            "3 to 63 lower-case letters, digits, dots or hyphens)"
        )
    parts = prefix.strip("/").split("/") if prefix.strip("/") else []
    if any(part in ("", ".", "..") for part in parts) or any(c in prefix for c in "?#\\"):
        raise StorageLocationError(f"{source}: expected {EXPECTED_FORM}, {found} (the prefix {prefix!r} is not a plain key prefix)")
    return object_store_path(f"s3://{bucket}/{'/'.join(parts)}".rstrip("/"), source)


def object_store_path(url: str, source: str) -> StoragePath:
    """A UPath for `url`, listing the store afresh every time (other machines write to it too)."""
    try:
        import s3fs  # noqa: F401  (UPath needs it for s3://, and says less clearly that it is missing)
        from upath import UPath
    except ImportError as error:
        raise StorageLocationError(
            f"{source}: {url} is an object-store location, which needs s3fs and universal-pathlib, found them "
            f"not installed ({error}); {CLUSTER_EXTRA_HINT}"
        ) from error
    # No listings cache: another process (another machine) may have written since this one listed.
    return UPath(url, use_listings_cache=False)


def read_bytes(path: StoragePath) -> bytes:
    """The whole content of the file or object at `path`, as it was at one moment.

    In an object store, one GET: not `path.read_bytes()`, whose s3fs file object asks for the object's
    ETag first and then reads it on condition that it is unchanged, so that a reader of an object another
    writer replaces meanwhile (a manifest, a pointer) fails with FileExpired instead of reading either
    version (found by test_object_store.py's concurrent registrations, in CI).
    """
    if not is_remote(path):
        return path.read_bytes()
    return path.fs.cat_file(path.path, max_concurrency=1)  # one request, even above s3fs's block size


def read_text(path: StoragePath) -> str:
    """`read_bytes`, decoded as UTF-8."""
    return read_bytes(path).decode()


def path_from_string(value: str) -> StoragePath:
    """A path as `str()` wrote it (in metadata, say): an s3:// URL or a local path, taken as it is."""
    return object_store_path(value, "a stored path") if is_url(value) else Path(value)


def join(location: str, name: str) -> str:
    """`name` inside the location written as `location` (a directory or an s3:// URL), still as written."""
    return f"{location.rstrip('/')}/{name}" if is_url(location) else str(Path(location) / name)
