"""What `mnist-pipeline models prune` removes, and what it never removes: the retention rules, decided here once.

Three things grow with every run and nothing else ever removes them:

  model versions      <registry>/<version>/
      Kept: the `keep` most recently registered (a re-registration by a rerun
      counts as recent), and whatever their age: the served version and the one
      served before it (`version` and `previous_version` of the production
      pointer, so a rollback target always survives), the version the stored
      `trained_model` names (trained_model.json: the pipeline's current model,
      which the steps after training read from the registry) and the version of
      the stored `evaluation_metrics`, and the version of each sweep
      candidate's stored record (experiments/candidate_model/<key>.json: the
      leaderboard lists it, and the champion is built from them) and of the
      stored champion (champion_model.json). A directory
      without a manifest (a registration killed part way) is removed. If the
      pointer cannot be read, nothing is removed.
  published plot sets <storage>/<name>.versions/<hash>/
      Kept: the set the `<name>` link points at, and any set written in the
      last hour (a publish switches the link just after writing its set). With
      no link, nothing is removed. Staging directories of a publish that died
      are removed after an hour.
  training checkpoints <checkpoints>/<training key>/
      Never one whose lock is held (a training in progress, or one waiting for
      it). A directory whose training finished (only its lock left) is removed;
      one holding an unfinished checkpoint is kept for 14 days, two periods of
      the weekly schedule, so a killed run can still be resumed by the next one.

Pruning holds the registry's lock, so no registration or repair runs meanwhile.
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnist_pipeline.registry.promotion import PRODUCTION_ASSET, read_pointer
from mnist_pipeline.storage.locks import LOCK_FILE, lock_unless_held
from mnist_pipeline.registry.store import MANIFEST_FILE, ModelRegistry
from mnist_pipeline.storage.checkpoints import CHECKPOINT_STATE_FILE
from mnist_pipeline.storage.integrity import RECORD_SUFFIX
from mnist_pipeline.storage.location import is_remote, read_text

# A tutorial-preset version is about 2.8 MB (model and optimizer state), so keeping five costs little; the
# rollback target is kept anyway, and five covers a month of the weekly schedule or a few experiments to compare.
DEFAULT_KEEP_VERSIONS = 5
UNFINISHED_CHECKPOINT_DAYS = 14
IN_FLIGHT_SECONDS = 3600
EVALUATION_ASSET = "evaluation_metrics"
TRAINED_MODEL_ASSET = "trained_model"
CHAMPION_ASSET = "champion_model"


class PruneUnsupportedError(ValueError):
    """Pruning was asked of a location it cannot prune safely (an object store)."""


@dataclass(frozen=True)
class StorageLocations:
    """Where the things that prune looks at live (each configurable separately through the resources)."""

    registry: ModelRegistry
    production_pointer: Path
    evaluation_metrics: Path
    published_dir: Path
    checkpoints_dir: Path
    trained_model_record: Path | None = None  # trained_model.json, naming the current model's version
    champion_record: Path | None = None  # champion_model.json, naming the sweep champion's version
    candidate_records: Path | None = None  # the directory of candidate_model's records, one <key>.json per candidate



@dataclass(frozen=True)
class Entry:
    path: Path
    what: str
    reason: str
    bytes: int


@dataclass
class PrunePlan:
    removed: list[Entry] = field(default_factory=list)  # removed, or on a dry run would be
    kept: list[Entry] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return sum(entry.bytes for entry in self.removed)


def directory_bytes(path: Path) -> int:
    return sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def format_bytes(count: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


def prune(locations: StorageLocations, *, keep: int = DEFAULT_KEEP_VERSIONS, dry_run: bool, now: float | None = None) -> PrunePlan:
    """Apply the rules above; on a dry run, only say what would be removed."""
    if keep < 1:
        raise ValueError(f"keep: expected at least 1 (the newest version may be in use by a run), found {keep}")
    remote = [str(where) for where in (locations.registry.root, locations.published_dir, locations.checkpoints_dir) if is_remote(where)]
    if remote:
        # Its rules rely on locks and on listing what a publish or a training is writing, which an object store lacks.
        raise PruneUnsupportedError(
            f"{remote[0]}: expected a local storage directory, found an object-store location: `models prune` "
            "does not prune an object store yet; use the bucket's lifecycle rules or delete old versions by hand"
        )
    now = time.time() if now is None else now
    plan = PrunePlan()
    registry = locations.registry
    with registry.writing() if registry.root.is_dir() else nullcontext():
        _model_versions(locations, keep, plan, dry_run)
    _published_sets(locations.published_dir, now, plan, dry_run)
    _checkpoints(locations.checkpoints_dir, now, plan, dry_run)
    return plan


def _remove(path: Path, what: str, reason: str, plan: PrunePlan, dry_run: bool) -> None:
    plan.removed.append(Entry(path, what, reason, directory_bytes(path)))
    if not dry_run:
        shutil.rmtree(path)


def _keep(path: Path, what: str, reason: str, plan: PrunePlan) -> None:
    plan.kept.append(Entry(path, what, reason, directory_bytes(path)))


def _protected_versions(locations: StorageLocations) -> dict[str, str]:
    """Versions kept whatever their age, with why. An unreadable production pointer raises (nothing is removed)."""
    protected: dict[str, str] = {}
    named_by = (
        (locations.evaluation_metrics, "model_version", "the pipeline's current model"),
        (locations.trained_model_record, "version", "the pipeline's current model"),
        (locations.champion_record, "model_version", "the sweep's champion"),
    )
    for path, field_name, what in named_by:
        if path is None:
            continue
        try:
            stored = json.loads(read_text(path))
            if isinstance(stored, dict) and isinstance(stored.get(field_name), str):
                protected[stored[field_name]] = f"{what} ({path.name})"
        except (OSError, ValueError):
            pass  # not stored (or damaged, rebuilt by the next run): the newest versions are kept anyway
    for key, version in _candidate_versions(locations.candidate_records):
        protected.setdefault(version, f"sweep candidate {key} (its record {key}.json)")
    served = read_pointer(locations.production_pointer)
    if served is not None:
        if served.get("previous_version"):
            protected[served["previous_version"]] = f"served before the current one (previous_version in {locations.production_pointer.name})"
        protected[served["version"]] = f"served ({locations.production_pointer.name})"
    return protected


def _candidate_versions(directory: Path | None) -> list[tuple[str, str]]:
    """(candidate key, model version) of each readable candidate record; a damaged one protects nothing (retrained next sweep)."""
    if directory is None or not directory.is_dir():
        return []
    found = []
    for record in sorted(directory.glob("*.json")):
        if record.name.endswith(RECORD_SUFFIX):
            continue
        try:
            version = json.loads(read_text(record)).get("model_version")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(version, str):
            found.append((record.stem, version))
    return found


def _model_versions(locations: StorageLocations, keep: int, plan: PrunePlan, dry_run: bool) -> None:
    registry = locations.registry
    if not registry.root.is_dir():
        return
    protected = _protected_versions(locations)
    recency = {}
    for directory in sorted(d for d in registry.root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        if not (directory / MANIFEST_FILE).is_file():
            _remove(directory, f"model version {directory.name}", "incomplete registration (no manifest)", plan, dry_run)
            continue
        try:
            manifest = json.loads(read_text(directory / MANIFEST_FILE))
            recency[directory.name] = float(manifest.get("last_registered_at", manifest["registered_at"]))
        except (ValueError, KeyError, TypeError, AttributeError):  # malformed: as recent as its last write
            recency[directory.name] = (directory / MANIFEST_FILE).stat().st_mtime
    newest = sorted(recency, key=recency.__getitem__, reverse=True)
    for rank, version in enumerate(newest):
        what = f"model version {version} (last registered {_utc(recency[version])})"
        if version in protected:
            _keep(registry.version_dir(version), what, protected[version], plan)
        elif rank < keep:
            _keep(registry.version_dir(version), what, f"one of the {keep} most recently registered", plan)
        else:
            _remove(registry.version_dir(version), what, f"older than the {keep} most recently registered", plan, dry_run)


def _published_sets(published_dir: Path, now: float, plan: PrunePlan, dry_run: bool) -> None:
    """Sets published by storage/atomic.py's atomic_publish_directory: <name> links to <name>.versions/<hash>."""
    if not published_dir.is_dir():
        return
    for versions in sorted(published_dir.glob("*.versions")):
        link = versions.with_name(versions.name[: -len(".versions")])
        if not versions.is_dir() or not link.is_symlink():
            continue  # never published (or not by a link): nothing is known to be superseded
        current = link.resolve()
        for entry in sorted(versions.iterdir()):
            what = f"plot set {versions.name}/{entry.name}"
            if not entry.is_dir():
                continue
            if entry.resolve() == current:
                _keep(entry, what, f"published ({link.name} links to it)", plan)
            elif now - entry.stat().st_mtime < IN_FLIGHT_SECONDS:
                _keep(entry, what, "written in the last hour (a publish may be about to link it)", plan)
            elif entry.name.startswith(".staging-"):
                _remove(entry, what, "staging directory of a publish that did not finish", plan, dry_run)
            else:
                _remove(entry, what, f"superseded ({link.name} links to {current.name})", plan, dry_run)


def _checkpoints(checkpoints_dir: Path, now: float, plan: PrunePlan, dry_run: bool) -> None:
    if not checkpoints_dir.is_dir():
        return
    for directory in sorted(d for d in checkpoints_dir.iterdir() if d.is_dir()):
        what = f"training checkpoint {directory.name}"
        # Held while deciding and removing, so a training of the same key waits for us (or we skip it).
        with lock_unless_held(directory / LOCK_FILE) as free:
            if not free:
                _keep(directory, what, "a training holds its lock (in progress)", plan)
                continue
            state = directory / CHECKPOINT_STATE_FILE
            if not state.is_file():
                _remove(directory, what, "training finished (only its lock is left)", plan, dry_run)
            elif now - state.stat().st_mtime < UNFINISHED_CHECKPOINT_DAYS * 86400:
                _keep(directory, what, f"unfinished training, last saved {_utc(state.stat().st_mtime)}: a rerun resumes it", plan)
            else:
                _remove(directory, what, f"unfinished training abandoned {UNFINISHED_CHECKPOINT_DAYS}+ days ago", plan, dry_run)
