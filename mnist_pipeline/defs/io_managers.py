"""IO managers that store each asset as one file named after its asset key.

    <base_dir>/<asset key path>.<extension>

Every write is atomic (temporary file, then rename; in an object store, one
PUT of the finished file: storage/atomic.py), so a failed or killed run leaves
the previous artifact whole. Nothing is pickled: arrays are .npz read with
allow_pickle=False, models .keras read with safe_mode=True, tables Parquet,
metrics JSON, plots PNG. `base_dir` (or MNIST_STORAGE_URL) may be an
s3://bucket/prefix: the same files and records, in the object store.

Two assets keep more than their one file. trained_model is stored once, in
the model registry by version (RegistryModelIOManager); its own file,
trained_model.json, only names that version. evaluation_metrics also keeps
each model version's metrics (EvaluationIOManager), which the promotion gate
and `models list` read.

Every write is followed by a record of the artifact's SHA-256 beside it
(`<artifact>.sha256.json`, storage/integrity.py), also given as the
materialization's `sha256` metadata; every load checks the artifact against
that record first. A damaged or missing artifact is then an error that names
it and says how to rebuild it, never a confusing failure of the reader, and
`mnist-pipeline update` counts it as changed (versioning/what_changed.py).
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Iterator, Optional

import dagster as dg
import numpy as np
from pydantic import Field

from mnist_pipeline.defs.evaluation.resources import EvaluationRecordsResource
from mnist_pipeline.defs.model.resources import ModelRegistryResource
from mnist_pipeline.ml.data.dataset import DigitDataset
from mnist_pipeline.ml.model.trained import TrainedModel
from mnist_pipeline.paths import STORAGE_DIR_RULE, configured_location, default_storage_dir
from mnist_pipeline.registry.store import MODEL_FILE, RegistryError
from mnist_pipeline.storage.arrays import load_npz_memory_mapped
from mnist_pipeline.storage.atomic import atomic_publish_directory, atomic_write, local_copy, published_directory
from mnist_pipeline.storage.integrity import (
    IntegrityError,
    hash_before_publishing,
    record_path,
    recorded_sha256,
    remember_published,
    stored_sha256,
    verify_stored,
    write_record,
)
from mnist_pipeline.storage.location import StoragePath, path_from_string, read_bytes, read_text


class ArtifactMissingError(FileNotFoundError):
    """An upstream asset has no stored artifact (yet, or any more)."""


class DamagedArtifactError(IntegrityError):
    """A stored artifact does not match the SHA-256 recorded when it was written, or has no record.

    Not transient: retrying cannot repair it; materializing the asset again does.
    """


def rebuild_hint(name: str) -> str:
    return f"Rebuild it with `mnist-pipeline update` (which rebuilds damaged artifacts), or materialize '{name}' again."


class StorageError(OSError):
    """An artifact could not be written where the storage directory says."""


@contextmanager
def storage_errors_named(path: StoragePath, asset_key: dg.AssetKey) -> Iterator[None]:
    """An OSError while writing `asset_key`'s artifact becomes a StorageError naming the directory and the asset."""
    try:
        yield
    except OSError as error:
        raise StorageError(
            f"{path.parent}: expected a writable storage directory for {asset_key.to_user_string()}, "
            f"found {type(error).__name__}: {error}. The previous artifact, if any, is unchanged."
        ) from error


SHA256_METADATA = "sha256"  # the materialization's record of what was written


# The tag under which Dagster records a materialization's data version (no public constant names it).
DATA_VERSION_TAG = "dagster/data_version"


