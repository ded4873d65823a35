"""IO managers: round trips in a temporary directory, no pickle, atomic replacement."""

import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from mnist_pipeline.ml.data.dataset import DigitDataset
from mnist_pipeline.ml.model.trained import TrainedModel
from mnist_pipeline.defs.io_managers import (
    ArtifactMissingError,
    JsonIOManager,
    KerasModelIOManager,
    NpzIOManager,
    ParquetIOManager,
    PngDirectoryIOManager,
    StorageError,
)
from mnist_pipeline.defs.resources import io_managers
from mnist_pipeline_tests.io_support import fetch, store, tiny_digit_model


def registry_manager(storage_dir):
    """trained_model's IO manager, with its registry under storage_dir as the pipeline configures it."""
    return io_managers(str(storage_dir))["registry_model_io_manager"]


def trained(model, history=None, version: str = "v1") -> TrainedModel:
    return TrainedModel(model, history or {"loss": [1.0]}, version=version, lineage={"run_id": f"run-{version}", "hyperparameters": {}})


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
    model = tiny_digit_model()
    store(manager, "compiled_model", model)
    loaded = fetch(manager, "compiled_model")
    for original, restored in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(original, restored)
    assert loaded.optimizer.__class__.__name__ == "SGD"
    assert loaded.loss == "sparse_categorical_crossentropy"


def test_the_trained_model_is_stored_once_in_the_registry_by_version(storage_dir):
    manager = registry_manager(storage_dir)
    model = tiny_digit_model()
    history = {"loss": [0.9, 0.5], "val_accuracy": [0.7, 0.8]}
    context = store(manager, "trained_model", trained(model, history))
    model_file = storage_dir / "model_registry" / "v1" / "model.keras"
    assert context.get_logged_metadata()["path"] == dg.MetadataValue.path(str(model_file))
    assert json.loads((storage_dir / "trained_model.json").read_text()) == {"version": "v1", "model_file": str(model_file)}
    keras_files = sorted(p.relative_to(storage_dir) for p in storage_dir.rglob("*.keras"))
    assert [str(p) for p in keras_files] == ["model_registry/v1/model.keras"], "one copy of the model"
    assert json.loads((storage_dir / "model_registry" / "v1" / "history.json").read_text()) == history


def test_reading_the_trained_model_gives_its_history_without_loading_keras(storage_dir):
    manager = registry_manager(storage_dir)
    model = tiny_digit_model()
    store(manager, "trained_model", trained(model, {"loss": [0.9, 0.5]}))
    loaded = fetch(manager, "trained_model")
    assert (loaded.version, loaded.history, loaded.loaded) == ("v1", {"loss": [0.9, 0.5]}, False)
    for original, restored in zip(model.get_weights(), loaded.model.get_weights(), strict=True):
        np.testing.assert_array_equal(original, restored)
    assert fetch(manager, "trained_model").model is loaded.model, "loaded once per process"


def test_a_trained_model_without_version_is_refused_before_anything_is_written(storage_dir):
    with pytest.raises(ValueError, match=r"^trained_model: expected a TrainedModel with its version and lineage \(run_id\) to register, found version None"):
        store(registry_manager(storage_dir), "trained_model", TrainedModel(tiny_digit_model(), {"loss": [1.0]}))
    assert not storage_dir.exists() or not any(storage_dir.rglob("*.keras"))


def test_a_trained_model_stored_by_the_old_layout_says_to_materialize_it_again(storage_dir):
    storage_dir.mkdir()
    (storage_dir / "trained_model.keras").write_bytes(b"PK an old archive")
    with pytest.raises(ArtifactMissingError, match=(
        rf"^{storage_dir / 'trained_model.json'}: expected the record of asset 'trained_model' naming its version in the model "
        r"registry, found only trained_model.keras, written by an older version of this pipeline .* Materialize 'trained_model' again"
    )):
        fetch(registry_manager(storage_dir), "trained_model")


def test_a_damaged_registry_model_fails_the_trained_model_load_naming_the_file(storage_dir):
    manager = registry_manager(storage_dir)
    store(manager, "trained_model", trained(tiny_digit_model()))
    model_file = storage_dir / "model_registry" / "v1" / "model.keras"
    truncate(model_file, keep=1000)
    with pytest.raises(DamagedArtifactError, match=rf"^{model_file}: expected the model file of version v1 with SHA-256 .*Rebuild it") as raised:
        fetch(manager, "trained_model")
    assert "not found" not in str(raised.value).lower()


def test_evaluation_metrics_are_also_recorded_per_model_version(storage_dir):
    manager = io_managers(str(storage_dir))["evaluation_io_manager"]
    store(manager, "evaluation_metrics", {"model_version": "v1", "test_accuracy": 0.97})
    store(manager, "evaluation_metrics", {"model_version": "v2", "test_accuracy": 0.98})
    assert fetch(manager, "evaluation_metrics") == {"model_version": "v2", "test_accuracy": 0.98}
    records = manager.evaluation_records.records()
    assert records.read("v1") == {"model_version": "v1", "test_accuracy": 0.97}
    assert records.read("v2")["test_accuracy"] == 0.98
    assert not (storage_dir / "model_registry").exists(), "nothing is written into the registry"


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
    assert sorted(p.name for p in storage_dir.iterdir()) == [
        "evaluation_metrics.json", "evaluation_metrics.json.sha256.json"
    ], "no temporary file left behind"


