"""Every artifact in an S3-compatible object store: against the real SeaweedFS that scripts/cluster starts.

The cluster is the session's (conftest.py's `cluster_home`, shared with test_cluster.py); each test
works under its own prefix of the cluster's bucket. No mock: s3fs talks to SeaweedFS over HTTP.
Deselect with -m "not cluster".
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from mnist_pipeline.defs.data.resources import MnistSource
from mnist_pipeline.defs.io_managers import (
    DamagedArtifactError,
    JsonIOManager,
    KerasModelIOManager,
    NpzIOManager,
    ParquetIOManager,
    PngDirectoryIOManager,
)
from mnist_pipeline.defs.jobs import full_pipeline_job
from mnist_pipeline.defs.model.config import hyperparameters_run_config
from mnist_pipeline.defs.resources import io_managers, resources_for_env
from mnist_pipeline.definitions import all_assets, all_checks
from mnist_pipeline.ml.model.trained import TrainedModel
from mnist_pipeline.registry.store import MODEL_FILE, DamagedFileError, ModelRegistry
from mnist_pipeline.storage.location import read_bytes, storage_location
from mnist_pipeline_tests.cluster_support import cluster_env
from mnist_pipeline_tests.synthetic import make_dataset, write_idx_dir
from mnist_pipeline_tests.io_support import fetch, store, tiny_digit_model

pytestmark = pytest.mark.cluster

S3_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")


@pytest.fixture(scope="module")
def object_store(cluster_home, cluster_up) -> dict[str, str]:
    """The cluster's S3 variables and its storage URL (s3://<bucket>/<prefix>), the cluster up."""
    return cluster_env(cluster_home)


@pytest.fixture
def store_url(object_store, monkeypatch) -> str:
    """A fresh prefix of the cluster's bucket, with this process's S3 variables set to reach it."""
    for name in S3_VARIABLES:
        monkeypatch.setenv(name, object_store[name])
    return f"{object_store['MNIST_STORAGE_URL']}/test-{uuid.uuid4().hex[:12]}"


def objects_under(url: str) -> set[str]:
    """Every key under `url`, relative to it."""
    root = storage_location(url, "test")
    prefix = root.path + "/"
    return {key.removeprefix(prefix) for key in root.fs.find(root.path)}


def damage(url: str) -> None:
    path = storage_location(url, "test")
    path.write_bytes(path.read_bytes()[:-7] + b"damaged")


def test_each_io_manager_round_trips_through_the_object_store(store_url, synthetic_dataset):
    managers = {
        "npz": NpzIOManager(base_dir=store_url),
        "keras": KerasModelIOManager(base_dir=store_url),
        "json": JsonIOManager(base_dir=store_url),
        "parquet": ParquetIOManager(base_dir=store_url),
        "png": PngDirectoryIOManager(base_dir=store_url),
    }
    table = pd.DataFrame({"index": [0, 1], "predicted": [7, 2], "confidence": [0.9, 0.8]})
    model = tiny_digit_model()
    store(managers["npz"], "scaled_mnist", synthetic_dataset)
    store(managers["keras"], "compiled_model", model)
    store(managers["json"], "hyperparameters", {"epochs": 1, "batch_size": 30})
    store(managers["parquet"], "predictions_table", table)
    store(managers["png"], "digit_plots", {"samples": b"\x89PNG first", "confusion": b"\x89PNG second"})

    loaded = fetch(managers["npz"], "scaled_mnist")
    assert np.array_equal(loaded.train_images, synthetic_dataset.train_images)
    assert np.array_equal(loaded.test_labels, synthetic_dataset.test_labels)
    reloaded = fetch(managers["keras"], "compiled_model")
    assert [w.tolist() for w in reloaded.get_weights()] == [w.tolist() for w in model.get_weights()]
    assert fetch(managers["json"], "hyperparameters") == {"epochs": 1, "batch_size": 30}
    pd.testing.assert_frame_equal(fetch(managers["parquet"], "predictions_table"), table)
    assert fetch(managers["png"], "digit_plots") == {"samples": b"\x89PNG first", "confusion": b"\x89PNG second"}

    stored = objects_under(store_url)
    for key in ("scaled_mnist.npz", "compiled_model.keras", "hyperparameters.json", "predictions_table.parquet"):
        assert {key, f"{key}.sha256.json"} <= stored
    # The plots: a version named after its content, and the pointer object naming it (no symlink in S3).
    assert {"digit_plots.published.json", "digit_plots.sha256.json"} <= stored
    assert len({key.split("/")[1] for key in stored if key.startswith("digit_plots.sets/")}) == 1


def test_a_new_plot_set_is_published_by_its_pointer_and_the_old_set_stays(store_url):
    manager = PngDirectoryIOManager(base_dir=store_url)
    store(manager, "digit_plots", {"samples": b"first"})
    store(manager, "digit_plots", {"samples": b"second"})
    assert fetch(manager, "digit_plots") == {"samples": b"second"}
    versions = {key.split("/")[1] for key in objects_under(store_url) if key.startswith("digit_plots.sets/")}
    assert len(versions) == 2


