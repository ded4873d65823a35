"""The champion of a sweep: the best candidate, or the mean of the best k candidates' class probabilities.

    members, ranked by validation accuracy (the leaderboard's order)
    -> class probabilities of each on the validation images none of them trained on
    -> validation accuracy of the mean of the top 1, 2, ... up to MAX_MEMBERS (the largest k)
    -> k: the largest, unless a smaller k is more accurate beyond chance (McNemar's exact test
       against the largest, p < 0.05): then the most accurate of those (on a tie, the smaller)
    -> one Keras model: the k networks side by side, then Average

Why the largest k unless the validation images say otherwise: averaging more
members of about equal skill lowers the variance of the prediction, while the
differences between the k on 6,000 validation images are a few images, which
chance explains (BENCHMARKS.md, *The champion of a sweep*). Taking the single
highest of those scores picks the one that chance raised most, and the member
ranked first by the very images that score it is the most favoured of all. A
smaller k has to win by more than chance; McNemar's test on the paired
predictions is the same one `models compare` uses (ml/evaluation/comparison.py).

Chosen on validation only, like the leaderboard: the test images are for
reporting what the chosen model does, never for choosing it. The saved model
is built from Keras's own layers (each member nested under its own name, then
`Average`), so it loads with safe_mode=True like any other version.

Imports Keras: import this module inside asset bodies only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np

from mnist_pipeline.ml.data.dataset import IMAGE_SHAPE
from mnist_pipeline.ml.evaluation.comparison import McNemar, mcnemar_exact
from mnist_pipeline.ml.evaluation.evaluate import predict_probabilities
from mnist_pipeline.ml.model.network import compile_model
from mnist_pipeline.ml.model.split import recipe_validation_split

# The most members a champion may average (k itself is chosen on validation): each member adds its full
# prediction cost, so the cap bounds what serving the champion costs (BENCHMARKS.md: its predict time;
# the mean of 6 took 10.3 s for the 10,000 test images here, one network 2.6 s).
MAX_MEMBERS = 10
# The optimizer a saved model is compiled with (Keras's evaluate needs a compiled model); it is never trained.
UNUSED_OPTIMIZER = ("sgd", 0.01)


def shared_validation_indices(num_train: int, members: Sequence[dict]) -> np.ndarray:
    """The training-set images that every member held out: each member's recipe names its own split.

    Sweep candidates share one split seed (ml/model/candidates.py), so this is their
    common validation slice; with different fractions, the smaller slice.
    """
    shared: np.ndarray | None = None
    for params in members:
        _, held_out = recipe_validation_split(num_train, params)
        shared = held_out if shared is None else np.intersect1d(shared, held_out)
    if shared is None or len(shared) == 0:
        raise ValueError(
            f"expected validation images that all {len(members)} members held out, found none: their recipes "
            "split the training set differently (validation_seed, validation_fraction)"
        )
    return shared


def correct_by_size(member_probabilities: Sequence[np.ndarray], labels: np.ndarray) -> dict[int, np.ndarray]:
    """Which images the mean probabilities of the first k members get right, for k = 1 .. len(members)."""
    if not member_probabilities:
        raise ValueError("expected at least one member's probabilities, found none")
    total = np.zeros_like(np.asarray(member_probabilities[0], dtype=np.float64))
    correct = {}
    for k, probabilities in enumerate(member_probabilities, start=1):
        total += probabilities
        correct[k] = total.argmax(axis=1) == labels  # the mean's argmax is the sum's
    return correct


def accuracy_by_size(member_probabilities: Sequence[np.ndarray], labels: np.ndarray) -> dict[int, float]:
    """Accuracy of the mean probabilities of the first k members, for k = 1 .. len(members)."""
    return {k: float(np.mean(right)) for k, right in correct_by_size(member_probabilities, labels).items()}


def mcnemar_against_largest(correct: dict[int, np.ndarray]) -> dict[int, McNemar]:
    """McNemar's exact test of each smaller k against the largest, on the images exactly one of the two gets right
    (only_a_right: the smaller k's, only_b_right: the largest's)."""
    largest = correct[max(correct)]
    return {k: mcnemar_exact(int((right & ~largest).sum()), int((largest & ~right).sum()))
            for k, right in correct.items() if k < max(correct)}  # fmt: skip


def choose_size(tests: dict[int, McNemar], largest: int) -> int:
    """The largest k, unless smaller ones are more accurate beyond chance (`tests`: each smaller k's against the
    largest, mcnemar_against_largest): then the most accurate of those, the smaller on a tie."""
    better = {k: test.only_a_right - test.only_b_right
              for k, test in tests.items()
              if test.significant and test.only_a_right > test.only_b_right}  # fmt: skip
    return min(better, key=lambda k: (-better[k], k)) if better else largest


@dataclass(frozen=True)
class SizeChoice:
    """How many of the ranked members the champion averages, and the validation figures it was chosen by."""

    size: int
    validation_images: int
    accuracy_by_size: dict[int, float]  # of the mean of the top k, for each k
    p_value_against_largest: dict[int, float]  # McNemar's, for each smaller k

    @property
    def largest(self) -> int:
        return max(self.accuracy_by_size)


def choose_on_validation(
    members: Sequence[keras.Model], recipes: Sequence[dict], train_images: np.ndarray, train_labels: np.ndarray
) -> SizeChoice:
    """k for `members` (ranked by validation accuracy, each trained with the recipe at the same place in `recipes`),
    from their predictions of the training images all of them held out."""
    held_out = shared_validation_indices(len(train_labels), recipes)
    images, labels = np.asarray(train_images[held_out]), np.asarray(train_labels[held_out])
    correct = correct_by_size([predict_probabilities(member, images) for member in members], labels)
    tests = mcnemar_against_largest(correct)
    return SizeChoice(
        size=choose_size(tests, largest=max(correct)),
        validation_images=len(held_out),
        accuracy_by_size={k: float(right.mean()) for k, right in correct.items()},
        p_value_against_largest={k: test.p_value for k, test in tests.items()},
    )


def build_ensemble(members: Sequence[keras.Model], name: str = "champion") -> keras.Model:
    """One model whose output is the mean of the members' class probabilities; one member is returned as it is."""
    if len(members) == 1:
        return members[0]
    image = keras.Input(shape=IMAGE_SHAPE, name="image")
    # Each member under its own name: the members may be the same network (its name used twice is refused).
    outputs = [keras.Sequential([keras.Input(shape=IMAGE_SHAPE), member], name=f"member_{index}")(image)
               for index, member in enumerate(members)]
    ensemble = keras.Model(image, keras.layers.Average(name="mean_probability")(outputs), name=name)
    return compile_model(ensemble, *UNUSED_OPTIMIZER)
