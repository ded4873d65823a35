"""Model presets on small synthetic data: they build, compile, train, follow their recipe and round-trip as .keras."""

import math

import dagster as dg
import numpy as np
import pytest

from mnist_pipeline.data.assets import scaled_mnist
from mnist_pipeline.model.assets import compiled_model, trained_model
from mnist_pipeline.model.config import ModelConfig, TrainingConfig
from mnist_pipeline.model.presets import PRESETS, preset_of_network
from mnist_pipeline.resources import io_managers
from mnist_pipeline.storage.io_managers import KerasModelIOManager
from mnist_pipeline_tests.synthetic import make_dataset


def context():
    return dg.build_asset_context()


@pytest.fixture(scope="module")
def scaled():
    return scaled_mnist(context(), make_dataset())


@pytest.fixture(scope="module", params=sorted(PRESETS))
def trained_one_epoch(request, scaled):
    """Each preset's network, compiled by compiled_model and fitted for one epoch by trained_model."""
    model = compiled_model(context(), ModelConfig(preset=request.param))
    return request.param, trained_model(context(), TrainingConfig(epochs=1, batch_size=30), model, scaled)


def test_each_preset_names_its_network_after_itself(trained_one_epoch):
    preset, trained = trained_one_epoch
    assert trained.model.name == PRESETS[preset].network_name
    assert preset_of_network(trained.model.name).name == preset


def test_each_preset_trains_one_epoch(trained_one_epoch, scaled):
    preset, trained = trained_one_epoch
    assert trained.model.jit_compile is False  # XLA is several times slower on CPU
    assert len(trained.history["loss"]) == 1
    assert np.isfinite(trained.history["loss"][0])
    probabilities = trained.model.predict(scaled.test_images[:8], verbose=0)
    assert probabilities.shape == (8, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_each_preset_uses_built_in_layers_only(trained_one_epoch):
    _, trained = trained_one_epoch
    for layer in trained.model.layers:
        assert type(layer).__module__.startswith("keras."), type(layer)
        assert type(layer).__name__ != "Lambda"


def test_each_preset_round_trips_as_keras_with_safe_mode(trained_one_epoch, scaled, storage_dir):
    _, trained = trained_one_epoch
    manager = KerasModelIOManager(base_dir=str(storage_dir))
    path = storage_dir / "trained_model.keras"
    manager.publish(trained, path)
    loaded = manager.load(path)  # keras.models.load_model(..., safe_mode=True)
    assert loaded.model.name == trained.model.name
    assert loaded.history == trained.history
    images = scaled.test_images[:16]
    np.testing.assert_allclose(
        loaded.model.predict(images, verbose=0), trained.model.predict(images, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_best_augments_in_training_only(scaled):
    model = compiled_model(context(), ModelConfig(preset="best"))
    augmentations = [layer for layer in model.layers if type(layer).__name__ in {"RandomRotation", "RandomTranslation"}]
    assert len(augmentations) == 2
    images = scaled.test_images[:16, :, :, None]
    for layer in augmentations:
        np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)
        assert not np.allclose(np.asarray(layer(images, training=True)), images), layer.name
    predicted = model.predict(scaled.test_images[:16], verbose=0)
    np.testing.assert_array_equal(predicted, model.predict(scaled.test_images[:16], verbose=0))


def test_trained_model_follows_the_networks_preset(scaled):
    """Unset epochs and batch size come from the preset, and its cosine schedule runs down to 0."""
    recipe = PRESETS["fast"]
    model = compiled_model(context(), ModelConfig(preset="fast"))
    trained = trained_model(context(), TrainingConfig(), model, scaled)
    assert len(trained.history["loss"]) == recipe.epochs
    steps_per_epoch = math.ceil(270 / recipe.batch_size)  # 300 synthetic images, 10% held out
    assert int(trained.model.optimizer.iterations.numpy()) == recipe.epochs * steps_per_epoch
    assert float(trained.model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-7)


def test_tutorial_keeps_a_constant_learning_rate(scaled):
    model = compiled_model(context(), ModelConfig())
    trained = trained_model(context(), TrainingConfig(epochs=1, batch_size=60), model, scaled)
    assert float(trained.model.optimizer.learning_rate) == pytest.approx(PRESETS["tutorial"].learning_rate)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_unset_fields_take_the_presets_values(preset):
    recipe = PRESETS[preset]
    model, training = ModelConfig(preset=preset), TrainingConfig()
    assert model.chosen_optimizer() == recipe.optimizer
    assert model.chosen_learning_rate() == recipe.learning_rate
    assert training.chosen_epochs(recipe) == recipe.epochs
    assert training.chosen_batch_size(recipe) == recipe.batch_size


def test_fields_set_in_the_run_config_override_the_preset():
    recipe = PRESETS["fast"]
    model = ModelConfig(preset="fast", optimizer="sgd", learning_rate=0.2)
    training = TrainingConfig(epochs=7, batch_size=50)
    assert (model.chosen_optimizer(), model.chosen_learning_rate()) == ("sgd", 0.2)
    assert (training.chosen_epochs(recipe), training.chosen_batch_size(recipe)) == (7, 50)


def test_the_default_preset_is_the_tutorial():
    assert ModelConfig().preset == "tutorial"
    assert (ModelConfig().chosen_optimizer(), ModelConfig().chosen_learning_rate()) == ("sgd", 0.01)
    assert (TrainingConfig().chosen_epochs(PRESETS["tutorial"]), TrainingConfig().chosen_batch_size(PRESETS["tutorial"])) == (10, 32)


def test_network_names_are_unique():
    names = [preset.network_name for preset in PRESETS.values()]
    assert len(set(names)) == len(names)


def test_a_network_of_no_preset_is_rejected_naming_what_was_expected():
    with pytest.raises(ValueError, match=r"compiled_model: expected a network built by a preset .*'fast_convnet'.*found a network named 'mystery'"):
        preset_of_network("mystery")


def test_unknown_preset_is_rejected_at_launch(storage_dir):
    with pytest.raises(dg.DagsterInvalidConfigError, match=r"preset"):
        dg.materialize(
            [compiled_model],
            resources=io_managers(str(storage_dir)),
            run_config={"ops": {"compiled_model": {"config": {"preset": "huge"}}}},
        )