@pytest.mark.parametrize(
    "kind, key, value, damaged",
    [
        ("npz", "scaled_mnist", None, "scaled_mnist.npz"),
        ("json", "hyperparameters", {"epochs": 1}, "hyperparameters.json"),
        ("png", "digit_plots", {"samples": b"\x89PNG bytes of a plot"}, None),
    ],
)
def test_a_damaged_object_is_refused_naming_its_url_and_both_hashes(store_url, synthetic_dataset, kind, key, value, damaged):
    manager = {"npz": NpzIOManager, "json": JsonIOManager, "png": PngDirectoryIOManager}[kind](base_dir=store_url)
    context = store(manager, key, synthetic_dataset if value is None else value)
    recorded = context.consume_logged_metadata()["sha256"]
    if damaged is None:  # the plot's one file, inside the version its pointer names
        damaged = next(k for k in objects_under(store_url) if k.startswith("digit_plots.sets/") and k.endswith(".png"))
    damage(f"{store_url}/{damaged}")
    with pytest.raises(DamagedArtifactError) as raised:
        fetch(manager, key)
    message = str(raised.value)
    where = f"{store_url}/{damaged}" if kind != "png" else f"{store_url}/{damaged.rsplit('/', 1)[0]}"
    assert message.startswith(f"{where}: expected the stored artifact of asset '{key}' with SHA-256 {recorded.value}, found SHA-256 ")
    assert "it is damaged" in message


def test_the_registry_registers_and_loads_a_model_by_version_and_refuses_a_damaged_one(store_url):
    registry = ModelRegistry(storage_location(f"{store_url}/model_registry", "test"))
    model = tiny_digit_model()
    registry.register("v1", model, {"run_id": "run-1", "hyperparameters": {"epochs": 1}}, {"loss": [0.5]})
    registry.register("v1", model, {"run_id": "run-2", "hyperparameters": {"epochs": 1}}, {"loss": [0.5]})
    assert registry.versions() == ["v1"]
    manifest = registry.manifest("v1")
    assert manifest["runs"] == ["run-1", "run-2"]
    assert registry.history("v1") == {"loss": [0.5]}
    loaded = registry.load("v1")
    assert [w.tolist() for w in loaded.get_weights()] == [w.tolist() for w in model.get_weights()]
    assert objects_under(f"{store_url}/model_registry") == {"v1/model.keras", "v1/history.json", "v1/manifest.json"}

    damage(f"{store_url}/model_registry/v1/{MODEL_FILE}")
    with pytest.raises(DamagedFileError) as raised:
        registry.verified_model_path("v1")
    assert str(raised.value).startswith(
        f"{store_url}/model_registry/v1/{MODEL_FILE}: expected the model file of version v1 with SHA-256 "
        f"{manifest['sha256'][MODEL_FILE]}, found SHA-256 "
    )
    # A rerun of the same version repairs it, as on a local disk.
    registry.register("v1", model, {"run_id": "run-3", "hyperparameters": {"epochs": 1}}, {"loss": [0.5]})
    assert registry.load("v1") is not None and registry.manifest("v1")["repairs"][0]["run_id"] == "run-3"


def test_trained_model_goes_to_the_registry_on_the_object_store(store_url):
    manager = io_managers(store_url)["registry_model_io_manager"]
    model = tiny_digit_model()
    store(manager, "trained_model", TrainedModel(model, {"loss": [1.0]}, version="v7", lineage={"run_id": "run-7", "hyperparameters": {}}))
    loaded = fetch(manager, "trained_model")
    assert loaded.version == "v7" and loaded.history == {"loss": [1.0]}
    assert [w.tolist() for w in loaded.model.get_weights()] == [w.tolist() for w in model.get_weights()]
    assert {"trained_model.json", "model_registry/v7/model.keras", "model_registry/v7/manifest.json"} <= objects_under(store_url)


