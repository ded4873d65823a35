"""The model registry: every stored file verified before use, repaired by re-registration, and every
refusal one line naming the version and the file, in the registry and through `mnist-pipeline models`."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from mnist_pipeline.cli import main as cli
from mnist_pipeline.defs.evaluation.gates import QualityGates
from mnist_pipeline.registry.evaluations import EvaluationRecords
from mnist_pipeline.registry.promotion import PromotionRefused, check_promotable, version_evaluation
from mnist_pipeline.storage.integrity import file_sha256
from mnist_pipeline.registry.store import (
    DamagedFileError,
    MalformedRecordError,
    ModelRegistry,
    UnknownModelVersionError,
    UnloadableModelError,
)
from mnist_pipeline_tests.registry_support import run_manifest, tiny_model, truncate


def lambda_model() -> keras.Model:
    """A model Keras refuses to load in safe mode: its Lambda layer is arbitrary Python code."""
    return keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2), keras.layers.Dense(3)])


def manifest_of(registry: ModelRegistry, version: str) -> dict:
    return json.loads((registry.version_dir(version) / "manifest.json").read_text())


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry")


@pytest.fixture
def evaluations(tmp_path) -> EvaluationRecords:
    """evaluation_metrics' records per model version, beside (not inside) the registry."""
    return EvaluationRecords(tmp_path / "evaluations")


@pytest.fixture
def registered(registry, evaluations) -> tuple[ModelRegistry, keras.Model]:
    model = tiny_model()
    registry.register("v1", model, run_manifest(), {"loss": [0.5, 0.25]})
    evaluations.write("v1", {"test_accuracy": 0.99})
    return registry, model


def promotable(registry: ModelRegistry, version: str = "v1"):
    return check_promotable(registry, EvaluationRecords(registry.root.parent / "evaluations"), QualityGates(), version)


def assert_same_weights(a: keras.Model, b: keras.Model) -> None:
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


# --- hashes recorded and checked --------------------------------------------------------------

def test_the_hash_of_every_stored_file_is_recorded_when_written(registered):
    registry, _ = registered
    directory = registry.version_dir("v1")
    assert manifest_of(registry, "v1")["sha256"] == {
        "model.keras": file_sha256(directory / "model.keras"),
        "history.json": file_sha256(directory / "history.json"),
    }
    assert sorted(p.name for p in directory.iterdir()) == ["history.json", "manifest.json", "model.keras"], "nothing else writes here"


def test_the_history_is_its_own_json_read_without_keras(registered):
    registry, _ = registered
    assert json.loads((registry.version_dir("v1") / "history.json").read_text()) == {"loss": [0.5, 0.25]}
    assert "history" not in manifest_of(registry, "v1")
    assert registry.history("v1") == {"loss": [0.5, 0.25]}


def test_an_edited_history_is_refused_and_repaired_by_registering_again(registered):
    registry, model = registered
    path = registry.version_dir("v1") / "history.json"
    path.write_text(json.dumps({"loss": [0.1]}))
    with pytest.raises(DamagedFileError, match=rf"^{path}: expected the training history of model version v1 with SHA-256"):
        registry.history("v1")
    registry.register("v1", model, run_manifest("run-2"), {"loss": [0.5, 0.25]})
    assert registry.history("v1") == {"loss": [0.5, 0.25]}


def test_each_model_is_loaded_once_per_process_and_again_once_its_file_changes(registered):
    registry, model = registered
    first = registry.load("v1")
    assert registry.load("v1") is first, "the verified file, unchanged, is not loaded again"
    path = registry.version_dir("v1") / "model.keras"
    path.unlink()
    other = tiny_model(1)
    registry.register("v1", other, run_manifest("run-2"))  # rewritten with other content: a new hash
    assert registry.load("v1") is not first
    assert_same_weights(registry.load("v1"), other)


def test_a_version_evaluation_is_evaluation_metrics_own_record(registered, evaluations):
    registry, _ = registered
    assert evaluations.read("v1") == {"test_accuracy": 0.99}
    assert not (registry.version_dir("v1") / "evaluation.json").exists()
    assert evaluations.read("v2") is None


