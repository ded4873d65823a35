"""Every trained model ever produced, kept by version, and checked every time it is used.

    <root>/<version>/model.keras       the model, as trained: the only copy (the trained_model
                                       asset's IO manager writes and reads it here, by version)
    <root>/<version>/history.json      its per-epoch training history (read without loading Keras)
    <root>/<version>/manifest.json     run ids, input data versions, hyperparameters, code version,
                                       and the SHA-256 of model.keras and history.json as written
    <root>/.lock                       held while the registry is written (register, prune),
                                       on a local disk; an object store has no lock (storage/locks.py)

Nothing else writes into a version's directory: a version's evaluation is
evaluation_metrics' own record (registry/evaluations.py). Entries written
before that change may hold an evaluation.json (its hash in the manifest): it
is still read, verified, for versions never evaluated since (`legacy_evaluation`).

The version is the model's content hash (its Dagster data version), so a
deterministic re-run that trains the same weights finds its version already
there: it records the extra run and, if model.keras is missing or no longer
matches its recorded SHA-256, rewrites it from the model in memory and records
the new file's hash (a .keras file is a ZIP archive with timestamps, so two
saves of the same model differ in bytes: the hash is of what was written).

Promoting, serving, loading and exporting a version first check its files
against those hashes. Manifests written before hashes were recorded have no
"sha256" field: their model.keras is accepted if it is a sound ZIP archive
(every member passes its CRC-32 check) and their evaluation.json if it is
valid JSON; the next registration of that version records both hashes.

`load` keeps each model it loaded for the rest of the process, keyed by the
file's path and verified SHA-256: a run's check, evaluation, predictions and
serving steps share one load, and a file changed since is loaded again.

The root may be an s3:// prefix (storage/location.py): the same files, each
written with one PUT, the manifest last, so a version is listed only once its
model and history are there.

Every failure is a RegistryError whose message is one line naming the version
and the file, so the command line can print it as it is.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from mnist_pipeline.storage.atomic import (
    atomic_write,
    atomic_write_json,
    create_if_absent,
    local_copy,
    stored_version,
    write_json_if_unchanged,
)
from mnist_pipeline.storage.integrity import IntegrityError, file_sha256, verify_file, verify_zip_archive
from mnist_pipeline.storage.location import StoragePath, read_text
from mnist_pipeline.storage.locks import LOCK_FILE, exclusive_lock

MODEL_FILE = "model.keras"
HISTORY_FILE = "history.json"
MANIFEST_FILE = "manifest.json"
EVALUATION_FILE = "evaluation.json"  # written by registries before evaluations had their own store; read only
# Models loaded in this process, by (model file, its verified SHA-256); a few, so a long process
# (the test suite, a code server) does not keep every model it ever loaded.
_LOADED: "OrderedDict[tuple[str, str], Any]" = OrderedDict()
_LOADED_LIMIT = 4
# How many times a registration in an object store starts again when others keep changing the manifest it read.
REGISTER_ATTEMPTS = 10
# Fields every manifest has, and what each must be; the registry and `models list` rely on them.
MANIFEST_FIELDS: dict[str, tuple[type, ...]] = {
    "version": (str,),
    "run_id": (str,),
    "runs": (list,),
    "registered_at": (int, float),
    "hyperparameters": (dict,),
}


class RegistryError(Exception):
    """A model version cannot be used as asked. The message is complete: one line naming the version and file."""


class UnknownModelVersionError(RegistryError, LookupError):
    """No model with that version is registered."""


class MalformedRecordError(RegistryError, ValueError):
    """A manifest.json or evaluation.json is not what the registry writes (invalid JSON, missing fields)."""


class DamagedFileError(RegistryError, IntegrityError):
    """A version's model.keras, history.json or evaluation.json is missing or no longer matches the SHA-256 recorded when it was written."""


class UnloadableModelError(RegistryError, ValueError):
    """An intact model file that Keras will not load in safe mode (a Lambda layer, a custom object)."""


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else 'no message'}"


def read_evaluation_file(path: StoragePath, what: str) -> dict[str, Any]:
    """An evaluation record's JSON, refused unless it is an object with a finite numeric 'test_accuracy' (the gate's input)."""
    try:
        evaluation = json.loads(read_text(path))
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedRecordError(f"{path}: expected {what} as JSON, found invalid JSON ({error})") from error
    accuracy = evaluation.get("test_accuracy") if isinstance(evaluation, dict) else None
    if not isinstance(accuracy, (int, float)) or isinstance(accuracy, bool) or not math.isfinite(accuracy):
        raise MalformedRecordError(f"{path}: expected {what} with a numeric 'test_accuracy', found {accuracy!r}")
    return evaluation


