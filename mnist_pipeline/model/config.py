"""Hyperparameters users edit in the Launchpad, checked before any work.

Pydantic constraints reject bad values when a step builds its config, with an
error naming the field; `preset` and `optimizer` are enums, so Dagster rejects
an unknown name when the run is launched.

`preset` picks a network and its training recipe (model/presets.py). The
optimizer, learning rate, epochs and batch size default to the preset's
values; set one to override it.
"""

from __future__ import annotations

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


class ModelConfig(dg.Config):
    """Which network is built, and how it is initialised and compiled."""

    preset: PresetName = Field(
        default=DEFAULT_PRESET,
        description="Network and training recipe: 'tutorial' (the Keras tutorial's), 'fast' (99%+ in seconds) "
        "or 'best' (99.5%+). trained_model follows the preset of the network it is given.",
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
    seed: int = Field(default=0, ge=0, description="Seed for the initial weights.")

    def chosen_preset(self) -> Preset:
        return PRESETS[self.preset]

    def chosen_optimizer(self) -> str:
        return self.optimizer.value if self.optimizer is not None else self.chosen_preset().optimizer

    def chosen_learning_rate(self) -> float:
        return self.learning_rate if self.learning_rate is not None else self.chosen_preset().learning_rate


class TrainingConfig(dg.Config):
    """How the compiled network is fitted."""

    epochs: Optional[int] = Field(
        default=None,
        ge=1,
        le=1000,
        description=f"Passes over the training slice; unset: the network's preset's ({_preset_values('epochs')}).",
    )
    batch_size: Optional[int] = Field(
        default=None,
        ge=1,
        le=60000,
        description=f"Images per gradient step; unset: the network's preset's ({_preset_values('batch_size')}).",
    )
    validation_fraction: float = Field(
        default=0.1,
        gt=0.0,
        lt=1.0,
        description="Share of the training set held out for validation (never the test set).",
    )
    seed: int = Field(default=0, ge=0, description="Seed for the validation split and shuffling.")

    def chosen_epochs(self, preset: Preset) -> int:
        return self.epochs or preset.epochs

    def chosen_batch_size(self, preset: Preset) -> int:
        return self.batch_size or preset.batch_size
