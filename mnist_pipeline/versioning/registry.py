"""Every trained model ever produced, kept by version and never overwritten.

    <root>/<version>/model.keras       the model, as trained
    <root>/<version>/manifest.json     run id, input data versions, hyperparameters, code version
    <root>/<version>/evaluation.json   its test metrics, once evaluated

The version is the model's content hash (its Dagster data version), so a
deterministic re-run that trains the same weights finds its version already
there and only records the extra run.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_pipeline.storage.atomic import atomic_write, atomic_write_json

MODEL_FILE = "model.keras"
MANIFEST_FILE = "manifest.json"
EVALUATION_FILE = "evaluation.json"


class UnknownModelVersionError(LookupError):
    """No model with that version is registered."""


@dataclass(frozen=True)
class ModelRegistry:
    root: Path

    def version_dir(self, version: str) -> Path:
        return self.root / version

    def register(self, version: str, model: Any, manifest: dict[str, Any]) -> Path:
        """Store `model` under `version` unless it is there already; record the run either way."""
        directory = self.version_dir(version)
        manifest_path = directory / MANIFEST_FILE
        if manifest_path.exists():
            existing = json.loads(manifest_path.read_text())
            runs = existing.setdefault("runs", [])
            if manifest["run_id"] not in runs:
                runs.append(manifest["run_id"])
                atomic_write_json(manifest_path, existing)
            return directory
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write(directory / MODEL_FILE, lambda tmp: model.save(tmp))
        atomic_write_json(manifest_path, {**manifest, "version": version, "registered_at": time.time(), "runs": [manifest["run_id"]]})
        return directory

    def record_evaluation(self, version: str, metrics: dict[str, Any]) -> None:
        self._require(version)
        atomic_write_json(self.version_dir(version) / EVALUATION_FILE, metrics)

    def _require(self, version: str) -> Path:
        directory = self.version_dir(version)
        if not (directory / MANIFEST_FILE).is_file():
            known = ", ".join(entry["version"] for entry in self.list()) or "none"
            raise UnknownModelVersionError(
                f"{directory}: expected a registered model version {version!r}, found none (registered: {known})"
            )
        return directory

    def manifest(self, version: str) -> dict[str, Any]:
        directory = self._require(version)
        manifest = json.loads((directory / MANIFEST_FILE).read_text())
        evaluation = directory / EVALUATION_FILE
        manifest["evaluation"] = json.loads(evaluation.read_text()) if evaluation.exists() else None
        return manifest

    def list(self) -> list[dict[str, Any]]:
        """Every registered version's manifest, oldest first."""
        if not self.root.is_dir():
            return []
        manifests = [self.manifest(d.name) for d in self.root.iterdir() if (d / MANIFEST_FILE).is_file()]
        return sorted(manifests, key=lambda m: m["registered_at"])

    def model_path(self, version: str) -> Path:
        return self._require(version) / MODEL_FILE

    def load(self, version: str):
        """The Keras model of `version`, loaded with safe_mode=True."""
        import keras

        return keras.models.load_model(self.model_path(version), safe_mode=True)

    def export(self, version: str, destination: Path) -> Path:
        destination = Path(destination)
        if destination.is_dir():
            destination = destination / f"mnist-{version}.keras"
        atomic_write(destination, lambda tmp: shutil.copyfile(self.model_path(version), tmp))
        return destination