def test_a_pipeline_run_with_the_storage_url_writes_every_artifact_to_the_bucket_and_nothing_locally(
    store_url, tmp_path, isolated_home, monkeypatch
):
    """The whole graph, in process, with MNIST_STORAGE_URL at the bucket: nothing under the local storage directory."""
    monkeypatch.setenv("MNIST_STORAGE_URL", store_url)
    monkeypatch.setenv("MNIST_MIN_TEST_ACCURACY", "0")
    idx_dir = write_idx_dir(make_dataset(), tmp_path / "idx")
    resources = {**resources_for_env(), "mnist_source": MnistSource(data_dir=str(idx_dir))}
    defs = dg.Definitions(assets=all_assets, asset_checks=all_checks, jobs=[full_pipeline_job], resources=resources)
    result = defs.resolve_job_def(full_pipeline_job.name).execute_in_process(
        run_config=hyperparameters_run_config(epochs=1, batch_size=30)
    )
    assert result.success
    version = result.output_for_node("evaluation_metrics")["model_version"]

    stored = objects_under(store_url)
    for artifact in (
        "raw_mnist.npz",
        "scaled_mnist.npz",
        "compiled_model.keras",
        "hyperparameters.json",
        "trained_model.json",
        "evaluation_metrics.json",
        "predictions_table.parquet",
        "production_model.json",
        "digit_plots.published.json",
    ):
        assert {artifact, f"{artifact.removesuffix('.published.json')}.sha256.json" if artifact.endswith(".published.json") else f"{artifact}.sha256.json"} <= stored, artifact
    assert {f"model_registry/{version}/model.keras", f"model_registry/{version}/manifest.json"} <= stored
    assert f"evaluation_metrics.by_model_version/{version}.json" in stored
    assert any(key.startswith("digit_plots.sets/") and key.endswith(".png") for key in stored)
    # Training finished, so its checkpoint was cleared from the store; no lock object was ever written.
    assert not [key for key in stored if key.startswith("training_checkpoints/") and key.endswith((".keras", "state.json"))]
    assert not [key for key in stored if key.endswith(".lock")]
    assert not (isolated_home / "storage").exists()


def test_a_reader_of_an_object_another_writer_keeps_replacing_reads_one_whole_version(store_url):
    """`read_bytes` is one GET: s3fs's file object (HEAD, then a GET on condition the ETag is unchanged)
    failed with FileExpired when a manifest was replaced between the two (a CI run of the test below)."""
    path = storage_location(f"{store_url}/manifest.json", "test")
    versions = [b'{"runs": ["a"]}', b'{"runs": ["a", "b", "c"]}']
    path.write_bytes(versions[0])
    done = threading.Event()

    def keep_replacing() -> None:
        turn = 0
        while not done.is_set():
            turn += 1
            path.write_bytes(versions[turn % 2])

    writer = threading.Thread(target=keep_replacing)
    writer.start()
    try:
        reads = [read_bytes(path) for _ in range(60)]
    finally:
        done.set()
        writer.join()
    assert set(reads) <= set(versions), set(reads) - set(versions)


def test_concurrent_registrations_of_one_version_lose_no_run_and_agree_on_the_model_file(store_url):
    """No lock in an object store: conditional writes keep every run id and one model file (registry/store.py)."""
    registry = ModelRegistry(storage_location(f"{store_url}/model_registry", "test"))
    models = [tiny_digit_model() for _ in range(4)]  # one per writer (Keras models are not shared across threads), same weights
    for model in models[1:]:
        model.set_weights(models[0].get_weights())

    def register_runs(writer: int) -> None:
        for run in range(3):
            registry.register("v1", models[writer], {"run_id": f"run-{writer}-{run}", "hyperparameters": {}}, {"loss": [0.5]})

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(register_runs, range(4)))
    manifest = registry.manifest("v1")
    assert sorted(manifest["runs"]) == sorted(f"run-{writer}-{run}" for writer in range(4) for run in range(3))
    registry.verify("v1")  # the manifest's hashes are those of the files there
    assert "repairs" not in manifest


def test_training_resumes_from_a_checkpoint_in_the_object_store_to_the_same_weights(store_url):
    from mnist_pipeline.ml.data.preprocessing import scale_images
    from mnist_pipeline.ml.model import training
    from mnist_pipeline.ml.model.network import build_tutorial_model, compile_model

    data = make_dataset(num_train=96, num_test=10)
    images = scale_images(data.train_images)
    logged: list[str] = []

    def fit(epochs: int, directory: str):
        model = compile_model(build_tutorial_model(seed=1), "sgd", 0.05)
        return training.fit_resumably(
            model, images, data.train_labels, np.arange(16, 96), np.arange(16),
            epochs=epochs, batch_size=10, seed=1, checkpoint_dir=storage_location(f"{store_url}/{directory}", "test"),
            log=logged.append,
        )

    uninterrupted, _ = fit(2, "uninterrupted")
    # A run killed after epoch 1 leaves what training's checkpoint after epoch 1 is: written here by hand.
    after_one_epoch, history = fit(1, "interrupted")
    training.save_checkpoint(storage_location(f"{store_url}/interrupted", "test"), after_one_epoch, 1, history)
    resumed, resumed_history = fit(2, "interrupted")

    assert f"Resuming from the checkpoint after epoch 1 of 2 in {store_url}/interrupted" in logged
    assert len(resumed_history["loss"]) == 2
    for a, b in zip(uninterrupted.get_weights(), resumed.get_weights()):
        assert a.tobytes() == b.tobytes()
    assert not [key for key in objects_under(store_url) if key.endswith((".keras", "state.json"))], "cleared when done"