def verified_data_version(instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> str | None:
    """The data version of `asset_key`'s last materialization, if the artifact stored now is the one it wrote.

    For a step that has just loaded the asset through these IO managers (which verified the file against
    its SHA-256 record): when that record is the one the materialization reported, the file is that
    materialization's, and its recorded content hash need not be computed again. None otherwise.
    """
    event = instance.get_latest_materialization_event(asset_key)
    materialization = event.asset_materialization if event is not None else None
    if materialization is None:
        return None
    version = (materialization.tags or {}).get(DATA_VERSION_TAG)
    sha256, path = materialization.metadata.get(SHA256_METADATA), materialization.metadata.get("path")
    if not version or sha256 is None or path is None:
        return None
    try:
        recorded = recorded_sha256(path_from_string(path.value))
    except IntegrityError:
        return None
    return version if recorded == sha256.value else None


class FileIOManager(dg.ConfigurableIOManager):
    """Base: maps an asset key to a path; subclasses say how to write and read it."""

    base_dir: Optional[str] = Field(
        default=None,
        description=f"Directory (or s3://bucket/prefix) for artifacts; unset: the storage directory ({STORAGE_DIR_RULE}), read when used.",
    )

    # Part of the storage format, not a setting: a ClassVar, so the Launchpad does not offer it as config.
    extension: ClassVar[str] = ""

    def storage_dir(self) -> StoragePath:
        return configured_location(self.base_dir, default_storage_dir, f"{type(self).__name__}.base_dir")

    def path_for(self, asset_key: dg.AssetKey) -> StoragePath:
        return self.storage_dir().joinpath(*asset_key.path).with_suffix(self.extension)

    def stored_at(self, path: StoragePath) -> StoragePath:
        """Where the artifact of `path` is to hash and read: `path` itself, but for a published directory."""
        return path

    def dump(self, obj: Any, path: Path) -> None:
        """Write `obj` to `path`, a local (temporary) file."""
        raise NotImplementedError

    def load(self, path: StoragePath) -> Any:
        raise NotImplementedError

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        path = self.path_for(context.asset_key)
        with storage_errors_named(path, context.asset_key):
            path.parent.mkdir(parents=True, exist_ok=True)
            sha256 = self.publish(obj, path)
        context.add_output_metadata(
            {"path": dg.MetadataValue.path(str(path)), SHA256_METADATA: sha256, **self.file_metadata(obj, path)}
        )

    def file_metadata(self, obj: Any, path: StoragePath) -> dict[str, dg.MetadataValue]:
        """Extra metadata about what was written; none by default."""
        return {}

    def publish(self, obj: Any, path: StoragePath) -> str:
        """Write `obj` to `path` atomically, then record its SHA-256 beside it; returns the SHA-256."""
        sha256 = self.write(obj, path) or stored_sha256(self.stored_at(path))
        write_record(path, sha256, file=path.name, written_at=time.time())
        return sha256

    def write(self, obj: Any, path: StoragePath) -> str | None:
        """Write `obj` to `path` atomically; returns its SHA-256 if it was hashed on the way."""
        hashed: list = []

        def dump_and_hash(tmp: Path) -> None:
            self.dump(obj, tmp)
            hashed.append(hash_before_publishing(tmp))

        atomic_write(path, dump_and_hash)
        remember_published(path, hashed[0])
        return hashed[0][0]

    def load_input(self, context: dg.InputContext) -> Any:
        key = context.upstream_output.asset_key if context.upstream_output else context.asset_key
        return self.read(key)

    def read(self, asset_key: dg.AssetKey) -> Any:
        """The stored value of `asset_key`, once its artifact is verified (see `verified_path`)."""
        return self.load(self.verified_path(asset_key))

    def verified_path(self, asset_key: dg.AssetKey, materialized_sha256: str | None = None) -> StoragePath:
        """The path of `asset_key`'s artifact, checked against the SHA-256 recorded when it was written.

        `materialized_sha256`, when given, is the SHA-256 the asset's last materialization recorded:
        a record that disagrees means the stored artifact is not the one Dagster knows about.
        Raises ArtifactMissingError or DamagedArtifactError, naming the file and how to rebuild it.
        """
        path = self.path_for(asset_key)
        name = asset_key.to_user_string()
        what = f"the stored artifact of asset '{name}'"
        try:
            expected = recorded_sha256(path)
        except IntegrityError as error:
            raise DamagedArtifactError(f"{error}. {rebuild_hint(name)}") from error
        if not self.stored_at(path).exists():
            if expected is None:
                raise ArtifactMissingError(f"{path}: expected {what}, found no file. Materialize '{name}' first.")
            raise ArtifactMissingError(f"{path}: expected {what} with SHA-256 {expected}, found no file. {rebuild_hint(name)}")
        if expected is None:
            # Written before artifacts had records (or not by this pipeline): nothing to check it against.
            raise DamagedArtifactError(
                f"{path}: expected {what} with its SHA-256 recorded in {record_path(path).name}, found no record "
                f"(it was written before records were kept, or by something else), so it cannot be verified. "
                f"{rebuild_hint(name)}"
            )
        if materialized_sha256 is not None and materialized_sha256 != expected:
            raise DamagedArtifactError(
                f"{path}: expected {what} with the SHA-256 its last materialization recorded, {materialized_sha256}, "
                f"found a record of SHA-256 {expected}: the artifact was replaced outside that materialization. "
                f"{rebuild_hint(name)}"
            )
        try:
            verify_stored(self.stored_at(path), expected, what=what)
        except IntegrityError as error:
            raise DamagedArtifactError(f"{error}. {rebuild_hint(name)}") from error
        return path


class NpzIOManager(FileIOManager):
    """DigitDataset <-> uncompressed .npz (one array per split), memory-mapped on load.

    A step reads only what it touches: the evaluation steps never page in the training images.
    """

    extension: ClassVar[str] = ".npz"

    def dump(self, obj: DigitDataset, path: Path) -> None:
        with open(path, "wb") as handle:
            np.savez(handle, **obj.stored_arrays())

    def load(self, path: StoragePath) -> DigitDataset:
        return DigitDataset.from_arrays(load_npz_memory_mapped(path), source=str(path))


class KerasModelIOManager(FileIOManager):
    """keras.Model <-> one .keras file (the untrained compiled_model)."""

    extension: ClassVar[str] = ".keras"

    def dump(self, obj: Any, path: Path) -> None:
        obj.save(path)

    def load(self, path: StoragePath) -> Any:
        import keras

        with local_copy(path) as model_file:
            return keras.models.load_model(model_file, safe_mode=True)


class JsonIOManager(FileIOManager):
    """dict of plain values <-> .json."""

    extension: ClassVar[str] = ".json"

    def dump(self, obj: dict, path: Path) -> None:
        path.write_text(json.dumps(obj, indent=2, sort_keys=True))

    def load(self, path: StoragePath) -> dict:
        return json.loads(read_text(path))


class ParquetIOManager(FileIOManager):
    """pandas.DataFrame <-> .parquet."""

    extension: ClassVar[str] = ".parquet"

    def dump(self, obj, path: Path) -> None:
        obj.to_parquet(path, index=False)

    def load(self, path: StoragePath):
        import pandas as pd

        with local_copy(path) as table_file:
            return pd.read_parquet(table_file)


class PngDirectoryIOManager(FileIOManager):
    """dict of name -> PNG bytes <-> a directory of <name>.png files, published at once."""

    extension: ClassVar[str] = ""

    def write(self, obj: dict[str, bytes], path: StoragePath) -> None:
        """Publish the PNGs as one directory; None, so `publish` hashes what was published (a few small files)."""
        atomic_publish_directory(path, {f"{name}.png": content for name, content in obj.items()})

    def stored_at(self, path: StoragePath) -> StoragePath:
        """The published version's directory (on a local disk, the symbolic link at `path` leads there itself)."""
        return published_directory(path)

    def file_metadata(self, obj: dict[str, bytes], path: StoragePath) -> dict[str, dg.MetadataValue]:
        return {f"{name}_path": dg.MetadataValue.path(str(self.stored_at(path) / f"{name}.png")) for name in obj}

    def load(self, path: StoragePath) -> dict[str, bytes]:
        return {png.stem: read_bytes(png) for png in sorted(self.stored_at(path).glob("*.png"), key=lambda png: png.name)}


class RegistryModelIOManager(JsonIOManager):
    """TrainedModel <-> the model registry, by version: the model is stored once, there.

    The asset's own file (trained_model.json) is a small record naming the
    version and its model file; its SHA-256 is recorded like every artifact's.
    Reading returns the history at once and loads the Keras model (verified,
    safe mode, once per process: registry/store.py) only when it is used.
    """

    model_registry: ModelRegistryResource

    def handle_output(self, context: dg.OutputContext, obj: TrainedModel) -> None:
        if not obj.version or "run_id" not in obj.lineage:
            raise ValueError(
                f"{context.asset_key.to_user_string()}: expected a TrainedModel with its version and lineage (run_id) "
                f"to register, found version {obj.version!r} and lineage fields {sorted(obj.lineage)}"
            )
        registry = self.model_registry.registry()
        path = self.path_for(context.asset_key)
        with storage_errors_named(path, context.asset_key):
            directory = registry.register(obj.version, obj.model, obj.lineage, obj.history)
            path.parent.mkdir(parents=True, exist_ok=True)
            sha256 = self.publish({"version": obj.version, "model_file": str(directory / MODEL_FILE)}, path)
        context.add_output_metadata(
            {
                "path": dg.MetadataValue.path(str(directory / MODEL_FILE)),
                "record_path": dg.MetadataValue.path(str(path)),
                SHA256_METADATA: sha256,
                "model_sha256": registry.manifest(obj.version)["sha256"][MODEL_FILE],
            }
        )

    def _version(self, path: StoragePath) -> str:
        version = self.load_record(path).get("version")
        if not isinstance(version, str):
            raise DamagedArtifactError(f"{path}: expected a record with the trained model's 'version' string, found {version!r}")
        return version

    def load_record(self, path: StoragePath) -> dict:
        try:
            record = json.loads(read_text(path))
        except (ValueError, UnicodeDecodeError) as error:
            raise DamagedArtifactError(f"{path}: expected the trained model's record as JSON, found invalid JSON ({error})") from error
        return record if isinstance(record, dict) else {}

    def verified_path(self, asset_key: dg.AssetKey, materialized_sha256: str | None = None) -> StoragePath:
        """The record's path, once the record and the registry's model file it names are both verified."""
        path = self.path_for(asset_key)
        name = asset_key.to_user_string()
        old_layout = path.with_suffix(".keras")
        if not path.exists() and not record_path(path).exists() and old_layout.exists():
            raise ArtifactMissingError(
                f"{path}: expected the record of asset '{name}' naming its version in the model registry, found only "
                f"{old_layout.name}, written by an older version of this pipeline that kept the model outside the registry. "
                f"Materialize '{name}' again (`mnist-pipeline run`) to store it in the registry."
            )
        super().verified_path(asset_key, materialized_sha256)
        version = self._version(path)
        try:
            self.model_registry.registry().verified_model_path(version)
        except RegistryError as error:
            raise DamagedArtifactError(f"{error}. {rebuild_hint(name)}") from error
        return path

    def load(self, path: StoragePath) -> TrainedModel:
        registry = self.model_registry.registry()
        version = self._version(path)
        try:
            history = registry.history(version)
        except RegistryError as error:
            raise DamagedArtifactError(f"{error}. {rebuild_hint('trained_model')}") from error
        return TrainedModel(history=history, version=version, load=lambda: registry.load(version))


class EvaluationIOManager(JsonIOManager):
    """evaluation_metrics: the current metrics as .json, and a record of them per model version (registry/evaluations.py)."""

    evaluation_records: EvaluationRecordsResource

    def handle_output(self, context: dg.OutputContext, obj: dict) -> None:
        super().handle_output(context, obj)
        try:
            record = self.evaluation_records.records().write(obj["model_version"], obj)
        except OSError as error:
            raise StorageError(
                f"{self.evaluation_records.records().root}: expected a writable directory for the evaluation of model "
                f"version {obj['model_version']}, found {type(error).__name__}: {error}"
            ) from error
        context.add_output_metadata({"model_version_record": dg.MetadataValue.path(str(record))})
