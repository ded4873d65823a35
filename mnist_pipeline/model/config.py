"""Hyperparameters: the run config users edit, checked before any work.

They are the config of the `hyperparameters` asset, whose stored value (and
data version) feeds compiled_model and trained_model. Changing them is a
materialization of that asset, so Dagster marks every model downstream as
unsynced and "materialize what changed" retrains.

Pydantic constraints reject bad values with an error naming the field;
`optimizer` is an enum, so Dagster rejects an unknown name at launch.
"""

from typing import Literal

import dagster as dg
from pydantic import Field

OptimizerName = Literal["sgd", "adam"]


class Hyperparameters(dg.Config):
    """How the tutorial network is initialised, compiled and fitted."""

    optimizer: OptimizerName = Field(default="sgd", description="Optimizer: 'sgd' (the tutorial's) or 'adam'.")
    learning_rate: float = Field(default=0.01, gt=0.0, le=10.0, description="Optimizer learning rate.")
    epochs: int = Field(default=10, ge=1, le=1000, description="Passes over the training slice.")
    batch_size: int = Field(default=32, ge=1, le=60000, description="Images per gradient step.")
    validation_fraction: float = Field(
        default=0.1,
        gt=0.0,
        lt=1.0,
        description="Share of the training set held out for validation (never the test set).",
    )
    seed: int = Field(default=0, ge=0, description="Seed for the initial weights, the validation split and shuffling.")
