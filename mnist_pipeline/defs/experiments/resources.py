"""Where the experiments domain keeps its small records: each candidate's config, and each candidate's results.

    <storage>/experiments/candidates/<key>.json           the candidate's full config (preset, seed, overrides),
                                                           written when a sweep adds its partition
    <storage>/experiments/<asset>/<key>.json              candidate_model's and candidate_evaluation's value for
                                                           the partition <key>, with <key>.json.sha256.json beside it

Kept apart from the main chain's IO managers (defs/io_managers.py): these values are
small JSON records per partition; the models themselves are in the model registry,
by version. Writes are atomic and verified on read (storage/atomic.py, storage/integrity.py).
"""

from __future__ import annotations

import json
import time
from typing import Any, Optional

import dagster as dg
from pydantic import Field

from mnist_pipeline.ml.model.candidates import Candidate, SweepSpecError
from mnist_pipeline.paths import STORAGE_DIR_RULE, configured_location, default_storage_dir
from mnist_pipeline.storage.atomic import atomic_write_json
from mnist_pipeline.storage.location import StoragePath, read_text
from mnist_pipeline.storage.integrity import IntegrityError, file_sha256, recorded_sha256, verify_file, write_record

EXPERIMENTS_DIR_NAME = "experiments"
CANDIDATE_MODEL_ASSET = "candidate_model"  # its records name each candidate's model version (kept by `models prune`)


class CandidateConfigError(ValueError):
    """A partition key without a readable config record: the candidate cannot be trained."""


class ExperimentStore(dg.ConfigurableResource):
    """The experiments directory: candidate configs and the candidate assets' records."""

    root: Optional[str] = Field(
        default=None,
        description=f"Experiments directory or s3:// URL; unset: experiments in the storage directory ({STORAGE_DIR_RULE}).",
    )

    def directory(self) -> StoragePath:
        return configured_location(self.root, lambda: default_storage_dir() / EXPERIMENTS_DIR_NAME, f"{type(self).__name__}.root")

    def config_path(self, key: str) -> StoragePath:
        return self.directory() / "candidates" / f"{key}.json"

    def write_config(self, candidate: Candidate) -> StoragePath:
        path = self.config_path(candidate.key)
        atomic_write_json(path, candidate.as_record())
        return path

    def read_config(self, key: str) -> Candidate:
        """The candidate of partition `key`, from the record the sweep wrote when it added the key."""
        path = self.config_path(key)
        try:
            record = json.loads(read_text(path))
        except FileNotFoundError:
            plain = Candidate.from_plain_key(key)  # e.g. `best-s3` added in the UI: the key is the whole config
            if plain is not None:
                return plain
            raise CandidateConfigError(
                f"{path}: expected the config record of candidate {key!r}, found no file; add candidates with "
                "`mnist-pipeline sweep`, which writes it (in the UI, only keys such as best-s3 need none)"
            ) from None
        except (ValueError, UnicodeDecodeError) as error:
            raise CandidateConfigError(f"{path}: expected the config record of candidate {key!r} as JSON, found invalid JSON ({error})") from error
        try:
            candidate = Candidate.from_record(record)
        except (SweepSpecError, KeyError, TypeError) as error:
            raise CandidateConfigError(f"{path}: expected the config record of candidate {key!r}, found {error}") from error
        if candidate.key != key:
            raise CandidateConfigError(
                f"{path}: expected the config record of candidate {key!r}, found the config of {candidate.key!r}: "
                "the record does not match its partition key"
            )
        return candidate

    def record_path(self, asset_key: dg.AssetKey, key: str) -> StoragePath:
        return self.directory().joinpath(*asset_key.path) / f"{key}.json"


class CandidateRecordIOManager(dg.ConfigurableIOManager):
    """A partitioned asset's value (a JSON object) as one verified file per partition.

    Read by a partitioned asset: that partition's record. Read by an unpartitioned asset
    (the leaderboard, which depends on every partition): {key: record} for each partition
    that has a record; the others are not evaluated yet, and the reader says which.
    """

    experiment_store: ExperimentStore

    def handle_output(self, context: dg.OutputContext, obj: dict[str, Any]) -> None:
        path = self.experiment_store.record_path(context.asset_key, context.partition_key)
        atomic_write_json(path, obj)
        sha256 = file_sha256(path)
        write_record(path, sha256, file=path.name, written_at=time.time())
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path)), "sha256": sha256})

    def read(self, asset_key: dg.AssetKey, key: str) -> dict[str, Any]:
        path = self.experiment_store.record_path(asset_key, key)
        what = f"the record of asset '{asset_key.to_user_string()}' for candidate {key!r}"
        expected = recorded_sha256(path)
        if expected is None:
            raise IntegrityError(
                f"{path}: expected {what} with its SHA-256 recorded beside it, found no record; "
                f"materialize partition {key!r} of '{asset_key.to_user_string()}' again"
            )
        verify_file(path, expected, what=what)
        return json.loads(read_text(path))

    def exists(self, asset_key: dg.AssetKey, key: str) -> bool:
        return self.experiment_store.record_path(asset_key, key).is_file()

    def load_input(self, context: dg.InputContext) -> Any:
        asset_key = context.upstream_output.asset_key if context.upstream_output else context.asset_key
        if context.has_partition_key:
            return self.read(asset_key, context.partition_key)
        return {key: self.read(asset_key, key) for key in context.asset_partition_keys if self.exists(asset_key, key)}
