"""Write a file so that readers see the old version or the new one, never half."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(target: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp_path)` on a temporary file beside `target`, then rename it over `target`.

    If `write` raises, `target` is untouched and the temporary file removed.
    """
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


def atomic_write_json(target: Path, value: object) -> None:
    atomic_write(target, lambda tmp: tmp.write_text(json.dumps(value, indent=2, sort_keys=True)))


def atomic_publish_directory(target: Path, files: dict[str, bytes]) -> Path:
    """Publish a set of files as directory `target`, all at once.

    The files go to `<target>.versions/<content hash>/`; `target` is a symbolic
    link switched to it by one rename. Earlier versions stay where they were.
    """
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    versions = target.parent / f"{target.name}.versions"
    version_dir = versions / digest.hexdigest()[:16]
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
