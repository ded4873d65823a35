"""Model presets: a network and the recipe that trains it, picked by name in the run config.

Free of Keras, so the run config can name the presets at start-up; the
networks themselves are in model/architectures.py.

The preset is chosen once, in the `hyperparameters` asset's config
(`Hyperparameters.preset`, model/config.py), which stores the whole recipe
resolved; both compiled_model and trained_model read that, so they cannot
disagree. The run config shows a preset's optimizer, learning rate, epoch
count and batch size under its name, defaulting to the values here; a value
changed there overrides the preset's. Each network is named after its preset
(`network_name`), so a stored model says which preset built it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ScheduleName = Literal["constant", "cosine"]


@dataclass(frozen=True)
class Preset:
    name: str
    network_name: str  # the Keras model's name, which identifies the preset of a stored model
    summary: str
    optimizer: str
    learning_rate: float  # with the cosine schedule: the rate it starts from
    schedule: ScheduleName  # constant, or cosine decay to 0 over all training steps
    epochs: int
    batch_size: int
    # The strength of the random rotations and shifts of the training images, where the network has them
    # (model/architectures.py): 1 is best's, 0 turns them off. None: the network has no augmentation.
    augmentation: float | None = None


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            name="tutorial",
            network_name="tutorial_convnet",
            summary="The Keras tutorial convnet: Conv2D(32) -> MaxPool -> Dense(128) -> Dense(10).",
            optimizer="sgd",
            learning_rate=0.01,
            schedule="constant",
            epochs=10,
            batch_size=32,
        ),
        Preset(
            name="fast",
            network_name="fast_convnet",
            summary="A small two-stage convnet (5x5 convolutions of 16 and 32 filters, Dense(64)); "
            "99%+ in seconds on a CPU.",
            optimizer="adam",
            learning_rate=0.005,
            schedule="cosine",
            epochs=3,
            batch_size=120,
        ),
        Preset(
            name="best",
            network_name="best_convnet",
            summary="Two stages of two 3x3 convolutions with batch normalisation, dropout, and random "
            "rotations and shifts of the training images; 99.5%+.",
            optimizer="adam",
            learning_rate=0.003,
            schedule="cosine",
            epochs=15,
            batch_size=120,
            augmentation=1.0,
        ),
        Preset(
            name="wide",
            network_name="wide_convnet",
            summary="Two 5x5 convolutions of 32 and 64 filters and a 3x3 of 128, with batch normalisation, "
            "dropout, and best's rotations and shifts; 99.5% in 5 epochs, a second network for sweeps.",
            optimizer="adam",
            learning_rate=0.003,
            schedule="cosine",
            epochs=5,
            batch_size=120,
            augmentation=1.0,
        ),
    )
}

DEFAULT_PRESET = "tutorial"
MAX_AUGMENTATION = 3.0  # three times best's: rotations of up to 0.09 turns (32 degrees), shifts of up to 30%
AUGMENTING_PRESETS = tuple(name for name, preset in PRESETS.items() if preset.augmentation is not None)


@dataclass(frozen=True)
class Limits:
    """The values a recipe field may take: from `low` (itself allowed unless `low_excluded`) to `high`."""

    low: float
    high: float
    low_excluded: bool = False

    def allows(self, value: float) -> bool:
        above = value > self.low if self.low_excluded else value >= self.low
        return above and value <= self.high  # False for NaN

    def describe(self) -> str:
        return f"{'(' if self.low_excluded else '['}{self.low:g}, {self.high:g}]"


# The limits of each numeric recipe field, wherever a value comes from: the run config (model/config.py)
# and a sweep's --set (model/candidates.py) both check these.
RECIPE_LIMITS: dict[str, Limits] = {
    "learning_rate": Limits(0.0, 10.0, low_excluded=True),
    "epochs": Limits(1, 1000),
    "batch_size": Limits(1, 60000),
    "augmentation": Limits(0.0, MAX_AUGMENTATION),
}

