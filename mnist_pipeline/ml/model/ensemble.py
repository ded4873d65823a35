"""The champion of a sweep: the best candidate, or the mean of the best k candidates' class probabilities.

    members, ranked by validation accuracy (the leaderboard's order)
    -> class probabilities of each on the validation images none of them trained on
    -> validation accuracy of the mean of the top 1, 2, ... MAX_MEMBERS
    -> k: the best of those (ties go to the smaller k: fewer models to run)
    -> one Keras model: the k networks side by side, then Average

Chosen on validation only, like the leaderboard: the test images are for
reporting what the chosen model does, never for choosing it. The saved model
is built from Keras's own layers (each member nested under its own name, then
`Average`), so it loads with safe_mode=True like any other version.

Imports Keras: import this module inside asset bodies only.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from mnist_pipeline.ml.data.dataset import IMAGE_SHAPE
from mnist_pipeline.ml.model.network import compile_model
from mnist_pipeline.ml.model.split import recipe_validation_split

# The most members a champion may average (k itself is chosen on validation): each member adds its full
# prediction cost, so the cap bounds what serving the champion costs (BENCHMARKS.md: its predict time).
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


def accuracy_by_size(member_probabilities: Sequence[np.ndarray], labels: np.ndarray) -> dict[int, float]:
    """Accuracy of the mean probabilities of the first k members, for k = 1 .. len(members)."""
    if not member_probabilities:
        raise ValueError("expected at least one member's probabilities, found none")
    total = np.zeros_like(np.asarray(member_probabilities[0], dtype=np.float64))
    accuracies = {}
    for k, probabilities in enumerate(member_probabilities, start=1):
        total += probabilities
        accuracies[k] = float(np.mean(total.argmax(axis=1) == labels))  # the mean's argmax is the sum's
    return accuracies


def choose_size(accuracies: dict[int, float]) -> int:
    """The k with the best validation accuracy; on a tie, the smallest."""
    return min(accuracies, key=lambda k: (-accuracies[k], k))


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
