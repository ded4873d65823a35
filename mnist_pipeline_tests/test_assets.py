"""Each asset called directly on small synthetic data."""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from mnist_pipeline.defs.data.assets import raw_mnist, scaled_mnist
from mnist_pipeline.defs.data.resources import MnistSource
from mnist_pipeline.defs.evaluation.assets import evaluation_metrics, predictions_table
from mnist_pipeline.defs.model.assets import compiled_model, hyperparameters, trained_model
from mnist_pipeline.defs.model.config import Hyperparameters
from mnist_pipeline.ml.model.trained import TrainedModel
from mnist_pipeline.defs.reports.assets import digit_plots
from mnist_pipeline.ml.content_versions import model_version
from mnist_pipeline.defs.model.resources import TrainingCheckpoints

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def context():
    return dg.build_asset_context()


def value(output):
    """The value of an asset's Output (assets return Output to carry their data version)."""
    return output.value if isinstance(output, dg.Output) else output


def params(**overrides) -> dict:
    return value(hyperparameters(context(), Hyperparameters.from_values(**overrides)))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return TrainingCheckpoints(root=str(tmp_path_factory.mktemp("checkpoints")))


@pytest.fixture(scope="module")
def scaled():
    from mnist_pipeline_tests.synthetic import make_dataset

    return value(scaled_mnist(context(), make_dataset()))


TRAINING = dict(optimizer="adam", learning_rate=0.003, epochs=4, batch_size=30)


@pytest.fixture(scope="module")
def trained_output(scaled, checkpoints):
    model = value(compiled_model(context(), params(**TRAINING)))
    output = trained_model(context(), checkpoints, params(**TRAINING), model, scaled)
    left = [path.relative_to(checkpoints.root) for path in Path(checkpoints.root).rglob("*") if path.is_file()]
    assert [path.name for path in left] == [".lock"], "only the lock file stays once training completes"
    return output


@pytest.fixture(scope="module")
def trained(trained_output):
    return value(trained_output)


@pytest.fixture(scope="module")
def metrics(trained, scaled):
    return value(evaluation_metrics(context(), trained, scaled))


@pytest.fixture(scope="module")
def table(trained, scaled):
    return value(predictions_table(context(), trained, scaled))


def test_hyperparameters_asset_returns_the_config_with_a_content_version():
    output = hyperparameters(context(), Hyperparameters.from_values(epochs=3))
    assert output.value == {
        "preset": "tutorial", "optimizer": "sgd", "learning_rate": 0.01, "schedule": "constant",
        "epochs": 3, "batch_size": 32, "validation_fraction": 0.1, "seed": 0,
    }
    assert output.data_version == hyperparameters(context(), Hyperparameters.from_values(epochs=3)).data_version
    assert output.data_version != hyperparameters(context(), Hyperparameters.from_values(epochs=4)).data_version


def test_raw_mnist_loads_the_configured_directory(idx_dir, synthetic_dataset):
    dataset = value(raw_mnist(context(), MnistSource(data_dir=str(idx_dir), download_sources=[])))
    assert dataset.train_images.shape == (300, 28, 28) and dataset.train_images.dtype == np.uint8
    assert dataset.test_labels.shape == (100,)
    np.testing.assert_array_equal(dataset.train_labels, synthetic_dataset.train_labels)


