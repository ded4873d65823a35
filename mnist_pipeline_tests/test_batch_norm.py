"""Batch normalisation's statistics measured again on unaugmented images (ml/model/batch_norm.py)."""

import keras
import numpy as np
import pytest

from mnist_pipeline.ml.model import batch_norm
from mnist_pipeline.ml.model.architectures import build_network


def images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((count, 28, 28), dtype=np.float32)


def inputs_of(target: keras.layers.Layer, model: keras.Model, batch: np.ndarray) -> np.ndarray:
    """What `target` receives from the layers before it, run as at inference (no augmentation)."""
    for layer in model.layers[: model.layers.index(target)]:
        batch = layer(batch, training=False)
    return np.asarray(batch)


def moving_statistics(model: keras.Model) -> list[np.ndarray]:
    return [np.array(v) for layer in batch_norm.batch_norm_layers(model) for v in (layer.moving_mean, layer.moving_variance)]


@pytest.mark.parametrize("preset", ["best", "wide"])
def test_inference_then_normalises_the_images_with_their_own_statistics(preset):
    """One batch: each layer's moving statistics become that batch's, so inference equals batch-statistics mode."""
    model = build_network(preset, seed=0)
    calibration = images(200)
    before = moving_statistics(model)
    assert batch_norm.recalibrate(model, calibration) == len(batch_norm.batch_norm_layers(model)) >= 3

    after = moving_statistics(model)
    assert all(not np.allclose(old, new) for old, new in zip(before, after))
    with_own_statistics = calibration
    for layer in model.layers:  # as at inference, except that each normalisation uses the batch's statistics
        with_own_statistics = layer(with_own_statistics, training=isinstance(layer, keras.layers.BatchNormalization))
    np.testing.assert_allclose(model.predict(calibration, verbose=0), np.asarray(with_own_statistics), atol=1e-5)


def test_the_first_layer_gets_the_mean_and_variance_of_its_inputs_over_all_batches():
    model = build_network("best", seed=0)
    calibration = images(2 * batch_norm.CALIBRATION_BATCH, seed=1)
    batch_norm.recalibrate(model, calibration)

    first = batch_norm.batch_norm_layers(model)[0]
    inputs = inputs_of(first, model, calibration)
    halves = np.split(inputs, 2)
    np.testing.assert_allclose(np.array(first.moving_mean), inputs.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)
    # The mean of the two batches' variances (each batch normalises with its own statistics in training too).
    expected_variance = np.mean([half.var(axis=(0, 1, 2)) for half in halves], axis=0)
    np.testing.assert_allclose(np.array(first.moving_variance), expected_variance, rtol=1e-3, atol=1e-6)


def test_the_weights_stay_and_the_momentum_is_restored():
    model = build_network("wide", seed=0)
    weights = [np.array(w) for w in model.trainable_weights]
    batch_norm.recalibrate(model, images(300))
    for old, new in zip(weights, model.trainable_weights):
        np.testing.assert_array_equal(old, np.array(new))
    assert {layer.momentum for layer in batch_norm.batch_norm_layers(model)} == {0.99}


def test_it_is_deterministic_so_no_augmentation_runs():
    first, second = build_network("best", seed=0), build_network("best", seed=0)
    batch_norm.recalibrate(first, images(300))
    batch_norm.recalibrate(second, images(300))
    for a, b in zip(moving_statistics(first), moving_statistics(second)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("preset", ["tutorial", "fast"])
def test_a_network_without_batch_normalisation_is_left_as_it_is(preset):
    model = build_network(preset, seed=0)
    weights = [np.array(w) for w in model.weights]
    assert batch_norm.recalibrate(model, images(10)) == 0
    for old, new in zip(weights, model.weights):
        np.testing.assert_array_equal(old, np.array(new))


def test_a_model_that_is_not_sequential_is_refused_by_name():
    image = keras.Input((28, 28))
    flat = keras.layers.Flatten()(image)
    model = keras.Model(image, keras.layers.BatchNormalization()(flat), name="branchy")
    with pytest.raises(TypeError, match="expected a keras.Sequential network to recalibrate, found Functional 'branchy'"):
        batch_norm.recalibrate(model, images(10))


def test_no_images_is_an_error():
    with pytest.raises(ValueError, match="found none"):
        batch_norm.recalibrate(build_network("best", seed=0), images(0))


def trained(preset: str, tmp_path) -> tuple:
    """train_with_recipe, the one training path, for one epoch on synthetic digits: (outcome, data, params, log)."""
    import dagster as dg

    from mnist_pipeline.defs.model.assets import hyperparameters
    from mnist_pipeline.defs.model.config import Hyperparameters
    from mnist_pipeline.ml.data.preprocessing import scaled
    from mnist_pipeline.ml.model.network import compile_model
    from mnist_pipeline.ml.model.training import train_with_recipe
    from mnist_pipeline_tests.synthetic import make_dataset

    params = hyperparameters(dg.build_asset_context(), Hyperparameters.from_values(preset=preset, epochs=1, batch_size=30)).value
    data = scaled(make_dataset(num_train=300, num_test=10))
    log: list[str] = []
    model = compile_model(build_network(preset, params["seed"]), params["optimizer"], params["learning_rate"])
    outcome = train_with_recipe(model, data, params, checkpoint_dir=tmp_path / "checkpoint", log=log.append)
    return outcome, data, params, log


@pytest.mark.slow
def test_training_ends_by_measuring_the_statistics_on_the_first_training_images(tmp_path):
    from mnist_pipeline.ml.model.split import recipe_validation_split

    outcome, data, params, log = trained("best", tmp_path)
    train, validation = recipe_validation_split(data.num_train, params)
    assert len(train) <= batch_norm.CALIBRATION_BATCH  # one batch: the first layer's statistics are its inputs' own
    assert any(line.startswith("Measured batch normalisation's statistics again on 270 unaugmented training images") for line in log)

    first = batch_norm.batch_norm_layers(outcome.model)[0]
    inputs = inputs_of(first, outcome.model, data.train_images[train])
    np.testing.assert_allclose(np.array(first.moving_mean), inputs.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-6)

    # What the leaderboard ranks by and trained_model reports: the returned network's, not the last epoch's.
    scores = outcome.model.evaluate(data.train_images[validation], data.train_labels[validation], verbose=0, return_dict=True)
    assert outcome.validation_accuracy == pytest.approx(scores["accuracy"])
    assert outcome.validation_loss == pytest.approx(scores["loss"], rel=1e-5)


@pytest.mark.slow
def test_training_a_network_without_batch_normalisation_reports_its_last_epoch(tmp_path):
    outcome, _, _, log = trained("fast", tmp_path)
    assert not any("batch normalisation" in line for line in log)
    assert outcome.validation_accuracy == outcome.history["val_accuracy"][-1]
    assert outcome.validation_loss == outcome.history["val_loss"][-1]
