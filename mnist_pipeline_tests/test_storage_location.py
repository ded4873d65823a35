"""Where the storage root comes from: MNIST_STORAGE_URL (s3:// or a directory), else MNIST_STORAGE_DIR, else the default.

Fast and local: no object store is contacted (a UPath is only a name until it is used).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from mnist_pipeline.defs.evaluation.resources import EvaluationRecordsResource
from mnist_pipeline.defs.io_managers import NpzIOManager
from mnist_pipeline.defs.model.resources import ModelRegistryResource, TrainingCheckpoints
from mnist_pipeline.defs.resources import storage_resources
from mnist_pipeline.paths import default_storage_dir
from mnist_pipeline.registry.retention import PruneUnsupportedError, StorageLocations, prune
from mnist_pipeline.registry.store import ModelRegistry
from mnist_pipeline.storage.location import StorageLocationError, is_remote, storage_location

EXPECTED = "expected a local directory or an S3 URL of the form s3://bucket/prefix"


# An s3:// location is built with s3fs and universal-pathlib, the cluster extra's (scripts/cluster up installs
# them); without them these tests have nothing to build, and the test just below checks that error.
needs_object_store_libraries = pytest.mark.skipif(
    importlib.util.find_spec("s3fs") is None or importlib.util.find_spec("upath") is None,
    reason="the cluster extra (s3fs, universal-pathlib) is not installed",
)


def test_without_a_url_the_storage_directory_is_unchanged(isolated_home, tmp_path, monkeypatch):
    assert default_storage_dir() == isolated_home / "storage"
    monkeypatch.setenv("MNIST_STORAGE_DIR", str(tmp_path / "elsewhere"))
    assert default_storage_dir() == tmp_path / "elsewhere"
    assert not is_remote(default_storage_dir())


def test_a_local_path_in_the_url_variable_is_a_local_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_STORAGE_URL", str(tmp_path / "local_store"))
    monkeypatch.setenv("MNIST_STORAGE_DIR", str(tmp_path / "ignored"))
    assert default_storage_dir() == tmp_path / "local_store"
    assert isinstance(default_storage_dir(), Path)


@needs_object_store_libraries
def test_an_s3_url_is_an_object_store_location_for_every_storage_resource(monkeypatch):
    monkeypatch.setenv("MNIST_STORAGE_URL", "s3://mnist-bucket/some/prefix/")
    root = default_storage_dir()
    assert is_remote(root)
    assert str(root) == "s3://mnist-bucket/some/prefix"
    assert str(NpzIOManager().path_for(dg.AssetKey("scaled_mnist"))) == "s3://mnist-bucket/some/prefix/scaled_mnist.npz"
    assert str(ModelRegistryResource().registry().root) == "s3://mnist-bucket/some/prefix/model_registry"
    assert str(EvaluationRecordsResource().records().root) == "s3://mnist-bucket/some/prefix/evaluation_metrics.by_model_version"
    assert str(TrainingCheckpoints().directory("key")) == "s3://mnist-bucket/some/prefix/training_checkpoints/key"


@needs_object_store_libraries
def test_a_configured_s3_base_dir_puts_every_storage_resource_under_it():
    resources = storage_resources("s3://mnist-bucket/run")
    assert str(resources["model_registry"].registry().root) == "s3://mnist-bucket/run/model_registry"
    assert str(resources["training_checkpoints"].root_dir()) == "s3://mnist-bucket/run/training_checkpoints"
    assert str(resources["json_io_manager"].path_for(dg.AssetKey("hyperparameters"))) == "s3://mnist-bucket/run/hyperparameters.json"


@pytest.mark.parametrize(
    "url, why",
    [
        ("gs://bucket/prefix", "(scheme 'gs' is not supported)"),
        ("s3://", "(bucket '' is not an S3 bucket name: 3 to 63 lower-case letters, digits, dots or hyphens)"),
        ("s3://My_Bucket/prefix", "(bucket 'My_Bucket' is not an S3 bucket name: 3 to 63 lower-case letters, digits, dots or hyphens)"),
        ("s3://bucket/a//b", "(the prefix 'a//b' is not a plain key prefix)"),
        ("s3://bucket/../b", "(the prefix '../b' is not a plain key prefix)"),
    ],
)
def test_a_malformed_or_unsupported_url_names_the_variable_the_form_and_what_was_found(monkeypatch, url, why):
    monkeypatch.setenv("MNIST_STORAGE_URL", url)
    with pytest.raises(StorageLocationError) as raised:
        default_storage_dir()
    assert str(raised.value) == f"MNIST_STORAGE_URL: {EXPECTED}, found {url!r} {why}"


def test_a_malformed_url_in_a_resource_field_names_the_field():
    with pytest.raises(StorageLocationError) as raised:
        ModelRegistryResource(root="ftp://host/dir").registry()
    assert str(raised.value) == f"ModelRegistryResource.root: {EXPECTED}, found 'ftp://host/dir' (scheme 'ftp' is not supported)"


def test_an_s3_url_without_s3fs_installed_names_the_cluster_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "s3fs", None)  # what Python does for a module that cannot be imported
    with pytest.raises(StorageLocationError) as raised:
        storage_location("s3://mnist-bucket/prefix", "MNIST_STORAGE_URL")
    message = str(raised.value)
    assert message.startswith(
        "MNIST_STORAGE_URL: s3://mnist-bucket/prefix is an object-store location, which needs s3fs and universal-pathlib, "
        "found them not installed ("
    )
    assert message.endswith("); install the `cluster` extra: .venv/bin/pip install -e '.[cluster]' (scripts/cluster up installs it)")


@needs_object_store_libraries
def test_models_prune_refuses_an_object_store_naming_it_before_touching_anything(tmp_path):
    remote = storage_location("s3://mnist-bucket/prefix", "test")
    locations = StorageLocations(
        registry=ModelRegistry(remote / "model_registry"),
        production_pointer=remote / "production_model.json",
        evaluation_metrics=remote / "evaluation_metrics.json",
        published_dir=remote,
        checkpoints_dir=remote / "training_checkpoints",
    )
    with pytest.raises(PruneUnsupportedError) as raised:
        prune(locations, dry_run=True)
    assert str(raised.value) == (
        "s3://mnist-bucket/prefix/model_registry: expected a local storage directory, found an object-store location: "
        "`models prune` does not prune an object store yet; use the bucket's lifecycle rules or delete old versions by hand"
    )


def test_the_models_prune_command_refuses_an_object_store_in_one_line(tmp_path):
    env = {**os.environ, "MNIST_PIPELINE_HOME": str(tmp_path / "home"), "MNIST_STORAGE_URL": "s3://mnist-bucket/prefix"}
    pruned = subprocess.run(
        [sys.executable, "-m", "mnist_pipeline", "models", "prune", "--dry-run"], env=env, capture_output=True, text=True, timeout=300
    )
    assert pruned.returncode == 1, pruned.stderr[-2000:]
    # With the cluster extra installed: prune's refusal; without it: the location's, naming the extra.
    last_line = pruned.stderr.strip().splitlines()[-1]
    assert last_line.startswith("Refused: ") and "s3://mnist-bucket/prefix" in last_line, pruned.stderr[-2000:]


def test_a_command_with_a_malformed_storage_url_says_so_in_one_line(tmp_path):
    env = {**os.environ, "MNIST_PIPELINE_HOME": str(tmp_path / "home"), "MNIST_STORAGE_URL": "gs://bucket/prefix"}
    listed = subprocess.run([sys.executable, "-m", "mnist_pipeline", "models", "list"], env=env, capture_output=True, text=True, timeout=300)
    assert listed.returncode == 1
    assert listed.stderr.strip() == f"Refused: MNIST_STORAGE_URL: {EXPECTED}, found 'gs://bucket/prefix' (scheme 'gs' is not supported)"
