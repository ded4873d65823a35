"""Each model version's evaluation, as evaluation_metrics recorded it: its own store, beside the registry.

    <root>/<version>.json              the metrics evaluation_metrics produced for that model version
    <root>/<version>.json.sha256.json  its SHA-256, recorded when written (storage/integrity.py)

evaluation_metrics' IO manager writes here (defs/io_managers.py); the
promotion gate and `models list` read here (a directory, or an s3:// prefix), so the evaluation of any version,
the served one, a rollback target or one never served, is found without the
evaluation writing into the registry entry trained_model created. A record
whose file no longer matches its hash is refused, so an edited accuracy
cannot pass the gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mnist_pipeline.registry.store import DamagedFileError, read_evaluation_file
from mnist_pipeline.storage.atomic import atomic_write_json
from mnist_pipeline.storage.integrity import IntegrityError, file_sha256, recorded_sha256, verify_file, write_record
from mnist_pipeline.storage.location import StoragePath


@dataclass(frozen=True)
class EvaluationRecords:
    root: StoragePath

    def path(self, version: str) -> StoragePath:
        return self.root / f"{version}.json"

    def write(self, version: str, metrics: dict[str, Any]) -> StoragePath:
        path = self.path(version)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, metrics)
        write_record(path, file_sha256(path), file=path.name, model_version=version)
        return path

    def read(self, version: str) -> dict[str, Any] | None:
        """The verified evaluation of `version`, or None if it was never evaluated (since evaluations were kept here)."""
        path = self.path(version)
        what = f"the evaluation of model version {version}"
        try:
            expected = recorded_sha256(path)
        except IntegrityError as error:
            raise DamagedFileError(f"{error}; evaluating this version again (materialize evaluation_metrics) rewrites it") from error
        if expected is None:
            if path.exists():
                raise DamagedFileError(
                    f"{path}: expected {what} with its SHA-256 recorded beside it, found no record; "
                    "evaluating this version again (materialize evaluation_metrics) rewrites it"
                )
            return None
        try:
            verify_file(path, expected, what=what)
        except IntegrityError as error:
            raise DamagedFileError(f"{error}; evaluating this version again (materialize evaluation_metrics) rewrites it") from error
        return read_evaluation_file(path, what)
