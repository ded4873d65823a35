"""Model presets on small synthetic data: they build, compile, train, follow their recipe and round-trip as .keras."""

import math

import dagster as dg
import numpy as np
import pytest

from mnist_pipeline.defs.data.assets import scaled_mnist
from mnist_pipeline.defs.model.assets import compiled_model, hyperparameters, trained_model
from mnist_pipeline.defs.model.config import Hyperparameters, hyperparameters_run_config
from mnist_pipeline.ml.model.presets import PRESETS
from mnist_pipeline.defs.resources import io_managers, storage_resources
from mnist_pipeline.defs.model.resources import TrainingCheckpoints
from mnist_pipeline_tests.synthetic import make_dataset


def context():
    return dg.build_asset_context()


def params(**config) -> dict:
    return hyperparameters(context(), Hyperparameters.from_values(**config)).value


def train(tmp_path_factory, scaled, **config):
    """compiled_model then trained_model, called directly, with their own checkpoints."""
    checkpoints = TrainingCheckpoints(root=str(tmp_path_factory.mktemp("checkpoints")))
    model = compiled_model(context(), params(**config)).value
    return trained_model(context(), checkpoints, params(**config), model, scaled).value


@pytest.fixture(scope="module")
def scaled():
    return scaled_mnist(context(), make_dataset()).value


@pytest.fixture(scope="module", params=sorted(PRESETS))
def trained_one_epoch(request, scaled, tmp_path_factory):
    """Each preset's network, compiled by compiled_model and fitted for one epoch by trained_model."""
    return request.param, train(tmp_path_factory, scaled, preset=request.param, epochs=1, batch_size=30)


@pytest.mark.slow
def test_each_preset_names_its_network_after_itself(trained_one_epoch):
    preset, trained = trained_one_epoch
    assert trained.model.name == PRESETS[preset].network_name


@pytest.mark.slow
def test_each_preset_trains_one_epoch(trained_one_epoch, scaled):
    preset, trained = trained_one_epoch
    assert trained.model.jit_compile is False  # XLA is several times slower on CPU
    assert len(trained.history["loss"]) == 1
    assert np.isfinite(trained.history["loss"][0])
    probabilities = trained.model.predict(scaled.test_images[:8], verbose=0)
    assert probabilities.shape == (8, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_each_preset_uses_built_in_layers_only(trained_one_epoch):
    _, trained = trained_one_epoch
    for layer in trained.model.layers:
        assert type(layer).__module__.startswith("keras."), type(layer)
        assert type(layer).__name__ != "Lambda"


@pytest.mark.slow
def test_each_preset_round_trips_as_keras_with_safe_mode(trained_one_epoch, scaled, storage_dir):
    _, trained = trained_one_epoch
    manager = io_managers(str(storage_dir))["registry_model_io_manager"]
    manager.handle_output(dg.build_output_context(asset_key=dg.AssetKey("trained_model")), trained)
    loaded = manager.read(dg.AssetKey("trained_model"))  # from the registry: keras.models.load_model(..., safe_mode=True)
    assert loaded.model.name == trained.model.name
    assert loaded.history == trained.history
    images = scaled.test_images[:16]
    np.testing.assert_allclose(
        loaded.model.predict(images, verbose=0), trained.model.predict(images, verbose=0), rtol=1e-5, atol=1e-6
    )


@pytest.mark.slow
def test_best_augments_in_training_only(scaled):
    model = compiled_model(context(), params(preset="best")).value
    augmentations = [layer for layer in model.layers if type(layer).__name__ in {"RandomRotation", "RandomTranslation"}]
    assert len(augmentations) == 2
    images = scaled.test_images[:16, :, :, None]
    for layer in augmentations:
        np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)
        assert not np.allclose(np.asarray(layer(images, training=True)), images), layer.name
    predicted = model.predict(scaled.test_images[:16], verbose=0)
    np.testing.assert_array_equal(predicted, model.predict(scaled.test_images[:16], verbose=0))


