"""The champion's rules (ml/model/ensemble.py): which validation images, which k, and the saved model."""

import keras
import numpy as np
import pytest

from mnist_pipeline.ml.model.architectures import build_fast_model
from mnist_pipeline.ml.model.ensemble import (
    accuracy_by_size, build_ensemble, choose_on_validation, choose_size, correct_by_size, shared_validation_indices,
    mcnemar_against_largest,
)
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


IMAGES = 200
LARGEST = np.arange(IMAGES) >= 20  # the largest k misses images 0..19


def against_largest(only_this_right: int, only_largest_right: int) -> np.ndarray:
    """A smaller k's right answers: the largest's, plus some it misses (from image 0), minus some it gets (from image 100)."""
    right = LARGEST.copy()
    right[:only_this_right] = True
    right[100 : 100 + only_largest_right] = False
    return right


@pytest.mark.parametrize(
    "smaller, chosen",
    [
        ({}, 1),  # one member: itself
        ({1: (0, 0), 2: (0, 0)}, 3),  # equally accurate: the mean of all
        ({1: (3, 1), 2: (2, 0)}, 3),  # 2 images better: chance explains it (p = 0.63, 0.5)
        ({1: (15, 1), 2: (3, 1)}, 1),  # the best alone is better beyond chance (p < 0.001)
        ({1: (12, 0), 2: (14, 2)}, 1),  # both better by 12 images beyond chance: the smaller
        ({1: (14, 2), 2: (16, 1)}, 2),  # both better beyond chance: the more accurate
        ({1: (0, 15), 2: (1, 0)}, 3),  # k=1 worse beyond chance, k=2 better by one image: the mean of all
    ],
)
def test_choose_size_keeps_the_largest_k_unless_a_smaller_one_is_more_accurate_beyond_chance(smaller, chosen):
    correct = {k: against_largest(*counts) for k, counts in smaller.items()} | {len(smaller) + 1: LARGEST}
    assert choose_size(mcnemar_against_largest(correct), largest=len(correct)) == chosen


def test_each_smaller_k_is_tested_against_the_largest_on_the_images_exactly_one_gets_right():
    tests = mcnemar_against_largest({1: against_largest(15, 1), 2: against_largest(3, 1), 3: LARGEST})
    assert sorted(tests) == [1, 2]
    assert (tests[1].only_a_right, tests[1].only_b_right, tests[2].only_a_right, tests[2].only_b_right) == (15, 1, 3, 1)
    assert tests[1].p_value == pytest.approx(17 * 2 / 2**16) and not tests[2].significant  # 2 * (1 + 16) / 2^16


def test_correct_by_size_marks_each_image_the_mean_of_the_first_k_gets_right():
    labels = np.array([0, 1, 2, 0])
    first, second = one_hot([0, 1, 1, 1], confidence=0.6), one_hot([0, 2, 2, 0], confidence=0.9)
    correct = correct_by_size([first, second], labels)
    assert correct[1].tolist() == [True, True, False, False] and correct[2].tolist() == [True, False, True, True]


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


def test_choose_on_validation_scores_the_members_on_the_images_all_of_them_held_out():
    """Three copies of one network: every k scores the same, no p-value is below 1, so the mean of all three."""
    from mnist_pipeline.ml.evaluation.evaluate import predict_probabilities

    member = build_fast_model(seed=0)
    images = np.random.default_rng(0).random((300, 28, 28), dtype=np.float32)
    labels = np.arange(300) % 10
    recipes = [recipe(seed, validation_seed=5) for seed in (1, 2, 3)]
    chosen = choose_on_validation([member, member, member], recipes, images, labels)

    held_out = validation_split(300, 0.1, 5)[1]
    alone = float(np.mean(predict_probabilities(member, images[held_out]).argmax(axis=1) == labels[held_out]))
    assert chosen.validation_images == 30
    assert chosen.accuracy_by_size == pytest.approx({1: alone, 2: alone, 3: alone})
    assert chosen.p_value_against_largest == {1: 1.0, 2: 1.0}
    assert chosen.size == chosen.largest == 3


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
