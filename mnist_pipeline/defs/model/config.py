"""Hyperparameters: the run config users edit, checked before any work.

They are the config of the `hyperparameters` asset, whose stored value (and
data version) feeds compiled_model and trained_model. Changing them is a
materialization of that asset, so Dagster marks every model downstream as
unsynced and "materialize what changed" retrains.

The run config names the preset as a key, with that preset's recipe under it,
and the two values every preset shares beside it:

    preset:
      tutorial: {optimizer: sgd, learning_rate: 0.01, epochs: 10, batch_size: 32}
    validation_fraction: 0.1
    seed: 0

Each preset's recipe is its own config type (a discriminated union, which the
Launchpad shows as a selector) whose fields default to that preset's values.
So the Launchpad opens with every value the default preset trains with, and
`preset: {fast: {}}` (or `{fast: {epochs: 5}}`) takes the fast preset's values,
never the tutorial's. A value under a preset's name that differs from the
preset's own is an override, and `overrides()` lists it so the run log says so.

Pydantic constraints reject bad values with an error naming the field
(`preset.tutorial.epochs`), floats must be finite; the preset and the
optimizer are names Dagster checks, so an unknown one is refused at launch.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal, Optional, Union

import dagster as dg
from pydantic import Field, create_model

from mnist_pipeline.ml.model.presets import DEFAULT_PRESET, PRESETS, RECIPE_LIMITS, Preset

# The fields of a preset's recipe, as the command line's flags and `from_values` name them
# (augmentation only in the recipes of presets whose network augments its training images).
RECIPE_FIELDS = ("optimizer", "learning_rate", "epochs", "batch_size", "augmentation")


def limited(field: str) -> dict[str, float]:
    """The pydantic bounds of a recipe field, from its one definition (RECIPE_LIMITS)."""
    limits = RECIPE_LIMITS[field]
    return {"gt" if limits.low_excluded else "ge": limits.low, "le": limits.high}


class OptimizerName(str, Enum):  # an Enum, not a Literal: Dagster shows it as a choice in the Launchpad
    sgd = "sgd"
    adam = "adam"


def recipe_config(preset: Preset) -> type[dg.Config]:
    """The run config of one preset's recipe: the same fields and limits for every preset, defaulting to its values.

    A preset whose network augments its training images has one more field, the augmentation's strength.
    """
    augmentation = {}
    if preset.augmentation is not None:
        augmentation["augmentation"] = (
            float,
            Field(
                default=preset.augmentation,
                **limited("augmentation"),
                allow_inf_nan=False,
                description="Strength of the random rotations and shifts of the training images, a finite number "
                f"in {RECIPE_LIMITS['augmentation'].describe()}: 1 is up to 0.03 turns and 10% shifts, 2 doubles both, "
                "0 turns them off.",
            ),
        )
    return create_model(
        f"{preset.name.capitalize()}Recipe",
        __base__=dg.Config,
        __doc__=f"The {preset.name} preset: {preset.summary}",
        # Dagster's selector key for this branch; not shown as a field.
        name=(Literal[preset.name], preset.name),  # type: ignore[valid-type]
        optimizer=(OptimizerName, Field(default=OptimizerName(preset.optimizer), description="'sgd' or 'adam'.")),
        learning_rate=(
            float,
            Field(
                default=preset.learning_rate,
                **limited("learning_rate"),
                allow_inf_nan=False,
                description=f"Learning rate, a finite number in {RECIPE_LIMITS['learning_rate'].describe()}"
                + ("; the starting rate of the cosine schedule." if preset.schedule == "cosine" else "."),
            ),
        ),
        epochs=(int, Field(default=preset.epochs, **limited("epochs"), description="Passes over the training slice.")),
        batch_size=(int, Field(default=preset.batch_size, **limited("batch_size"), description="Images per gradient step.")),
        **augmentation,
    )


RECIPES: dict[str, type[dg.Config]] = {name: recipe_config(preset) for name, preset in PRESETS.items()}
Recipe = Union[tuple(RECIPES.values())]  # type: ignore[valid-type]


class Hyperparameters(dg.Config):
    """Which network is built, and how it is initialised, compiled and fitted."""

    preset: Recipe = Field(  # type: ignore[valid-type]
        default=RECIPES[DEFAULT_PRESET](),
        discriminator="name",
        description="The network and its training recipe: 'tutorial' (the Keras tutorial's), 'fast' (99%+ in "
        "seconds) or 'best' (99.5%+), with the preset's values under its name; change one to override it.",
    )
    validation_fraction: float = Field(
        default=0.1,
        gt=0.0,
        lt=1.0,
        allow_inf_nan=False,
        description="Share of the training set held out for validation (never the test set), a finite number in (0, 1).",
    )
    seed: int = Field(default=0, ge=0, description="Seed for the initial weights, the validation split and shuffling.")

    @classmethod
    def from_values(cls, **values: Any) -> "Hyperparameters":
        """From flat values, as the command line gives them: `from_values(preset="fast", epochs=5)`."""
        return cls(**hyperparameters_config(**values))

    def chosen_preset(self) -> Preset:
        return PRESETS[self.preset.name]

    def recipe(self) -> dict[str, Any]:
        """The recipe the model is trained with: the preset's, with any value set under its name."""
        recipe = {
            "optimizer": OptimizerName(self.preset.optimizer).value,
            "learning_rate": self.preset.learning_rate,
            "epochs": self.preset.epochs,
            "batch_size": self.preset.batch_size,
        }
        if self.chosen_preset().augmentation is not None:
            recipe["augmentation"] = self.preset.augmentation
        return recipe

    def overrides(self) -> dict[str, tuple[Any, Any]]:
        """Each recipe value that differs from the preset's own: field -> (value, the preset's)."""
        preset = self.chosen_preset()
        return {
            field: (value, getattr(preset, field))
            for field, value in self.recipe().items()
            if value != getattr(preset, field)
        }

    def resolved(self) -> dict:
        """Every value the models are built and trained with: what is stored and versioned."""
        recipe = self.recipe()
        return {
            "preset": self.preset.name,
            "optimizer": recipe["optimizer"],
            "learning_rate": recipe["learning_rate"],
            "schedule": self.chosen_preset().schedule,
            "epochs": recipe["epochs"],
            "batch_size": recipe["batch_size"],
            **({"augmentation": recipe["augmentation"]} if "augmentation" in recipe else {}),
            "validation_fraction": self.validation_fraction,
            "seed": self.seed,
        }


def hyperparameters_config(preset: Optional[str] = None, **values: Any) -> dict[str, Any]:
    """The `hyperparameters` asset's run config from flat values (the command line's flags).

    The recipe's values go under the preset's name (the default preset's when
    none is given), so what is not given is the preset's; the rest go beside it.
    """
    recipe = {field: values.pop(field) for field in RECIPE_FIELDS if field in values}
    return {"preset": {preset or DEFAULT_PRESET: recipe}, **values}


def hyperparameters_run_config(**values: Any) -> dict[str, Any]:
    """A run config that sets the hyperparameters from flat values: `hyperparameters_run_config(epochs=1)`."""
    return {"ops": {"hyperparameters": {"config": hyperparameters_config(**values)}}}
