"""Which model version is served, and the one command that changes it by hand.

The served version is the `production_model` asset: a small JSON pointer
into the model registry, and that asset is the pointer's only writer. A run
of the pipeline moves it forward only when every gate passes;
`mnist-pipeline models promote VERSION` launches a run of `production_model`
configured with that version, which moves it to any registered version that
passed the accuracy gate (a rollback).

Either way the version's files are first checked against the SHA-256 hashes
the registry recorded when it wrote them: a damaged model is never served.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Protocol

from mnist_pipeline.registry.evaluations import EvaluationRecords
from mnist_pipeline.registry.store import ModelRegistry, RegistryError
from mnist_pipeline.storage.location import read_text

PRODUCTION_ASSET = "production_model"


class AccuracyGate(Protocol):
    """The accuracy gate (the quality-gates resource): whether a test accuracy passes, and what was expected and found."""

    def accuracy_passes(self, test_accuracy: float) -> tuple[bool, str]: ...


class PromotionRefused(RegistryError):
    """A model version may not be served."""


class ProductionPointerError(RegistryError):
    """The production pointer file cannot be read, so which version is served is unknown."""


def pointer(version: str, test_accuracy: float, reason: str, run_id: str | None, previous: str | None) -> dict[str, Any]:
    return {
        "version": version,
        "test_accuracy": test_accuracy,
        "reason": reason,
        "run_id": run_id,
        "previous_version": previous,
        "promoted_at": time.time(),
    }


def replaced_version(version: str, served: dict[str, Any] | None) -> str | None:
    """The version that promoting `version` replaces, recorded as the new pointer's previous_version.

    Serving the version that is served already (a rerun) replaces nothing: the
    version it replaced stays the rollback target (and is kept by `models prune`).
    """
    if not served or not served.get("version"):
        return None
    return served.get("previous_version") if served["version"] == version else served["version"]


def read_pointer(path: Path) -> dict[str, Any] | None:
    """The production pointer stored at `path` (None if no model was ever served)."""
    if not path.exists():
        return None
    try:
        served = json.loads(read_text(path))
    except (ValueError, UnicodeDecodeError) as error:
        raise ProductionPointerError(f"{path}: expected the production model pointer as JSON, found invalid JSON ({error})") from error
    if not isinstance(served, dict) or not isinstance(served.get("version"), str):
        found = served.get("version") if isinstance(served, dict) else served
        raise ProductionPointerError(f"{path}: expected the production model pointer with a 'version' string, found {found!r}")
    return served


def version_evaluation(registry: ModelRegistry, evaluations: EvaluationRecords, version: str) -> dict[str, Any] | None:
    """The verified evaluation of `version`: evaluation_metrics' record, else the one an older registry kept in the entry."""
    evaluation = evaluations.read(version)
    return evaluation if evaluation is not None else registry.legacy_evaluation(version)


def check_promotable(registry: ModelRegistry, evaluations: EvaluationRecords, gates: AccuracyGate, version: str) -> tuple[dict[str, Any], Any]:
    """The version's evaluation and its model, if its files are intact, it passed the accuracy gate and it loads in safe mode.

    Raises PromotionRefused for a gate it fails, or the registry's error (unknown
    version, malformed manifest, damaged file, refused by Keras) naming the file.
    Loading it here means whatever serves it can load it too.
    """
    registry.verify(version)
    evaluation = version_evaluation(registry, evaluations, version)
    if evaluation is None:
        raise PromotionRefused(
            f"model {version}: expected a recorded evaluation in {evaluations.path(version)}, found none (it was never evaluated)"
        )
    passed, found = gates.accuracy_passes(evaluation["test_accuracy"])
    if not passed:
        raise PromotionRefused(f"model {version}: {found}")
    return evaluation, registry.load(version)
