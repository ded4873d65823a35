"""`models prune`: each retention rule on real files, and that a dry run deletes nothing."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from mnist_pipeline.cli import main as cli
from mnist_pipeline.ml.model.training import exclusive
from mnist_pipeline.registry.promotion import ProductionPointerError
from mnist_pipeline.storage.atomic import atomic_publish_directory
from mnist_pipeline.registry.store import ModelRegistry
from mnist_pipeline.registry.retention import IN_FLIGHT_SECONDS, UNFINISHED_CHECKPOINT_DAYS, StorageLocations, prune
from mnist_pipeline_tests.registry_support import run_manifest, tiny_model

VERSIONS = [f"v{i}" for i in range(1, 9)]  # registered in this order: v1 oldest


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def registry_bytes(files: dict[str, bytes], versions: set[str]) -> int:
    return sum(len(content) for name, content in files.items() if Path(name).parts[:1] == ("model_registry",) and Path(name).parts[1] in versions)


def serve(storage: Path, version: str, previous: str | None) -> None:
    (storage / "production_model.json").write_text(json.dumps({"version": version, "previous_version": previous}))


@pytest.fixture
def storage(isolated_home) -> Path:
    """The storage the command line uses: eight registered versions, v1 registered first."""
    storage = isolated_home / "storage"
    registry = ModelRegistry(storage / "model_registry")
    model = tiny_model()
    for version in VERSIONS:
        registry.register(version, model, run_manifest(f"run-{version}"))
    return storage


def locations(storage: Path) -> StorageLocations:
    return StorageLocations(
        registry=ModelRegistry(storage / "model_registry"),
        production_pointer=storage / "production_model.json",
        evaluation_metrics=storage / "evaluation_metrics.json",
        published_dir=storage,
        checkpoints_dir=storage / "training_checkpoints",
        trained_model_record=storage / "trained_model.json",
        champion_record=storage / "champion_model.json",
        candidate_records=storage / "experiments" / "candidate_model",
    )


def registered(storage: Path) -> set[str]:
    return {d.name for d in (storage / "model_registry").iterdir() if d.is_dir()}


def test_keeps_the_newest_the_served_and_the_rolled_back_from_versions(storage):
    # v5 was served, then rolled back to v1: v1 is served, v5 is the version it rolled back from.
    serve(storage, "v1", previous="v5")
    plan = prune(locations(storage), keep=2, dry_run=False)
    assert registered(storage) == {"v1", "v5", "v7", "v8"}
    assert {entry.path.name for entry in plan.removed} == {"v2", "v3", "v4", "v6"}
    reasons = {entry.path.name: entry.reason for entry in plan.kept}
    assert reasons["v1"] == "served (production_model.json)"
    assert reasons["v5"] == "served before the current one (previous_version in production_model.json)"
    assert reasons["v8"] == reasons["v7"] == "one of the 2 most recently registered"
    ModelRegistry(storage / "model_registry").verify("v1")  # still whole


def test_a_rerun_that_registers_an_old_version_again_makes_it_recent(storage):
    ModelRegistry(storage / "model_registry").register("v2", tiny_model(), run_manifest("run-again"))
    prune(locations(storage), keep=2, dry_run=False)
    assert registered(storage) == {"v2", "v8"}


def test_keeps_the_version_the_stored_trained_model_names(storage):
    """The steps after training read the current model from the registry: its version is never pruned."""
    (storage / "trained_model.json").write_text(json.dumps({"version": "v2"}))
    plan = prune(locations(storage), keep=1, dry_run=False)
    assert registered(storage) == {"v2", "v8"}
    assert {entry.path.name: entry.reason for entry in plan.kept}["v2"] == "the pipeline's current model (trained_model.json)"


def test_keeps_the_version_of_the_stored_evaluation(storage):
    (storage / "evaluation_metrics.json").write_text(json.dumps({"model_version": "v3", "test_accuracy": 0.5}))
    prune(locations(storage), keep=1, dry_run=False)
    assert registered(storage) == {"v3", "v8"}


def test_keeps_every_sweep_candidates_version(storage):
    """The leaderboard lists the candidates' versions (and the champion is built from them): never pruned."""
    records = storage / "experiments" / "candidate_model"
    records.mkdir(parents=True)
    (records / "best-s0.json").write_text(json.dumps({"candidate": "best-s0", "model_version": "v2"}))
    (records / "best-s1.json").write_text(json.dumps({"candidate": "best-s1", "model_version": "v4"}))
    (records / "best-s1.json.sha256.json").write_text(json.dumps({"sha256": "0" * 64, "model_version": "v5"}))  # not a record
    (records / "fast-s0.json").write_text("{damaged")  # protects nothing; the next sweep retrains it
    plan = prune(locations(storage), keep=1, dry_run=False)
    assert registered(storage) == {"v2", "v4", "v8"}
    assert {entry.path.name: entry.reason for entry in plan.kept}["v4"] == "sweep candidate best-s1 (its record best-s1.json)"


def test_keeps_the_sweep_champion(storage):
    (storage / "champion_model.json").write_text(json.dumps({"model_version": "v3", "size": 3}))
    plan = prune(locations(storage), keep=1, dry_run=False)
    assert registered(storage) == {"v3", "v8"}
    assert {entry.path.name: entry.reason for entry in plan.kept}["v3"] == "the sweep's champion (champion_model.json)"


