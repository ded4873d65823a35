"""Content versions: equal content gives equal versions, any change a new one."""

import numpy as np
import pandas as pd
import pytest

from mnist_pipeline.ml.data.dataset import DigitDataset
from mnist_pipeline.defs.io_managers import KerasModelIOManager
from mnist_pipeline.ml.content_versions import dataset_version, files_version, json_version, model_version, table_version


def test_dataset_version_is_content_based(synthetic_dataset):
    copy = DigitDataset(**{name: array.copy() for name, array in synthetic_dataset.arrays().items()})
    assert dataset_version(copy) == dataset_version(synthetic_dataset)
    labels = synthetic_dataset.train_labels.copy()
    labels[0] = (labels[0] + 1) % 10
    changed = DigitDataset(synthetic_dataset.train_images, labels, synthetic_dataset.test_images, synthetic_dataset.test_labels)
    assert dataset_version(changed) != dataset_version(synthetic_dataset)


def test_dataset_version_sees_dtype(synthetic_dataset):
    as_float = DigitDataset(
        synthetic_dataset.train_images.astype(np.float32), synthetic_dataset.train_labels,
        synthetic_dataset.test_images, synthetic_dataset.test_labels,
    )
    assert dataset_version(as_float) != dataset_version(synthetic_dataset)


@pytest.mark.parametrize(
    "a, b, same",
    [({"x": 1, "y": 2}, {"y": 2, "x": 1}, True), ({"x": 1}, {"x": 2}, False), ({"x": 1}, {"x": 1.0}, False)],
)
def test_json_version(a, b, same):
    assert (json_version(a) == json_version(b)) is same


def test_table_version():
    table = pd.DataFrame({"a": [1, 2], "b": [0.5, 0.25]})
    assert table_version(table) == table_version(table.copy())
    assert table_version(table) != table_version(table.assign(b=[0.5, 0.26]))


def test_files_version():
    assert files_version({"a": b"1", "b": b"2"}) == files_version({"b": b"2", "a": b"1"})
    assert files_version({"a": b"1"}) != files_version({"a": b"2"})
    assert files_version({"a": b"1"}) != files_version({"b": b"1"})


def test_model_version_survives_a_save_and_load(tmp_path):
    from mnist_pipeline.ml.model.network import build_tutorial_model, compile_model

    model = compile_model(build_tutorial_model(0), "sgd", 0.01)
    twin = compile_model(build_tutorial_model(0), "sgd", 0.01)  # built second: Keras's auto-names would differ
    assert model_version(model) == model_version(twin)
    manager = KerasModelIOManager(base_dir=str(tmp_path))
    manager.dump(model, tmp_path / "m.keras")
    assert model_version(manager.load(tmp_path / "m.keras")) == model_version(model)
    assert model_version(compile_model(build_tutorial_model(0), "sgd", 0.02)) != model_version(model)
    assert model_version(compile_model(build_tutorial_model(1), "sgd", 0.01)) != model_version(model)