@pytest.mark.slow
def test_trained_model_follows_the_preset(scaled, tmp_path_factory):
    """Unset epochs and batch size come from the preset, and its cosine schedule runs down to 0."""
    recipe = PRESETS["fast"]
    trained = train(tmp_path_factory, scaled, preset="fast")
    assert len(trained.history["loss"]) == recipe.epochs
    steps_per_epoch = math.ceil(270 / recipe.batch_size)  # 300 synthetic images, 10% held out
    assert int(trained.model.optimizer.iterations.numpy()) == recipe.epochs * steps_per_epoch
    assert float(trained.model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.slow
def test_tutorial_keeps_a_constant_learning_rate(scaled, tmp_path_factory):
    trained = train(tmp_path_factory, scaled, epochs=1, batch_size=60)
    assert float(trained.model.optimizer.learning_rate) == pytest.approx(PRESETS["tutorial"].learning_rate)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_unset_fields_take_the_presets_values(preset):
    recipe = PRESETS[preset]
    resolved = Hyperparameters.from_values(preset=preset).resolved()
    assert (resolved["optimizer"], resolved["learning_rate"], resolved["schedule"]) == (recipe.optimizer, recipe.learning_rate, recipe.schedule)
    assert (resolved["epochs"], resolved["batch_size"]) == (recipe.epochs, recipe.batch_size)


def test_fields_set_in_the_run_config_override_the_preset():
    resolved = Hyperparameters.from_values(preset="fast", optimizer="sgd", learning_rate=0.2, epochs=7, batch_size=50).resolved()
    assert (resolved["optimizer"], resolved["learning_rate"], resolved["epochs"], resolved["batch_size"]) == ("sgd", 0.2, 7, 50)
    assert resolved["schedule"] == "cosine"


def augmentation_factors(model) -> list[tuple[str, float]]:
    """The random layers of a network and the largest rotation (in turns) or shift (a fraction of the side) of each."""
    found = []
    for layer in model.layers:
        name, config = layer.__class__.__name__, layer.get_config()
        if name == "RandomRotation":
            found.append((name, config["factor"][1]))  # stored as (-f, f)
        elif name == "RandomTranslation":
            assert config["width_factor"] == config["height_factor"]
            found.append((name, config["height_factor"]))
    return found


@pytest.mark.parametrize(
    ("values", "factors"),
    [
        ({"preset": "best"}, [("RandomRotation", 0.03), ("RandomTranslation", 0.1)]),
        ({"preset": "wide", "augmentation": 2.0}, [("RandomRotation", 0.06), ("RandomTranslation", 0.2)]),
        ({"preset": "best", "augmentation": 0.0}, []),
        ({"preset": "fast"}, []),
    ],
)
def test_compiled_model_builds_the_augmentation_the_recipe_sets(values, factors):
    resolved = params(**values)
    assert resolved.get("augmentation") == values.get("augmentation", PRESETS[values["preset"]].augmentation)
    model = compiled_model(context(), resolved).value
    assert augmentation_factors(model) == [(name, pytest.approx(factor)) for name, factor in factors]


def test_augmentation_is_a_field_of_the_augmenting_presets_only():
    assert "augmentation" not in Hyperparameters.from_values(preset="fast").resolved()
    assert Hyperparameters.from_values(preset="best", augmentation=1.5).overrides() == {"augmentation": (1.5, 1.0)}
    with pytest.raises(ValueError, match=r"preset\.best\.augmentation\n  Input should be less than or equal to 3"):
        Hyperparameters.from_values(preset="best", augmentation=3.5)
    from mnist_pipeline.ml.model.architectures import build_network

    with pytest.raises(ValueError, match=r"augmentation: the 'fast' network has no augmentation to set, found 1\.5"):
        build_network("fast", 0, 1.5)


@pytest.mark.parametrize("preset", ["tutorial", "fast"])
def test_the_augmentation_flag_with_a_preset_that_does_not_augment_is_refused_before_any_run(preset):
    import argparse

    from mnist_pipeline.cli.main import _add_hyperparameter_flags, _hyperparameters

    parser = argparse.ArgumentParser()
    _add_hyperparameter_flags(parser)
    args = ["--augmentation", "2"] + (["--preset", preset] if preset != "tutorial" else [])
    with pytest.raises(SystemExit, match=rf"--augmentation: expected --preset best or wide \(whose networks augment "
                       rf"their training images\), found preset '{preset}'"):  # fmt: skip
        _hyperparameters(parser.parse_args(args))
    config = _hyperparameters(parser.parse_args(["--preset", "wide", "--augmentation", "0.5"]))
    assert config == {"preset": {"wide": {"augmentation": 0.5}}}


def test_the_default_preset_is_the_tutorial():
    assert Hyperparameters().resolved() == {
        "preset": "tutorial", "optimizer": "sgd", "learning_rate": 0.01, "schedule": "constant",
        "epochs": 10, "batch_size": 32, "validation_fraction": 0.1, "seed": 0,
    }


def test_network_names_are_unique():
    names = [preset.network_name for preset in PRESETS.values()]
    assert len(set(names)) == len(names)


def test_unknown_preset_is_rejected_at_launch(storage_dir):
    with pytest.raises(dg.DagsterInvalidConfigError, match=r"preset"):
        dg.materialize(
            [hyperparameters],
            resources=storage_resources(str(storage_dir)),
            run_config=hyperparameters_run_config(preset="huge"),
        )


# Data versions of the `hyperparameters` asset for these values, computed with the flat run config this
# shape replaced (commit f3bf76c): the same effective values must keep them, or every model version would move.
VERSIONS_BEFORE_THE_PER_PRESET_CONFIG = [
    ({}, "8b49178be47261a4"),
    ({"preset": "fast"}, "c61704d888edda30"),
    ({"preset": "fast", "epochs": 3}, "c61704d888edda30"),
    ({"epochs": 1, "batch_size": 30}, "2fa9f13deb48a0b7"),
    ({"preset": "fast", "optimizer": "sgd", "learning_rate": 0.2, "epochs": 7, "batch_size": 50, "seed": 3, "validation_fraction": 0.2}, "6550af1f15989eed"),
]


# `best` and `wide` store one value more since their augmentation's strength became a hyperparameter
# (`augmentation`, 1 unless overridden), so best's version moved then, from f8010d51dd8d7dd6; pinned again here.
VERSIONS_SINCE_THE_AUGMENTATION_STRENGTH = [
    ({"preset": "best"}, "a09660fccfae139a"),
    ({"preset": "best", "augmentation": 1.0}, "a09660fccfae139a"),
]


@pytest.mark.parametrize("values, version", VERSIONS_BEFORE_THE_PER_PRESET_CONFIG + VERSIONS_SINCE_THE_AUGMENTATION_STRENGTH)
def test_the_same_effective_values_keep_their_data_version(values, version):
    assert hyperparameters(context(), Hyperparameters.from_values(**values)).data_version == dg.DataVersion(version)


def test_command_line_flags_set_the_chosen_presets_values():
    import argparse

    from mnist_pipeline.cli.main import _add_hyperparameter_flags, _hyperparameters

    parser = argparse.ArgumentParser()
    _add_hyperparameter_flags(parser)
    config = _hyperparameters(parser.parse_args(["--preset", "fast", "--epochs", "3", "--seed", "2"]))
    assert config == {"preset": {"fast": {"epochs": 3}}, "seed": 2}
    assert Hyperparameters(**config).resolved() == {**Hyperparameters.from_values(preset="fast").resolved(), "seed": 2}
    assert _hyperparameters(parser.parse_args([])) is None


def test_values_kept_from_another_presets_block_are_reported(storage_dir):
    """The Launchpad's tutorial block renamed to `fast` with its numbers left in: the run log names each one."""
    tutorial = {"optimizer": "sgd", "learning_rate": 0.01, "epochs": 10, "batch_size": 32}
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [hyperparameters],
        resources=storage_resources(str(storage_dir)),
        run_config={"ops": {"hyperparameters": {"config": {"preset": {"fast": tutorial}}}}},
        instance=instance,
    )
    messages = [record.user_message for record in instance.all_logs(result.run_id)]
    assert (
        "The fast preset's recipe with overrides: optimizer sgd (the preset's: adam), learning_rate 0.01 (the preset's: 0.005), "
        "epochs 10 (the preset's: 3), batch_size 32 (the preset's: 120)"
    ) in messages
    metadata = result.asset_materializations_for_node("hyperparameters")[0].metadata
    assert metadata["preset_overrides"].value == tutorial