def test_scaled_mnist_is_float32_in_unit_range(synthetic_dataset, scaled):
    for images in (scaled.train_images, scaled.test_images):
        assert images.dtype == np.float32
        assert images.min() >= 0.0 and images.max() == 1.0
    np.testing.assert_allclose(scaled.train_images, synthetic_dataset.train_images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(scaled.test_labels, synthetic_dataset.test_labels)


def test_compiled_model_is_the_tutorial_network():
    model = value(compiled_model(context(), params()))
    assert [layer.__class__.__name__ for layer in model.layers] == [
        "Reshape", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense",
    ]
    # conv 3*3*32+32, dense 13*13*32*128+128, output 128*10+10
    assert model.count_params() == 320 + 692352 + 1290
    assert model.output_shape == (None, 10)
    assert model.optimizer.__class__.__name__ == "SGD"
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    assert model.loss == "sparse_categorical_crossentropy"


def test_compiled_model_weights_depend_on_the_seed():
    a = value(compiled_model(context(), params(seed=1))).get_weights()[0]
    b = value(compiled_model(context(), params(seed=1))).get_weights()[0]
    c = value(compiled_model(context(), params(seed=2))).get_weights()[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.slow
def test_trained_model_carries_its_version_and_lineage_for_the_registry(trained_output, trained):
    """The asset registers nothing itself: its IO manager stores the model in the registry (test_io_managers.py)."""
    version = trained_output.data_version.value
    assert version == model_version(trained.model) == trained.version
    assert trained.lineage["hyperparameters"]["epochs"] == 4
    assert set(trained.lineage["input_data_versions"]) == {"hyperparameters", "compiled_model", "scaled_mnist"}


@pytest.mark.slow
def test_trained_model_metadata_names_the_device_that_trained_it(trained_output):
    """No GPU here: the metadata says CPU (a GPU worker's says e.g. "GPU:0 (NVIDIA A10G)", ml/model/device.py)."""
    assert trained_output.metadata["device"].value == "CPU"


def test_trained_model_learns_and_keeps_history(trained):
    assert isinstance(trained, TrainedModel)
    assert set(trained.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(trained.history["loss"]) == 4
    assert trained.history["loss"][-1] < trained.history["loss"][0]
    assert trained.history["accuracy"][-1] > 0.5  # ten classes: chance is 0.1


def test_evaluation_names_the_model_version_trained_model_recorded(metrics, trained):
    assert metrics["model_version"] == trained.version == model_version(trained.model)


def test_evaluation_metrics(metrics):
    assert set(metrics) >= {"test_loss", "test_accuracy", "precision", "recall", "confusion_matrix"}
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 100
    assert metrics["test_accuracy"] == pytest.approx(np.trace(matrix) / 100, abs=1e-6)
    assert metrics["test_accuracy"] > 0.5
    assert len(metrics["precision"]) == len(metrics["recall"]) == 10


def test_predictions_table(table, metrics, scaled):
    assert isinstance(table, pd.DataFrame)
    assert len(table) == 100
    probabilities = table[[f"prob_{d}" for d in range(10)]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(table["true_label"], scaled.test_labels)
    np.testing.assert_array_equal(table["predicted_label"], probabilities.argmax(axis=1))
    assert table["correct"].mean() == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert not table.isna().any().any()


def test_digit_plots_are_small_pngs(trained, metrics, table):
    from mnist_pipeline_tests.synthetic import make_dataset

    plots = value(digit_plots(context(), make_dataset(), trained, metrics, table))
    assert set(plots) == {
        "overview", "sample_digit", "prediction_grid", "confident_mistakes", "probabilities_test_0",
        "probabilities_test_2", "confusion_matrix", "training_curves",
    }
    for name, png in plots.items():
        assert png.startswith(PNG_SIGNATURE), name
        assert 1_000 < len(png) < 200_000, name


def test_trained_model_trains_through_the_shared_recipe_function(scaled, checkpoints, monkeypatch):
    """trained_model trains with ml/model/training.train_with_recipe, the one path sweep candidates use too.

    The spy records the call and runs the real function: nothing is stood in for.
    """
    from mnist_pipeline.ml.model import training

    calls = []
    real = training.train_with_recipe

    def recording(compiled, dataset, recipe, **kwargs):
        calls.append(recipe)
        return real(compiled, dataset, recipe, **kwargs)

    monkeypatch.setattr(training, "train_with_recipe", recording)
    recipe = params(**{**TRAINING, "epochs": 1})
    output = trained_model(context(), checkpoints, recipe, value(compiled_model(context(), recipe)), scaled)
    assert calls == [recipe]
    assert len(value(output).history["val_accuracy"]) == 1
