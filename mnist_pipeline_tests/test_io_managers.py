"""IO managers: round trips in a temporary directory, no pickle, atomic replacement."""

import json
import zipfile

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from mnist_pipeline.data.dataset import DigitDataset
from mnist_pipeline.model.trained import TrainedModel
from mnist_pipeline.storage.io_managers import (
    ArtifactMissingError,
    JsonIOManager,
    KerasModelIOManager,
    NpzIOManager,
    ParquetIOManager,
    PngDirectoryIOManager,
    StorageError,
)


def store(io_manager, key: str, value):
    context = dg.build_output_context(asset_key=dg.AssetKey(key))
    io_manager.handle_output(context, value)
    return context


def fetch(io_manager, key: str):
    upstream = dg.build_output_context(asset_key=dg.AssetKey(key))
    return io_manager.load_input(dg.build_input_context(asset_key=dg.AssetKey(key), upstream_output=upstream))


def tiny_model():
    import keras

    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_path_is_derived_from_the_asset_key(storage_dir):
    manager = NpzIOManager(base_dir=str(storage_dir))
    assert manager.path_for(dg.AssetKey(["data", "raw_mnist"])) == storage_dir / "data" / "raw_mnist.npz"


def test_npz_round_trip_without_pickle(storage_dir, synthetic_dataset):
    manager = NpzIOManager(base_dir=str(storage_dir))
    context = store(manager, "raw_mnist", synthetic_dataset)
    path = storage_dir / "raw_mnist.npz"
    assert context.get_logged_metadata()["path"] == dg.MetadataValue.path(str(path))
    with np.load(path, allow_pickle=False) as stored:  # would raise on any object array
        assert sorted(stored.files) == sorted(synthetic_dataset.stored_arrays())
    loaded = fetch(manager, "raw_mnist")
    assert isinstance(loaded, DigitDataset)
    for name, array in synthetic_dataset.stored_arrays().items():
        np.testing.assert_array_equal(getattr(loaded, name), array)
        assert getattr(loaded, name).dtype == array.dtype


def test_keras_model_round_trip_in_safe_mode(storage_dir):
    manager = KerasModelIOManager(base_dir=str(storage_dir))
    model = tiny_model()
    store(manager, "compiled_model", model)
    loaded = fetch(manager, "compiled_model")
    for original, restored in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(original, restored)
    assert loaded.optimizer.__class__.__name__ == "SGD"
    assert loaded.loss == "sparse_categorical_crossentropy"


def test_trained_model_keeps_its_history_in_the_same_file(storage_dir):
    manager = KerasModelIOManager(base_dir=str(storage_dir))
    history = {"loss": [0.9, 0.5], "val_accuracy": [0.7, 0.8]}
    store(manager, "trained_model", TrainedModel(tiny_model(), history))
    with zipfile.ZipFile(storage_dir / "trained_model.keras") as archive:
        assert json.loads(archive.read("mnist_pipeline/history.json")) == history
    loaded = fetch(manager, "trained_model")
    assert isinstance(loaded, TrainedModel)
    assert loaded.history == history


def test_json_round_trip(storage_dir):
    manager = JsonIOManager(base_dir=str(storage_dir))
    metrics = {"test_accuracy": 0.97, "confusion_matrix": [[1, 2], [3, 4]]}
    store(manager, "evaluation_metrics", metrics)
    assert fetch(manager, "evaluation_metrics") == metrics


def test_parquet_round_trip(storage_dir):
    manager = ParquetIOManager(base_dir=str(storage_dir))
    table = pd.DataFrame({"index": [0, 1], "confidence": np.array([0.5, 0.9], dtype=np.float32), "correct": [True, False]})
    store(manager, "predictions_table", table)
    assert (storage_dir / "predictions_table.parquet").read_bytes()[:4] == b"PAR1"
    pd.testing.assert_frame_equal(fetch(manager, "predictions_table"), table)


def test_png_directory_round_trip_and_versions(storage_dir):
    manager = PngDirectoryIOManager(base_dir=str(storage_dir))
    first = {"a": b"\x89PNG first", "b": b"\x89PNG b"}
    context = store(manager, "digit_plots", first)
    assert context.get_logged_metadata()["a_path"] == dg.MetadataValue.path(str(storage_dir / "digit_plots" / "a.png"))
    assert fetch(manager, "digit_plots") == first
    second = {"a": b"\x89PNG second"}
    store(manager, "digit_plots", second)
    assert fetch(manager, "digit_plots") == second
    versions = list((storage_dir / "digit_plots.versions").iterdir())
    assert len(versions) == 2, "the earlier version stays on disk"


def test_failed_write_keeps_the_previous_artifact(storage_dir):
    manager = JsonIOManager(base_dir=str(storage_dir))
    store(manager, "evaluation_metrics", {"test_accuracy": 0.97})
    with pytest.raises(TypeError):
        store(manager, "evaluation_metrics", {"not_json": object()})
    assert fetch(manager, "evaluation_metrics") == {"test_accuracy": 0.97}
    assert [p.name for p in storage_dir.iterdir()] == ["evaluation_metrics.json"], "no temporary file left behind"


def test_failed_model_save_keeps_the_previous_model(storage_dir, monkeypatch):
    manager = KerasModelIOManager(base_dir=str(storage_dir))
    model = tiny_model()
    store(manager, "trained_model", TrainedModel(model, {"loss": [1.0]}))
    before = (storage_dir / "trained_model.keras").read_bytes()

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(model, "save", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        store(manager, "trained_model", TrainedModel(model, {"loss": [0.1]}))
    assert (storage_dir / "trained_model.keras").read_bytes() == before


def test_missing_upstream_artifact_says_what_to_do(storage_dir):
    manager = NpzIOManager(base_dir=str(storage_dir))
    with pytest.raises(ArtifactMissingError, match=r"raw_mnist.npz: expected the stored artifact of asset 'raw_mnist', found no file. Materialize 'raw_mnist' first"):
        fetch(manager, "raw_mnist")


def test_unwritable_storage_directory(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    manager = JsonIOManager(base_dir=str(blocker / "storage"))
    with pytest.raises(OSError, match=r"a_file/storage: expected a writable storage directory for evaluation_metrics"):
        store(manager, "evaluation_metrics", {"x": 1})


def test_missing_storage_directory_is_created(tmp_path):
    manager = JsonIOManager(base_dir=str(tmp_path / "not" / "yet" / "there"))
    store(manager, "evaluation_metrics", {"x": 1})
    assert fetch(manager, "evaluation_metrics") == {"x": 1}


def test_unwritable_storage_keeps_the_previous_artifact(storage_dir, monkeypatch):
    manager = JsonIOManager(base_dir=str(storage_dir))
    store(manager, "evaluation_metrics", {"test_accuracy": 0.97})

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(storage_dir))

    monkeypatch.setattr("mnist_pipeline.storage.atomic.tempfile.mkstemp", refuse)
    with pytest.raises(StorageError, match=rf"{storage_dir}: expected a writable storage directory for evaluation_metrics, found PermissionError.*previous artifact, if any, is unchanged"):
        store(manager, "evaluation_metrics", {"test_accuracy": 0.5})
    monkeypatch.undo()
    assert fetch(manager, "evaluation_metrics") == {"test_accuracy": 0.97}


def test_default_directory_is_inside_the_pipeline_home(isolated_home):
    assert NpzIOManager().path_for(dg.AssetKey("raw_mnist")) == isolated_home / "storage" / "raw_mnist.npz"
