"""Where the pipeline keeps its files when the user does not say.

Everything lives under one absolute home directory, never relative to the
working directory:
  1. $MNIST_PIPELINE_HOME, if set;
  2. $DAGSTER_HOME/mnist_pipeline, if DAGSTER_HOME is set;
  3. ~/.mnist_pipeline otherwise.
Artifacts go to $MNIST_STORAGE_URL (an s3://bucket/prefix in an object store,
or a local directory) if set, else to $MNIST_STORAGE_DIR, and the MNIST cache
(always local) to $MNIST_CACHE_DIR when those are set. Each variable is read
when a path is asked for, never at import.

`configured_dir` is the one fallback rule every resource with a directory
field uses: the configured directory if there is one, else the default;
`configured_location` is the same rule for the storage fields, which may also
name an object-store location (storage/location.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from mnist_pipeline.storage.location import StoragePath, storage_location

STORAGE_URL = "MNIST_STORAGE_URL"


def absolute(directory: str) -> Path:
    """A directory as the user wrote it (`~` allowed), made absolute: never relative to the working directory."""
    return Path(directory).expanduser().resolve()


# How the default storage directory is chosen, as the resources' field descriptions tell it in the UI.
STORAGE_DIR_RULE = "$MNIST_STORAGE_URL (s3://bucket/prefix or a directory), else $MNIST_STORAGE_DIR, else $MNIST_PIPELINE_HOME/storage, else $DAGSTER_HOME/mnist_pipeline/storage, else ~/.mnist_pipeline/storage"


def configured_dir(configured: str | None, default: Callable[[], Path]) -> Path:
    """The configured directory (absolute), else `default()`; an empty string counts as unset.

    `default` is a function so its variables are read only when no directory is configured.
    """
    return absolute(configured) if configured else default()


def configured_location(configured: str | None, default: Callable[[], StoragePath], source: str) -> StoragePath:
    """Like `configured_dir`, for a storage field: the configured location (a directory or an s3:// URL), else `default()`.

    `source` names the field, for the error a malformed URL raises.
    """
    return storage_location(configured, source) if configured else default()


def pipeline_home() -> Path:
    if os.environ.get("MNIST_PIPELINE_HOME"):
        return absolute(os.environ["MNIST_PIPELINE_HOME"])
    if os.environ.get("DAGSTER_HOME"):
        return absolute(os.environ["DAGSTER_HOME"]) / "mnist_pipeline"
    return Path.home() / ".mnist_pipeline"


def default_storage_dir() -> StoragePath:
    """$MNIST_STORAGE_URL if set (and well formed), else the local default (unchanged when it is unset)."""
    url = os.environ.get(STORAGE_URL)
    if url:
        return storage_location(url, STORAGE_URL)
    return configured_dir(os.environ.get("MNIST_STORAGE_DIR"), lambda: pipeline_home() / "storage")


def default_cache_dir() -> Path:
    return configured_dir(os.environ.get("MNIST_CACHE_DIR"), lambda: pipeline_home() / "mnist_cache")
