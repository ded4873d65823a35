"""Hyperparameters users edit in the Launchpad, checked before any work.

Pydantic constraints reject bad values when a step builds its config, with an
error naming the field; `optimizer` is an enum, so Dagster rejects an unknown
name when the run is launched.
"""

from __future__ import annotations

from typing import Literal

import dagster as dg
from pydantic import Field

OptimizerName = Literal["sgd", "adam"]


class ModelConfig(dg.Config):
    """How the tutorial network is initialised and compiled."""

    optimizer: OptimizerName = Field(default="sgd", description="Optimizer: 'sgd' (the tutorial's) or 'adam'.")
    learning_rate: float = Field(default=0.01, gt=0.0, le=10.0, description="Optimizer learning rate.")
    seed: int = Field(default=0, ge=0, description="Seed for the initial weights.")


class TrainingConfig(dg.Config):
    """How the compiled network is fitted."""

    epochs: int = Field(default=10, ge=1, le=1000, description="Passes over the training slice.")
    batch_size: int = Field(default=32, ge=1, le=60000, description="Images per gradient step.")
    validation_fraction: float = Field(
        default=0.1,
        gt=0.0,
        lt=1.0,
        description="Share of the training set held out for validation (never the test set).",
    )
    seed: int = Field(default=0, ge=0, description="Seed for the validation split and shuffling.")
