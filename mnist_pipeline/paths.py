"""Where the pipeline keeps its files when the user does not say.

Everything lives under one absolute home directory, never relative to the
working directory:
  1. $MNIST_PIPELINE_HOME, if set;
  2. $DAGSTER_HOME/mnist_pipeline, if DAGSTER_HOME is set;
  3. ~/.mnist_pipeline otherwise.
Artifacts go to $MNIST_STORAGE_DIR and the MNIST cache to $MNIST_CACHE_DIR
when those are set. Each variable is read when a path is asked for, never at import.

`configured_dir` is the one fallback rule every resource with a directory
field uses: the configured directory if there is one, else the default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def absolute(directory: str) -> Path:
    """A directory as the user wrote it (`~` allowed), made absolute: never relative to the working directory."""
    return Path(directory).expanduser().resolve()


# How the default storage directory is chosen, as the resources' field descriptions tell it in the UI.
STORAGE_DIR_RULE = "$MNIST_STORAGE_DIR, else $MNIST_PIPELINE_HOME/storage, else $DAGSTER_HOME/mnist_pipeline/storage, else ~/.mnist_pipeline/storage"


def configured_dir(configured: str | None, default: Callable[[], Path]) -> Path:
    """The configured directory (absolute), else `default()`; an empty string counts as unset.

    `default` is a function so its variables are read only when no directory is configured.
    """
    return absolute(configured) if configured else default()


def pipeline_home() -> Path:
    if os.environ.get("MNIST_PIPELINE_HOME"):
        return absolute(os.environ["MNIST_PIPELINE_HOME"])
    if os.environ.get("DAGSTER_HOME"):
        return absolute(os.environ["DAGSTER_HOME"]) / "mnist_pipeline"
    return Path.home() / ".mnist_pipeline"


def default_storage_dir() -> Path:
    return configured_dir(os.environ.get("MNIST_STORAGE_DIR"), lambda: pipeline_home() / "storage")


def default_cache_dir() -> Path:
    return configured_dir(os.environ.get("MNIST_CACHE_DIR"), lambda: pipeline_home() / "mnist_cache")