def test_dry_run_deletes_nothing_and_counts_the_bytes(storage):
    serve(storage, "v1", previous="v2")
    before = snapshot(storage)
    dry = prune(locations(storage), keep=3, dry_run=True)
    assert snapshot(storage) == before
    assert {entry.path.name for entry in dry.removed} == {"v3", "v4", "v5"}
    expected_bytes = registry_bytes(before, {"v3", "v4", "v5"})
    assert dry.bytes_freed == expected_bytes > 0
    real = prune(locations(storage), keep=3, dry_run=False)
    assert [(e.path, e.bytes) for e in real.removed] == [(e.path, e.bytes) for e in dry.removed]
    assert registered(storage) == {"v1", "v2", "v6", "v7", "v8"}


def test_an_unreadable_production_pointer_removes_nothing(storage):
    (storage / "production_model.json").write_text('{"version": ')
    before = snapshot(storage)
    with pytest.raises(ProductionPointerError, match=rf"^{storage / 'production_model.json'}: expected the production model pointer as JSON"):
        prune(locations(storage), keep=1, dry_run=False)
    assert snapshot(storage) == before


def test_an_incomplete_registration_is_removed(storage):
    orphan = storage / "model_registry" / "v9"
    orphan.mkdir()
    (orphan / "model.keras").write_bytes(b"half")
    prune(locations(storage), keep=8, dry_run=False)
    assert registered(storage) == set(VERSIONS)


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_only_the_published_plot_set_and_fresh_ones_survive(storage):
    link = storage / "digit_plots"
    old = atomic_publish_directory(link, {"a.png": b"first"})
    older = atomic_publish_directory(link, {"a.png": b"second"})
    published = atomic_publish_directory(link, {"a.png": b"third"})
    (link.with_name("digit_plots.versions") / "fresh").mkdir()  # just written: a publish is about to link it
    staging = link.with_name("digit_plots.versions") / ".staging-abc"
    staging.mkdir()
    for path in (old, older, staging):
        age(path, IN_FLIGHT_SECONDS + 60)
    plan = prune(locations(storage), keep=8, dry_run=False)
    survivors = {p.name for p in link.with_name("digit_plots.versions").iterdir()}
    assert survivors == {published.name, "fresh"}
    assert (link / "a.png").read_bytes() == b"third"
    removed = {entry.path.name: entry.reason for entry in plan.removed}
    assert removed[old.name] == f"superseded (digit_plots links to {published.name})"
    assert removed[".staging-abc"] == "staging directory of a publish that did not finish"


def test_checkpoints_of_finished_and_abandoned_training_go_unless_locked(storage):
    root = storage / "training_checkpoints"
    finished, resumable, abandoned, running = (root / name for name in ("finished", "resumable", "abandoned", "running"))
    for directory in (finished, resumable, abandoned, running):
        directory.mkdir(parents=True)
        (directory / ".lock").touch()
    for directory in (resumable, abandoned, running):
        (directory / "epoch-0001.keras").write_bytes(b"model")
        (directory / "state.json").write_text(json.dumps({"epochs_done": 1}))
    age(abandoned / "state.json", (UNFINISHED_CHECKPOINT_DAYS + 1) * 86400)
    age(running / "state.json", (UNFINISHED_CHECKPOINT_DAYS + 1) * 86400)
    with exclusive(running, log=print):  # the lock training holds while it runs
        plan = prune(locations(storage), keep=8, dry_run=False)
    assert {d.name for d in root.iterdir()} == {"resumable", "running"}
    reasons = {entry.path.name: entry.reason for entry in plan.kept + plan.removed}
    assert reasons["running"] == "a training holds its lock (in progress)"
    assert reasons["finished"] == "training finished (only its lock is left)"
    assert reasons["abandoned"] == f"unfinished training abandoned {UNFINISHED_CHECKPOINT_DAYS}+ days ago"
    assert reasons["resumable"].startswith("unfinished training, last saved ")


# --- the command ------------------------------------------------------------------------------

def test_models_prune_dry_run_then_prune(storage, capsys):
    serve(storage, "v1", previous="v2")
    before = snapshot(storage)
    assert cli.main(["models", "prune", "--keep", "3", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert snapshot(storage) == before
    served = [line for line in out if line.startswith("Keeping       model version v1 (last registered ")]
    assert len(served) == 1 and served[0].endswith("): served (production_model.json)")
    would = [line for line in out if line.startswith("Would remove  model version ")]
    assert [line.split()[4] for line in would] == ["v5", "v4", "v3"]
    freed = registry_bytes(before, {"v3", "v4", "v5"})
    assert out[-1].startswith("Dry run: would free ") and out[-1].endswith(f"({freed:,} bytes) in 3 directories; nothing was removed.")

    assert cli.main(["models", "prune", "--keep", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("Freed ") and out[-1].endswith(f"({freed:,} bytes) in 3 directories.")
    assert registered(storage) == {"v1", "v2", "v6", "v7", "v8"}


def test_models_prune_refuses_keep_zero(storage, capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["models", "prune", "--keep", "0"])
    assert exit.value.code == 2
    assert "expected at least 1 (the newest version may be in use by a run), found 0" in capsys.readouterr().err
    assert registered(storage) == set(VERSIONS)


def test_models_prune_with_a_damaged_pointer_is_one_line(storage, capsys):
    (storage / "production_model.json").write_text("[]")
    assert cli.main(["models", "prune"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{storage / 'production_model.json'}: expected the production model pointer with a 'version' string, found []"]
    assert registered(storage) == set(VERSIONS)


def test_the_command_looks_for_candidate_records_where_the_sweep_writes_them(tmp_path):
    from mnist_pipeline.defs.resources import storage_locations, storage_resources

    resources = storage_resources(str(tmp_path))
    written = resources["experiment_store"].record_path(dg.AssetKey("candidate_model"), "best-s0")
    assert storage_locations(resources).candidate_records == written.parent == tmp_path / "experiments" / "candidate_model"
    assert storage_locations(resources).champion_record == tmp_path / "champion_model.json"