def test_a_truncated_model_is_refused_for_loading_exporting_and_promoting(registered, tmp_path):
    registry, _ = registered
    path = registry.version_dir("v1") / "model.keras"
    expected = file_sha256(path)
    truncate(path)
    found = file_sha256(path)
    message = (
        rf"^{path}: expected the model file of version v1 with SHA-256 {expected}, "
        rf"found SHA-256 {found} \(\d+ bytes\): the file is damaged; a run that trains this version again rewrites it$"
    )
    with pytest.raises(DamagedFileError, match=message):
        registry.load("v1")
    with pytest.raises(DamagedFileError, match=message):
        registry.export("v1", tmp_path / "out.keras")
    assert not (tmp_path / "out.keras").exists()
    with pytest.raises(DamagedFileError, match=message):
        promotable(registry)


def test_a_missing_model_file_is_refused(registered):
    registry, _ = registered
    path = registry.version_dir("v1") / "model.keras"
    path.unlink()
    with pytest.raises(DamagedFileError, match=rf"^{path}: expected the model file of version v1 with SHA-256 [0-9a-f]{{64}}, found no file"):
        promotable(registry)


def test_an_edited_evaluation_cannot_pass_the_gate(registered, evaluations):
    """The version's evaluation decides promotion: a valid JSON file with another accuracy is caught by its hash."""
    registry, _ = registered
    path = evaluations.write("v1", {"test_accuracy": 0.5})
    path.write_text(json.dumps({"test_accuracy": 0.995}))
    with pytest.raises(DamagedFileError, match=rf"^{path}: expected the evaluation of model version v1 with SHA-256"):
        promotable(registry)


def test_a_version_never_evaluated_is_refused_naming_where_its_evaluation_would_be(registry, evaluations):
    registry.register("v1", tiny_model(), run_manifest())
    with pytest.raises(PromotionRefused, match=rf"^model v1: expected a recorded evaluation in {evaluations.path('v1')}, found none"):
        promotable(registry)


def test_export_copies_the_verified_file(registered, tmp_path):
    registry, _ = registered
    out = registry.export("v1", tmp_path)
    assert out == tmp_path / "mnist-v1.keras"
    assert file_sha256(out) == manifest_of(registry, "v1")["sha256"]["model.keras"]


# --- re-registration repairs ------------------------------------------------------------------

@pytest.mark.parametrize("damage", [truncate, Path.unlink], ids=["truncated", "missing"])
def test_registering_the_same_version_again_repairs_its_model_file(registered, damage):
    registry, model = registered
    path = registry.version_dir("v1") / "model.keras"
    damage(path)
    registry.register("v1", model, run_manifest("run-2"))
    manifest = manifest_of(registry, "v1")
    assert manifest["sha256"]["model.keras"] == file_sha256(path), "the hash of what was written"
    assert manifest["runs"] == ["run-1", "run-2"]
    assert [repair["run_id"] for repair in manifest["repairs"]] == ["run-2"]
    assert str(path) in manifest["repairs"][0]["found"]
    assert_same_weights(registry.load("v1"), model)
    promotable(registry)


def test_registering_a_sound_version_again_only_records_the_run(registered):
    registry, model = registered
    path = registry.version_dir("v1") / "model.keras"
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    registry.register("v1", model, run_manifest("run-2"))
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    manifest = manifest_of(registry, "v1")
    assert manifest["runs"] == ["run-1", "run-2"] and "repairs" not in manifest
    assert manifest["last_registered_at"] > manifest["registered_at"]


def test_a_malformed_manifest_is_replaced_on_registration(registered):
    registry, model = registered
    (registry.version_dir("v1") / "manifest.json").write_text("{not json")
    registry.register("v1", model, run_manifest("run-2"))
    manifest = registry.verify("v1")
    assert manifest["runs"] == ["run-2"] and "invalid JSON" in manifest["repairs"][0]["found"]
    assert set(manifest["sha256"]) == {"model.keras"}


# --- manifests from before hashes were recorded -----------------------------------------------