@dataclass(frozen=True)
class ModelRegistry:
    root: StoragePath

    def version_dir(self, version: str) -> StoragePath:
        return self.root / version

    def versions(self) -> list[str]:
        """Every registered version (a directory with a manifest file), in no particular order."""
        if not self.root.is_dir():
            return []
        return [d.name for d in self.root.iterdir() if not d.name.startswith(".") and (d / MANIFEST_FILE).is_file()]

    def writing(self):
        """Hold the registry's lock: one writer at a time, so a repair and a prune never interleave."""
        return exclusive_lock(self.root / LOCK_FILE)

    # --- writing ------------------------------------------------------------------------------

    def register(self, version: str, model: Any, manifest: dict[str, Any], history: dict[str, list[float]] | None = None) -> StoragePath:
        """Store `model` (and its training `history`) under `version` and record the run.

        If the version is there already, only the run is added, unless its model
        file is missing or damaged: then it is rewritten from `model` and the repair
        recorded. A missing or damaged history.json is rewritten from `history`.
        A malformed manifest is replaced by this run's.
        """
        directory = self.version_dir(version)
        now = time.time()
        with self.writing():
            # On a local disk the lock makes the first attempt the only one. In an object store there is no
            # lock: the manifest is replaced only if no other registration replaced it since it was read
            # (storage/atomic.py), else this one starts again from the manifest now there.
            for _ in range(REGISTER_ATTEMPTS):
                seen = stored_version(directory / MANIFEST_FILE)
                record = self._record_registration(version, model, manifest, history, now)
                if write_json_if_unchanged(directory / MANIFEST_FILE, record, seen):
                    return directory
        raise RegistryError(
            f"{directory / MANIFEST_FILE}: expected to record run {manifest['run_id']} of model version {version}, "
            f"found the manifest changed by other registrations {REGISTER_ATTEMPTS} times in a row; run it again"
        )

    def _record_registration(
        self, version: str, model: Any, manifest: dict[str, Any], history: dict[str, list[float]] | None, now: float
    ) -> dict[str, Any]:
        """The version's manifest with this run recorded, once the model and history files it names are sound."""
        directory = self.version_dir(version)
        model_path = directory / MODEL_FILE
        history_path = directory / HISTORY_FILE
        try:
            record, problem = self._read_manifest(version), None
        except UnknownModelVersionError:
            record, problem = None, None
        except MalformedRecordError as malformed:
            record, problem = None, str(malformed)
        fresh = record is None
        if fresh:  # first registration, or a manifest beyond repair: this run's replaces it
            record = {**manifest, "version": version, "registered_at": now, "runs": []}
        else:
            try:
                self._verify_model(version, record.setdefault("sha256", {}))
            except DamagedFileError as damage:
                problem = str(damage)
        hashes = record.setdefault("sha256", {})
        if fresh or problem is not None:
            directory.mkdir(parents=True, exist_ok=True)
            hashes[MODEL_FILE] = self._write_model(version, model, replace=problem is not None)
        elif MODEL_FILE not in hashes:
            # Registered before hashes were recorded, and the file passed the ZIP check: record its hash now.
            hashes[MODEL_FILE] = file_sha256(model_path)
        if history is not None:
            try:
                self._read_history(version, hashes.get(HISTORY_FILE))
                sound = HISTORY_FILE in hashes
            except RegistryError:
                sound = False
            if not sound:
                directory.mkdir(parents=True, exist_ok=True)
                atomic_write_json(history_path, history)
                hashes[HISTORY_FILE] = file_sha256(history_path)
            record.pop("history", None)  # kept in history.json now
        if problem is not None:
            record.setdefault("repairs", []).append({"at": now, "run_id": manifest["run_id"], "found": problem})
        if manifest["run_id"] not in record["runs"]:
            record["runs"].append(manifest["run_id"])
        record["last_registered_at"] = now
        if EVALUATION_FILE not in hashes and (directory / EVALUATION_FILE).is_file():
            try:
                self._read_evaluation(version, None)
            except MalformedRecordError:
                (directory / EVALUATION_FILE).unlink()  # unreadable and unrecorded: evaluation_metrics keeps evaluations now
            else:
                hashes[EVALUATION_FILE] = file_sha256(directory / EVALUATION_FILE)
        return record

    def _write_model(self, version: str, model: Any, *, replace: bool) -> str:
        """Write the version's model file (unless `replace`, only if absent) and return the SHA-256 of the file there.

        Only if absent: in an object store, another registration of the same version (the same weights)
        may have written it since this one read the manifest; its file is kept and recorded, so every
        manifest names the file that is there. (A file there that is not a sound model is replaced.)
        """
        path = self.version_dir(version) / MODEL_FILE
        if not replace:
            if create_if_absent(path, lambda tmp: model.save(tmp)):
                return file_sha256(path)
            try:
                verify_zip_archive(path, what=f"the model file of version {version}")
                return file_sha256(path)
            except IntegrityError:
                pass
        atomic_write(path, lambda tmp: model.save(tmp))
        return file_sha256(path)

    # --- reading ------------------------------------------------------------------------------

    def _require(self, version: str) -> StoragePath:
        directory = self.version_dir(version)
        if not (directory / MANIFEST_FILE).is_file():
            known = ", ".join(sorted(self.versions())) or "none"
            raise UnknownModelVersionError(
                f"{directory}: expected a registered model version {version!r}, found none (registered: {known})"
            )
        return directory

    def _read_manifest(self, version: str) -> dict[str, Any]:
        path = self._require(version) / MANIFEST_FILE
        expected = f"expected the manifest of model version {version} as a JSON object"
        try:
            record = json.loads(read_text(path))
        except (ValueError, UnicodeDecodeError) as error:
            raise MalformedRecordError(f"{path}: {expected}, found invalid JSON ({error})") from error
        if not isinstance(record, dict):
            raise MalformedRecordError(f"{path}: {expected}, found a JSON {type(record).__name__}")
        missing = [name for name in MANIFEST_FIELDS if name not in record]
        if missing:
            raise MalformedRecordError(f"{path}: {expected} with fields {', '.join(MANIFEST_FIELDS)}; missing {', '.join(missing)}")
        for name, types in MANIFEST_FIELDS.items():
            if not isinstance(record[name], types) or isinstance(record[name], bool):
                raise MalformedRecordError(
                    f"{path}: expected field {name!r} of model version {version}'s manifest to be "
                    f"{' or '.join(t.__name__ for t in types)}, found {record[name]!r}"
                )
        if record["version"] != version:
            raise MalformedRecordError(f"{path}: expected the manifest of model version {version}, found one for {record['version']!r}")
        hashes = record.get("sha256", {})
        if not isinstance(hashes, dict) or not all(isinstance(h, str) for h in hashes.values()):
            raise MalformedRecordError(f"{path}: expected field 'sha256' of model version {version}'s manifest to map file names to hashes, found {hashes!r}")
        return record

    def _read_evaluation(self, version: str, expected_sha256: str | None) -> dict[str, Any] | None:
        path = self.version_dir(version) / EVALUATION_FILE
        if expected_sha256 is None and not path.exists():
            return None
        if expected_sha256 is not None:
            self._verify_file(path, expected_sha256, f"the evaluation of model version {version}")
        return read_evaluation_file(path, f"the evaluation of model version {version}")

    @staticmethod
    def _verify_file(path: StoragePath, expected_sha256: str, what: str) -> None:
        try:
            verify_file(path, expected_sha256, what=what)
        except IntegrityError as error:
            raise DamagedFileError(f"{error}; a run that trains this version again rewrites it") from error

    def _verify_model(self, version: str, hashes: dict[str, str]) -> StoragePath:
        path = self.version_dir(version) / MODEL_FILE
        what = f"the model file of version {version}"
        if MODEL_FILE in hashes:
            self._verify_file(path, hashes[MODEL_FILE], what)
        else:  # registered before hashes were recorded
            try:
                verify_zip_archive(path, what=what)
            except IntegrityError as error:
                raise DamagedFileError(f"{error}; a run that trains this version again rewrites it") from error
        return path

    def _read_history(self, version: str, expected_sha256: str | None) -> dict[str, list[float]] | None:
        path = self.version_dir(version) / HISTORY_FILE
        if expected_sha256 is None:
            return None
        self._verify_file(path, expected_sha256, f"the training history of model version {version}")
        try:
            history = json.loads(read_text(path))
        except (ValueError, UnicodeDecodeError) as error:
            raise MalformedRecordError(f"{path}: expected the training history of model version {version} as JSON, found invalid JSON ({error})") from error
        if not isinstance(history, dict) or not all(isinstance(values, list) for values in history.values()):
            raise MalformedRecordError(f"{path}: expected the training history of model version {version} as metric -> per-epoch values, found {history!r}")
        return history

    def manifest(self, version: str) -> dict[str, Any]:
        """The version's manifest (lineage, hyperparameters, hashes of its files)."""
        return self._read_manifest(version)

    def history(self, version: str) -> dict[str, list[float]] | None:
        """The version's verified training history; from its manifest for versions registered before history.json; None if neither."""
        record = self._read_manifest(version)
        history = self._read_history(version, record.get("sha256", {}).get(HISTORY_FILE))
        return history if history is not None else record.get("history")

    def legacy_evaluation(self, version: str) -> dict[str, Any] | None:
        """The evaluation.json an older registry kept in the version's directory, verified; None if there is none."""
        return self._read_evaluation(version, self._read_manifest(version).get("sha256", {}).get(EVALUATION_FILE))

    def verify(self, version: str) -> dict[str, Any]:
        """The manifest once every file of the version has been checked."""
        record = self._read_manifest(version)
        hashes = record.get("sha256", {})
        self._read_history(version, hashes.get(HISTORY_FILE))
        self._read_evaluation(version, hashes.get(EVALUATION_FILE))
        self._verify_model(version, hashes)
        return record

    def list(self) -> list[dict[str, Any]]:
        """Every registered version's manifest, oldest first.

        A version whose manifest cannot be read is listed as
        {"version": ..., "problem": <the error message>} rather than hiding the others.
        """
        entries = []
        for version in self.versions():
            try:
                entries.append(self.manifest(version))
            except RegistryError as error:
                registered_at = (self.version_dir(version) / MANIFEST_FILE).stat().st_mtime
                entries.append({"version": version, "registered_at": registered_at, "problem": str(error)})
        return sorted(entries, key=lambda m: m["registered_at"])

    def model_path(self, version: str) -> StoragePath:
        """Where the version's model file is (not checked: for display)."""
        return self._require(version) / MODEL_FILE

    def verified_model_path(self, version: str) -> StoragePath:
        """The version's model file, once checked against the SHA-256 recorded when it was written."""
        return self._verify_model(version, self._read_manifest(version).get("sha256", {}))

    def load(self, version: str):
        """The Keras model of `version`, checked, then loaded with safe_mode=True (once per process and file content).

        Callers share the model object: they predict and read weights, never train it.
        """
        sha256 = self._read_manifest(version).get("sha256", {}).get(MODEL_FILE)
        path = self.verified_model_path(version)
        key = (str(path), sha256)
        if sha256 is not None and key in _LOADED:
            _LOADED.move_to_end(key)
            return _LOADED[key]
        import keras

        try:
            with local_copy(path) as model_file:
                model = keras.models.load_model(model_file, safe_mode=True)
        except Exception as error:  # any refusal by Keras; the file itself was just verified
            raise UnloadableModelError(
                f"{path}: expected model version {version} to load in Keras safe mode, found it refused ({_first_line(error)})"
            ) from error
        if sha256 is not None:  # a legacy file without a recorded hash has no identity to key it by
            _LOADED[key] = model
            while len(_LOADED) > _LOADED_LIMIT:
                _LOADED.popitem(last=False)
        return model

    def export(self, version: str, destination: Path) -> Path:
        """Copy the checked model file of `version` to `destination` (a file, or a directory to put it in)."""
        hashes = self._read_manifest(version).get("sha256", {})
        source = self._verify_model(version, hashes)
        destination = Path(destination)
        if destination.is_dir():
            destination = destination / f"mnist-{version}.keras"

        def copy(tmp: Path) -> None:
            with local_copy(source) as local_source:
                shutil.copyfile(local_source, tmp)
            if MODEL_FILE in hashes:  # the copy, too, is what was registered
                self._verify_file(tmp, hashes[MODEL_FILE], f"a copy of the model file of version {version}")

        atomic_write(destination, copy)
        return destination
