"""Where the pipeline keeps its files when the user does not say.

Everything lives under one absolute home directory, never relative to the
working directory:
  1. $MNIST_PIPELINE_HOME, if set;
  2. $DAGSTER_HOME/mnist_pipeline, if DAGSTER_HOME is set;
  3. ~/.mnist_pipeline otherwise.
Artifacts go to $MNIST_STORAGE_DIR and the MNIST cache to $MNIST_CACHE_DIR
when those are set. Each variable is read when a path is asked for, never at import.
"""

from __future__ import annotations

import os
from pathlib import Path


def pipeline_home() -> Path:
    if os.environ.get("MNIST_PIPELINE_HOME"):
        return Path(os.environ["MNIST_PIPELINE_HOME"]).expanduser().resolve()
    if os.environ.get("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"]).expanduser().resolve() / "mnist_pipeline"
    return Path.home() / ".mnist_pipeline"


def default_storage_dir() -> Path:
    if os.environ.get("MNIST_STORAGE_DIR"):
        return Path(os.environ["MNIST_STORAGE_DIR"]).expanduser().resolve()
    return pipeline_home() / "storage"


def default_cache_dir() -> Path:
    if os.environ.get("MNIST_CACHE_DIR"):
        return Path(os.environ["MNIST_CACHE_DIR"]).expanduser().resolve()
    return pipeline_home() / "mnist_cache"