def legacy(registry: ModelRegistry, version: str) -> None:
    """Rewrite the version as the registry wrote it before hashes were recorded: no hashes, the history in
    the manifest, the evaluation in the entry (evaluation.json), none in evaluation_metrics' records."""
    directory = registry.version_dir(version)
    manifest = json.loads((directory / "manifest.json").read_text())
    del manifest["sha256"], manifest["last_registered_at"]
    manifest["history"] = json.loads((directory / "history.json").read_text())
    (directory / "history.json").unlink()
    (directory / "manifest.json").write_text(json.dumps(manifest))
    (directory / "evaluation.json").write_text(json.dumps({"test_accuracy": 0.99}))
    for record in (registry.root.parent / "evaluations").glob(f"{version}.json*"):
        record.unlink()


def test_a_legacy_version_is_served_if_its_model_is_a_sound_zip(registered):
    registry, model = registered
    legacy(registry, "v1")
    assert_same_weights(registry.load("v1"), model)
    assert promotable(registry)[0]["test_accuracy"] == 0.99, "the evaluation an older registry kept in the entry"
    assert registry.history("v1") == {"loss": [0.5, 0.25]}, "the history an older registry kept in the manifest"


def test_a_legacy_version_with_a_truncated_model_is_refused_then_repaired(registered):
    registry, model = registered
    legacy(registry, "v1")
    path = registry.version_dir("v1") / "model.keras"
    truncate(path)
    with pytest.raises(DamagedFileError, match=rf"^{path}: expected the model file of version v1 \(a ZIP archive\), found \d+ bytes that are not one"):
        promotable(registry)
    registry.register("v1", model, run_manifest("run-2"))
    assert manifest_of(registry, "v1")["sha256"]["model.keras"] == file_sha256(path)
    assert_same_weights(registry.load("v1"), model)


def test_registering_a_sound_legacy_version_records_its_hashes_without_rewriting(registered):
    registry, model = registered
    legacy(registry, "v1")
    path = registry.version_dir("v1") / "model.keras"
    before = path.read_bytes()
    registry.register("v1", model, run_manifest("run-2"))
    assert path.read_bytes() == before
    assert version_evaluation(registry, EvaluationRecords(registry.root.parent / "evaluations"), "v1") == {"test_accuracy": 0.99}
    assert manifest_of(registry, "v1")["sha256"] == {
        "model.keras": file_sha256(path),
        "evaluation.json": file_sha256(registry.version_dir("v1") / "evaluation.json"),
    }


# --- clear errors -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "content, found",
    [
        ("{not json", r"found invalid JSON \(Expecting property name"),
        ("[1, 2]", "found a JSON list"),
        (json.dumps({"version": "v1", "run_id": "r"}), "with fields version, run_id, runs, registered_at, hyperparameters; missing runs, registered_at, hyperparameters"),
        (json.dumps({"version": "v1", "run_id": "r", "runs": [], "registered_at": "yesterday", "hyperparameters": {}}), "field 'registered_at' of model version v1's manifest to be int or float, found 'yesterday'"),
    ],
    ids=["invalid-json", "not-an-object", "missing-fields", "wrong-type"],
)
def test_a_malformed_manifest_names_the_version_and_file(registered, content, found):
    registry, _ = registered
    path = registry.version_dir("v1") / "manifest.json"
    path.write_text(content)
    with pytest.raises(MalformedRecordError, match=rf"^{path}: expected .*{found}"):
        registry.load("v1")
    with pytest.raises(MalformedRecordError, match=rf"^{path}: .*model version v1"):
        promotable(registry)


def test_a_model_keras_refuses_in_safe_mode_is_one_line(registry, evaluations):
    registry.register("v1", lambda_model(), run_manifest())
    evaluations.write("v1", {"test_accuracy": 0.99})
    path = registry.version_dir("v1") / "model.keras"
    with pytest.raises(UnloadableModelError) as refused:
        registry.load("v1")
    assert str(refused.value).startswith(f"{path}: expected model version v1 to load in Keras safe mode, found it refused (ValueError: ")
    assert "Lambda" in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(UnloadableModelError):
        promotable(registry)


