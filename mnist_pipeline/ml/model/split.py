"""The held-out validation slice of the training set."""

from __future__ import annotations

import numpy as np


def validation_split(num_examples: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation): a seeded shuffle with `fraction` of the examples held out."""
    num_validation = int(round(num_examples * fraction))
    if num_validation < 1 or num_validation >= num_examples:
        raise ValueError(
            f"validation_fraction: {fraction} of {num_examples} training images leaves "
            f"{num_validation} for validation and {num_examples - num_validation} for training; "
            "expected at least one of each"
        )
    order = np.random.default_rng(seed).permutation(num_examples)
    return np.sort(order[num_validation:]), np.sort(order[:num_validation])


def recipe_validation_split(num_examples: int, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """The split a resolved recipe trains with: its `validation_seed` if it has one (sweep candidates, which
    share one so their validation scores are comparable), else its training seed (the main chain)."""
    seed = params.get("validation_seed", params["seed"])
    return validation_split(num_examples, params["validation_fraction"], int(seed))
