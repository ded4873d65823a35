"""The champion's rules (ml/model/ensemble.py): which validation images, which k, and the saved model."""

import keras
import numpy as np
import pytest

from mnist_pipeline.ml.model.architectures import build_fast_model
from mnist_pipeline.ml.model.ensemble import accuracy_by_size, build_ensemble, choose_size, shared_validation_indices
from mnist_pipeline.ml.model.split import recipe_validation_split, validation_split


def one_hot(classes: list[int], confidence: float = 0.9) -> np.ndarray:
    probabilities = np.full((len(classes), 3), (1 - confidence) / 2)
    probabilities[np.arange(len(classes)), classes] = confidence
    return probabilities


def test_accuracy_of_the_mean_of_the_first_k_members():
    labels = np.array([0, 1, 2, 0])
    first = one_hot([0, 1, 1, 1], confidence=0.6)  # 2 of 4 right, unsure
    second = one_hot([0, 2, 2, 0], confidence=0.9)  # 3 of 4 right, sure
    third = one_hot([1, 1, 1, 1], confidence=0.9)
    # k=2: the sure second member outvotes the first where they disagree (images 1..3): 0, 2, 2, 0 -> 3 of 4.
    assert accuracy_by_size([first, second, third], labels) == {1: 0.5, 2: 0.75, 3: 0.5}


@pytest.mark.parametrize(
    "accuracies, chosen",
    [
        ({1: 0.99, 2: 0.995, 3: 0.994}, 2),
        ({1: 0.99, 2: 0.99, 3: 0.99}, 1),  # a tie goes to fewer models
        ({1: 0.98, 2: 0.99, 3: 0.99, 4: 0.991}, 4),
        ({1: 0.99}, 1),
    ],
)
def test_choose_size_takes_the_best_validation_accuracy_and_the_smaller_k_on_a_tie(accuracies, chosen):
    assert choose_size(accuracies) == chosen


def test_no_members_is_an_error():
    with pytest.raises(ValueError, match="expected at least one member's probabilities, found none"):
        accuracy_by_size([], np.array([0]))


def recipe(seed: int, fraction: float = 0.1, validation_seed: int | None = None) -> dict:
    params = {"seed": seed, "validation_fraction": fraction}
    return params if validation_seed is None else {**params, "validation_seed": validation_seed}


def test_the_main_chain_splits_by_its_seed_and_sweep_candidates_by_their_shared_validation_seed():
    assert np.array_equal(recipe_validation_split(1000, recipe(7))[1], validation_split(1000, 0.1, 7)[1])
    assert np.array_equal(recipe_validation_split(1000, recipe(7, validation_seed=0))[1], validation_split(1000, 0.1, 0)[1])


def test_members_sharing_a_validation_seed_share_their_validation_images():
    shared = shared_validation_indices(1000, [recipe(seed, validation_seed=0) for seed in (1, 2, 3)])
    assert np.array_equal(shared, validation_split(1000, 0.1, 0)[1])
    # A larger fraction of the same shuffle holds out a superset: what all held out is the smaller slice.
    assert np.array_equal(shared_validation_indices(1000, [recipe(1, 0.1, 0), recipe(2, 0.2, 0)]), shared)


def test_members_with_disjoint_validation_images_are_refused():
    # Seeds 1 and 2 as split seeds (the main chain's rule) with a tiny fraction: no image held out by both.
    with pytest.raises(ValueError, match="expected validation images that all 2 members held out, found none"):
        shared_validation_indices(1000, [recipe(1, 0.002), recipe(2, 0.002)])


def test_the_ensemble_outputs_the_mean_probabilities_and_loads_with_safe_mode(tmp_path):
    members = [build_fast_model(seed) for seed in (0, 1, 2)]  # the same network three times: names must not clash
    ensemble = build_ensemble(members)
    images = np.random.default_rng(0).random((8, 28, 28), dtype=np.float32)
    expected = np.mean([member.predict(images, verbose=0) for member in members], axis=0)
    np.testing.assert_allclose(ensemble.predict(images, verbose=0), expected, atol=1e-6)
    ensemble.save(tmp_path / "champion.keras")
    loaded = keras.models.load_model(tmp_path / "champion.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, atol=1e-6)
    loss, accuracy = loaded.evaluate(images, np.zeros(8, dtype="int64"), verbose=0)  # compiled: evaluate works
    assert np.isfinite(loss) and accuracy == pytest.approx(float(np.mean(expected.argmax(axis=1) == 0)))


def test_one_member_is_the_member_itself():
    member = build_fast_model(0)
    assert build_ensemble([member]) is member


def test_a_champion_before_any_candidate_is_evaluated_says_what_to_run(tmp_path):
    import dagster as dg

    from mnist_pipeline.defs.experiments.champion import NoCandidatesError, champion_model
    from mnist_pipeline.defs.resources import storage_resources
    from mnist_pipeline_tests.synthetic import make_dataset

    resources = storage_resources(str(tmp_path))
    with pytest.raises(NoCandidatesError, match=r"found none; run `mnist-pipeline sweep` first$"):
        champion_model(
            context=dg.build_asset_context(),
            model_registry=resources["model_registry"],
            evaluation_records=resources["evaluation_records"],
            candidate_model={},
            candidate_evaluation={},
            scaled_mnist=make_dataset(num_train=20, num_test=10),
        )