def test_one_unreadable_version_does_not_hide_the_others(registered):
    registry, _ = registered
    registry.register("v2", tiny_model(1), run_manifest("run-2"))
    (registry.version_dir("v2") / "manifest.json").write_text("")
    entries = {entry["version"]: entry for entry in registry.list()}
    assert entries["v1"]["run_id"] == "run-1"
    assert entries["v2"]["problem"].startswith(f"{registry.version_dir('v2') / 'manifest.json'}: expected the manifest")
    with pytest.raises(UnknownModelVersionError, match=r"found none \(registered: v1, v2\)"):
        registry.load("v3")


# --- the same through `mnist-pipeline models ...` ---------------------------------------------

@pytest.fixture
def cli_registry(isolated_home, tmp_path, monkeypatch) -> ModelRegistry:
    """The registry the command line uses (under the test's pipeline home), with a Dagster home for promote."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    return ModelRegistry(isolated_home / "storage" / "model_registry")


def record_evaluation(registry: ModelRegistry, version: str, accuracy: float = 0.99) -> None:
    """As evaluation_metrics records a version's evaluation, where the command line reads it."""
    EvaluationRecords(registry.root.parent / "evaluation_metrics.by_model_version").write(version, {"test_accuracy": accuracy})


def models(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["models", *args])
    out, err = capsys.readouterr()
    return code, out, err


def break_manifest_json(registry, version):
    path = registry.version_dir(version) / "manifest.json"
    path.write_text('{"version": "v1", ')
    return path, "found invalid JSON"


def break_manifest_fields(registry, version):
    path = registry.version_dir(version) / "manifest.json"
    path.write_text(json.dumps({"version": version, "runs": []}))
    return path, "missing run_id, registered_at, hyperparameters"


def break_model_file(registry, version):
    path = registry.version_dir(version) / "model.keras"
    truncate(path)
    return path, "found SHA-256"


COMMANDS = {
    "show": lambda tmp_path: [],
    "load": lambda tmp_path: [],
    "export": lambda tmp_path: [str(tmp_path / "out.keras")],
    "promote": lambda tmp_path: [],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("breaks", [break_manifest_json, break_manifest_fields, break_model_file], ids=["invalid-json", "missing-fields", "damaged-model"])
def test_models_commands_end_with_one_line_naming_the_version_and_file(cli_registry, capsys, tmp_path, command, breaks):
    cli_registry.register("v1", tiny_model(), run_manifest())
    record_evaluation(cli_registry, "v1")
    path, found = breaks(cli_registry, "v1")
    code, out, err = models(capsys, command, "v1", *COMMANDS[command](tmp_path))
    assert code == 1
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"{path}: expected ") and "v1" in last and found in last, last
    assert not (tmp_path / "out.keras").exists()
    assert not (cli_registry.root.parent / "production_model.json").exists(), "nothing was promoted"


@pytest.mark.parametrize("command", list(COMMANDS))
def test_models_commands_on_an_unknown_version(cli_registry, capsys, tmp_path, command):
    cli_registry.register("v1", tiny_model(), run_manifest())
    code, out, err = models(capsys, command, "v9", *COMMANDS[command](tmp_path))
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith(f"{cli_registry.root / 'v9'}: expected a registered model version 'v9', found none (registered: v1)")


@pytest.mark.parametrize("command", ["load", "promote"])
def test_models_commands_on_a_model_refused_by_safe_mode(cli_registry, capsys, command):
    cli_registry.register("v1", lambda_model(), run_manifest())
    record_evaluation(cli_registry, "v1")
    code, out, err = models(capsys, command, "v1")
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(
        f"{cli_registry.version_dir('v1') / 'model.keras'}: expected model version v1 to load in Keras safe mode, found it refused (ValueError: Requested the deserialization of a `Lambda` layer"
    )
    assert not (cli_registry.root.parent / "production_model.json").exists()


def test_models_show_prints_the_manifest_then_the_damage(cli_registry, capsys):
    cli_registry.register("v1", tiny_model(), run_manifest())
    truncate(cli_registry.version_dir("v1") / "model.keras")
    code, out, err = models(capsys, "show", "v1")
    assert code == 1
    assert json.loads(out)["sha256"]["model.keras"] == manifest_of(cli_registry, "v1")["sha256"]["model.keras"]
    assert "the file is damaged" in err


