"""Hyperparameters: the run config users edit, checked before any work.

They are the config of the `hyperparameters` asset, whose stored value (and
data version) feeds compiled_model and trained_model. Changing them is a
materialization of that asset, so Dagster marks every model downstream as
unsynced and "materialize what changed" retrains.

`preset` picks a network and its training recipe (model/presets.py). The
optimizer, learning rate, epochs and batch size default to the preset's
values; set one to override it.

Pydantic constraints reject bad values with an error naming the field;
`preset` and `optimizer` are enums, so Dagster rejects an unknown name at launch.
"""

from enum import Enum
from typing import Optional

import dagster as dg
from pydantic import Field

from mnist_pipeline.model.presets import DEFAULT_PRESET, PRESETS, Preset, PresetName


class OptimizerName(str, Enum):  # an Enum, not a Literal: Dagster accepts Optional[Enum] only
    sgd = "sgd"
    adam = "adam"


def _preset_values(attribute: str) -> str:
    return ", ".join(f"{name}: {getattr(preset, attribute)}" for name, preset in PRESETS.items())


class Hyperparameters(dg.Config):
    """Which network is built, and how it is initialised, compiled and fitted."""

    preset: PresetName = Field(
        default=DEFAULT_PRESET,
        description="Network and training recipe: 'tutorial' (the Keras tutorial's), 'fast' (99%+ in seconds) "
        "or 'best' (99.5%+).",
    )
    optimizer: Optional[OptimizerName] = Field(
        default=None, description=f"'sgd' or 'adam'; unset: the preset's ({_preset_values('optimizer')})."
    )
    learning_rate: Optional[float] = Field(
        default=None,
        gt=0.0,
        le=10.0,
        description="Learning rate, the starting rate of the preset's cosine schedule if it has one; "
        f"unset: the preset's ({_preset_values('learning_rate')}).",
    )
    epochs: Optional[int] = Field(
        default=None, ge=1, le=1000, description=f"Passes over the training slice; unset: the preset's ({_preset_values('epochs')})."
    )
    batch_size: Optional[int] = Field(
        default=None, ge=1, le=60000, description=f"Images per gradient step; unset: the preset's ({_preset_values('batch_size')})."
    )
    validation_fraction: float = Field(
        default=0.1,
        gt=0.0,
        lt=1.0,
        description="Share of the training set held out for validation (never the test set).",
    )
    seed: int = Field(default=0, ge=0, description="Seed for the initial weights, the validation split and shuffling.")

    def chosen_preset(self) -> Preset:
        return PRESETS[self.preset]

    def chosen_optimizer(self) -> str:
        return OptimizerName(self.optimizer).value if self.optimizer is not None else self.chosen_preset().optimizer

    def chosen_learning_rate(self) -> float:
        return self.learning_rate if self.learning_rate is not None else self.chosen_preset().learning_rate

    def chosen_epochs(self) -> int:
        return self.epochs if self.epochs is not None else self.chosen_preset().epochs

    def chosen_batch_size(self) -> int:
        return self.batch_size if self.batch_size is not None else self.chosen_preset().batch_size

    def resolved(self) -> dict:
        """Every value the models are built and trained with, the preset's filled in: what is versioned."""
        return {
            "preset": self.preset,
            "optimizer": self.chosen_optimizer(),
            "learning_rate": self.chosen_learning_rate(),
            "schedule": self.chosen_preset().schedule,
            "epochs": self.chosen_epochs(),
            "batch_size": self.chosen_batch_size(),
            "validation_fraction": self.validation_fraction,
            "seed": self.seed,
        }
