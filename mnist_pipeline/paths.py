"""Where the pipeline keeps its files when the user does not say.

Everything lives under one absolute home directory, never relative to the
working directory:
  1. $MNIST_PIPELINE_HOME, if set;
  2. $DAGSTER_HOME/mnist_pipeline, if DAGSTER_HOME is set;
  3. ~/.mnist_pipeline otherwise.
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
    return pipeline_home() / "storage"


def default_cache_dir() -> Path:
    return pipeline_home() / "mnist_cache"