def test_models_list_and_promote_work_on_sound_versions(cli_registry, capsys):
    cli_registry.register("v1", tiny_model(), run_manifest())
    record_evaluation(cli_registry, "v1")
    cli_registry.register("v2", tiny_model(1), run_manifest("run-2"))
    (cli_registry.version_dir("v2") / "manifest.json").write_text("")
    code, out, err = models(capsys, "list")
    assert code == 0 and "v1" in out and "0.9900" in out
    assert "v2" in out and "unreadable: " in out
    code, out, err = models(capsys, "promote", "v1", "--reason", "v2 misbehaves")
    assert code == 0, err
    assert out.startswith("Serving model v1 (test accuracy 0.9900); previously None.")
    served = json.loads((cli_registry.root.parent / "production_model.json").read_text())
    assert (served["version"], served["reason"]) == ("v1", "v2 misbehaves")


def test_a_promotion_is_a_run_of_production_model_configured_with_the_version(cli_registry, capsys):
    import dagster as dg

    cli_registry.register("v1", tiny_model(), run_manifest())
    record_evaluation(cli_registry, "v1")
    assert models(capsys, "promote", "v1", "--reason", "rollback drill")[0] == 0
    served = json.loads((cli_registry.root.parent / "production_model.json").read_text())
    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(served["run_id"])
        event = instance.get_latest_materialization_event(dg.AssetKey("production_model"))
    assert run is not None and run.job_name == "mnist_promote_model" and run.is_success
    assert run.run_config["ops"]["production_model"]["config"] == {"version": "v1", "reason": "rollback drill"}
    assert event.run_id == served["run_id"] and event.asset_materialization.metadata["version"].value == "v1"


def test_promoting_the_served_version_again_keeps_its_rollback_target(cli_registry, capsys):
    for version in ("v1", "v2"):
        cli_registry.register(version, tiny_model(), run_manifest(f"run-{version}"))
        record_evaluation(cli_registry, version)
    pointer = cli_registry.root.parent / "production_model.json"
    for version in ("v1", "v2", "v2"):
        assert models(capsys, "promote", version)[0] == 0
    served = json.loads(pointer.read_text())
    assert (served["version"], served["previous_version"]) == ("v2", "v1")


def test_models_production_reports_a_served_model_damaged_since(cli_registry, capsys):
    cli_registry.register("v1", tiny_model(), run_manifest())
    record_evaluation(cli_registry, "v1")
    assert models(capsys, "promote", "v1")[0] == 0
    code, out, err = models(capsys, "production")
    assert code == 0 and json.loads(out)["version"] == "v1"
    truncate(cli_registry.version_dir("v1") / "model.keras")
    code, out, err = models(capsys, "production")
    assert code == 1 and json.loads(out)["version"] == "v1"
    assert err.strip().splitlines()[-1].startswith(f"{cli_registry.version_dir('v1') / 'model.keras'}: expected the model file of version v1")


def test_production_model_without_config_serves_what_trained_model_last_produced_or_says_there_is_none(cli_registry):
    """Without a version in its config, production_model serves the version of trained_model's last materialization."""
    import dagster as dg

    from mnist_pipeline.definitions import defs
    from mnist_pipeline.defs.jobs import promote_model_job

    job = defs().resolve_job_def(promote_model_job.name)
    with dg.DagsterInstance.ephemeral() as instance:
        refused = job.execute_in_process(instance=instance, raise_on_error=False)
        failure = next(event for event in refused.all_events if event.is_step_failure).step_failure_data.error
        while failure.cause is not None:
            failure = failure.cause
        assert failure.message.strip().endswith(
            "production_model: expected a materialization of trained_model to serve (MNIST_SERVED_MODEL chooses it), found none; "
            "run the pipeline first, or name a registered version in the config (version)"
        )
        cli_registry.register("v1", tiny_model(), run_manifest())
        record_evaluation(cli_registry, "v1")
        instance.report_runless_asset_event(dg.AssetMaterialization("trained_model", metadata={"model_version": "v1"}))
        served = job.execute_in_process(instance=instance)
    assert served.output_for_node("production_model")["version"] == "v1"
    assert served.output_for_node("production_model")["reason"] == "passed every gate"