def test_failed_model_save_keeps_the_previous_model(storage_dir, monkeypatch):
    manager = registry_manager(storage_dir)
    model = tiny_digit_model()
    store(manager, "trained_model", trained(model))
    before = (storage_dir / "trained_model.json").read_bytes()

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(model, "save", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        store(manager, "trained_model", trained(model, {"loss": [0.1]}, version="v2"))
    assert (storage_dir / "trained_model.json").read_bytes() == before, "still names the previous version"
    assert fetch(manager, "trained_model").version == "v1"
    assert not (storage_dir / "model_registry" / "v2" / "model.keras").exists()


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


def test_unwritable_registry_is_a_storage_error_naming_trained_model(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match=r"a_file/storage: expected a writable storage directory for trained_model, found"):
        store(registry_manager(blocker / "storage"), "trained_model", trained(tiny_digit_model()))


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


# --- Every artifact is verified on load against the SHA-256 recorded when it was written ---------

import os  # noqa: E402
import time  # noqa: E402

from mnist_pipeline.storage.integrity import file_sha256, record_path  # noqa: E402
from mnist_pipeline.defs.io_managers import DamagedArtifactError  # noqa: E402


def stored_artifacts(storage_dir, synthetic_dataset):
    """(manager, asset key, value, the artifact's path, a file of it to damage) for every IO manager."""
    table = pd.DataFrame({"index": [0, 1], "confidence": [0.5, 0.9]})
    return [
        (NpzIOManager(base_dir=str(storage_dir)), "raw_mnist", synthetic_dataset, "raw_mnist.npz", "raw_mnist.npz"),
        (KerasModelIOManager(base_dir=str(storage_dir)), "compiled_model", tiny_digit_model(), "compiled_model.keras", "compiled_model.keras"),
        (registry_manager(storage_dir), "trained_model", trained(tiny_digit_model()), "trained_model.json", "trained_model.json"),
        (JsonIOManager(base_dir=str(storage_dir)), "evaluation_metrics", {"test_accuracy": 0.97}, "evaluation_metrics.json",
         "evaluation_metrics.json"),
        (ParquetIOManager(base_dir=str(storage_dir)), "predictions_table", table, "predictions_table.parquet",
         "predictions_table.parquet"),
        (PngDirectoryIOManager(base_dir=str(storage_dir)), "digit_plots", {"a": b"\x89PNG a", "b": b"\x89PNG b"},
         "digit_plots", "digit_plots/a.png"),
    ]


KINDS = ["npz", "keras", "registry", "json", "parquet", "png directory"]


def truncate(path, keep: int = 20) -> None:
    """Damage a file in place the way a full disk or an interrupted copy does."""
    with open(path, "r+b") as handle:
        handle.truncate(keep)


@pytest.mark.parametrize("kind", range(len(KINDS)), ids=KINDS)
def test_each_artifact_records_its_sha256_when_written(kind, storage_dir, synthetic_dataset):
    manager, key, value, artifact, _ = stored_artifacts(storage_dir, synthetic_dataset)[kind]
    context = store(manager, key, value)
    record = json.loads(record_path(storage_dir / artifact).read_text())
    assert context.get_logged_metadata()["sha256"] == dg.MetadataValue.text(record["sha256"])
    if (storage_dir / artifact).is_file():
        assert record["sha256"] == file_sha256(storage_dir / artifact)


@pytest.mark.parametrize("kind", range(len(KINDS)), ids=KINDS)
def test_a_damaged_artifact_is_an_error_naming_it_and_how_to_rebuild_it(kind, storage_dir, synthetic_dataset):
    manager, key, value, artifact, damaged = stored_artifacts(storage_dir, synthetic_dataset)[kind]
    store(manager, key, value)
    expected = json.loads(record_path(storage_dir / artifact).read_text())["sha256"]
    truncate(storage_dir / damaged)
    with pytest.raises(DamagedArtifactError) as raised:
        fetch(manager, key)
    message = str(raised.value)
    assert message.startswith(f"{storage_dir / artifact}: expected the stored artifact of asset '{key}' with SHA-256 {expected}, found SHA-256 ")
    assert "it is damaged. Rebuild it with `mnist-pipeline update`" in message
    assert f"or materialize '{key}' again" in message


@pytest.mark.parametrize("kind", range(len(KINDS)), ids=KINDS)
def test_a_deleted_artifact_is_reported_with_the_hash_it_should_have(kind, storage_dir, synthetic_dataset):
    manager, key, value, artifact, _ = stored_artifacts(storage_dir, synthetic_dataset)[kind]
    store(manager, key, value)
    expected = json.loads(record_path(storage_dir / artifact).read_text())["sha256"]
    path = storage_dir / artifact
    path.unlink() if path.is_file() or path.is_symlink() else None
    with pytest.raises(ArtifactMissingError, match=rf"{path}: expected the stored artifact of asset '{key}' with SHA-256 "
                       rf"{expected}, found no file. Rebuild it with `mnist-pipeline update`"):
        fetch(manager, key)


def test_a_crash_between_the_artifact_and_its_record_is_detected(storage_dir):
    manager = JsonIOManager(base_dir=str(storage_dir))
    store(manager, "evaluation_metrics", {"test_accuracy": 0.97})
    manager.write({"test_accuracy": 0.5}, storage_dir / "evaluation_metrics.json")  # the new file, but no new record
    with pytest.raises(DamagedArtifactError, match="evaluation_metrics.json: expected the stored artifact of asset 'evaluation_metrics'"):
        fetch(manager, "evaluation_metrics")


def test_an_artifact_written_before_records_were_kept_is_not_trusted(storage_dir):
    manager = JsonIOManager(base_dir=str(storage_dir))
    store(manager, "evaluation_metrics", {"test_accuracy": 0.97})
    record_path(storage_dir / "evaluation_metrics.json").unlink()
    with pytest.raises(DamagedArtifactError, match=r"evaluation_metrics.json: expected the stored artifact of asset 'evaluation_metrics' "
                       r"with its SHA-256 recorded in evaluation_metrics.json.sha256.json, found no record .* Rebuild it"):
        fetch(manager, "evaluation_metrics")


def test_a_damaged_keras_model_is_not_reported_as_file_not_found(storage_dir):
    """The issue's case: Keras said "File not found" for a truncated .keras file."""
    manager = KerasModelIOManager(base_dir=str(storage_dir))
    store(manager, "compiled_model", tiny_digit_model())
    truncate(storage_dir / "compiled_model.keras", keep=1000)
    with pytest.raises(DamagedArtifactError, match="compiled_model.keras: expected the stored artifact of asset 'compiled_model'") as raised:
        fetch(manager, "compiled_model")
    assert "not found" not in str(raised.value).lower()


def test_a_file_damaged_after_this_process_verified_it_is_still_caught(storage_dir, synthetic_dataset):
    """The per-process memory of verified hashes never hides a later change, even one that keeps the size."""
    manager = NpzIOManager(base_dir=str(storage_dir))
    store(manager, "raw_mnist", synthetic_dataset)
    time.sleep(0.3)  # old enough for its hash to be remembered
    fetch(manager, "raw_mnist")
    fetch(manager, "raw_mnist")
    path = storage_dir / "raw_mnist.npz"
    size = path.stat().st_size
    with open(path, "r+b") as handle:  # flip bytes in the middle, in place
        handle.seek(size // 2)
        original = handle.read(8)
        handle.seek(size // 2)
        handle.write(bytes(255 - b for b in original))
    assert path.stat().st_size == size
    with pytest.raises(DamagedArtifactError, match="raw_mnist.npz: expected the stored artifact of asset 'raw_mnist'"):
        fetch(manager, "raw_mnist")


def test_the_png_directory_is_verified_as_a_whole(storage_dir):
    manager = PngDirectoryIOManager(base_dir=str(storage_dir))
    store(manager, "digit_plots", {"a": b"\x89PNG a", "b": b"\x89PNG b"})
    (storage_dir / "digit_plots" / "b.png").unlink()  # one plot lost
    with pytest.raises(DamagedArtifactError, match=r"digit_plots: expected the stored artifact of asset 'digit_plots' with SHA-256 \w+, "
                       r"found SHA-256 \w+ \(1 files\): it is damaged"):
        fetch(manager, "digit_plots")


def test_a_rewrite_repairs_a_damaged_artifact(storage_dir):
    manager = JsonIOManager(base_dir=str(storage_dir))
    store(manager, "evaluation_metrics", {"test_accuracy": 0.97})
    truncate(storage_dir / "evaluation_metrics.json", keep=3)
    store(manager, "evaluation_metrics", {"test_accuracy": 0.97})
    assert fetch(manager, "evaluation_metrics") == {"test_accuracy": 0.97}


def test_a_recorded_data_version_is_reused_only_for_the_artifact_its_materialization_wrote(storage_dir):
    from mnist_pipeline.defs.io_managers import verified_data_version

    @dg.asset(io_manager_key="json_io_manager")
    def small_metrics() -> dg.Output[dict]:
        return dg.Output({"a": 1}, data_version=dg.DataVersion("content-of-a"))

    manager = JsonIOManager(base_dir=str(storage_dir))
    key = dg.AssetKey("small_metrics")
    with dg.DagsterInstance.ephemeral() as instance:
        assert verified_data_version(instance, key) is None, "never materialized"
        assert dg.materialize([small_metrics], resources={"json_io_manager": manager}, instance=instance).success
        assert verified_data_version(instance, key) == "content-of-a"
        manager.publish({"a": 2}, storage_dir / "small_metrics.json")  # replaced outside that materialization
        assert verified_data_version(instance, key) is None
