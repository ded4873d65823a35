"""The code location as a whole: loading, start-up cost, the full graph on small data, run config."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from mnist_pipeline.defs.data.assets import raw_mnist, scaled_mnist
from mnist_pipeline.definitions import all_assets, defs
from mnist_pipeline.defs.executor import pipeline_executor
from mnist_pipeline.defs.jobs import full_pipeline_job
from mnist_pipeline.defs.model.config import hyperparameters_run_config
from mnist_pipeline.defs.resources import resources_for_env
from mnist_pipeline_tests.pipeline_support import ALL_KEYS, ASSET_KEYS, FAST_TRAINING, LOCATION_KEYS, resources

REPO = Path(__file__).resolve().parents[1]


def test_definitions_load():
    dg.Definitions.validate_loadable(defs())
    keys = {key.to_user_string() for key in defs().resolve_asset_graph().get_all_asset_keys()}
    assert keys == LOCATION_KEYS


def test_lineage_follows_the_product_chain():
    graph = defs().resolve_asset_graph()
    for upstream, downstream in zip(ASSET_KEYS, ASSET_KEYS[1:]):
        parents = {key.to_user_string() for key in graph.get(dg.AssetKey(downstream)).parent_keys}
        assert upstream in parents, f"{upstream} -> {downstream}"


def test_assets_are_grouped_by_domain():
    graph = defs().resolve_asset_graph()
    groups = {key: graph.get(dg.AssetKey(key)).group_name for key in ASSET_KEYS}
    assert groups == {
        "raw_mnist": "data", "scaled_mnist": "data", "compiled_model": "model", "trained_model": "model",
        "evaluation_metrics": "evaluation", "predictions_table": "evaluation", "digit_plots": "reports",
    }
    assert graph.get(dg.AssetKey("production_model")).group_name == "serving"


def test_every_asset_and_source_has_a_group_a_description_and_an_owner():
    """What the UI's catalog and asset pages show for each; the observable source included."""
    graph = defs().resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    assert {key.to_user_string() for key in keys} == LOCATION_KEYS  # sources are in the graph too
    for key in keys:
        node = graph.get(key)
        name = key.to_user_string()
        assert node.group_name in {"data", "model", "evaluation", "reports", "serving", "experiments"}, f"{name}: group {node.group_name!r}"
        assert node.description and len(node.description) > 20, f"{name}: description {node.description!r}"
        assert node.owners == ["team:ml-platform"], f"{name}: owners {node.owners}"


def test_full_job_runs_on_the_pipeline_executor():
    job = defs().resolve_job_def(full_pipeline_job.name)
    assert job.executor_def is pipeline_executor  # in-process unless MNIST_PIPELINE_ENV=cluster (test_executor.py)


def test_importing_definitions_does_not_import_tensorflow_keras_matplotlib_or_pandas():
    code = (
        "import sys, mnist_pipeline.definitions\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras', 'matplotlib', 'pandas') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == ""


def test_unknown_environment_is_rejected():
    with pytest.raises(ValueError, match=r"MNIST_PIPELINE_ENV: expected one of \['cluster', 'local', 'offline'\], found 'cloud'"):
        resources_for_env("cloud")


@pytest.mark.slow
def test_materialize_the_whole_graph(idx_dir, storage_dir):
    result = dg.materialize(all_assets, resources=resources(idx_dir, storage_dir), run_config=FAST_TRAINING)
    assert result.success
    materialized = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
    assert materialized == ALL_KEYS - {"mnist_files"}
    for key in ASSET_KEYS:
        metadata = result.asset_materializations_for_node(key)[0].metadata
        assert Path(metadata["path"].value).exists(), key
    evaluation = result.asset_materializations_for_node("evaluation_metrics")[0].metadata
    assert 0.0 <= evaluation["test_accuracy"].value <= 1.0
    assert isinstance(evaluation["test_loss"].value, float)
    plots = result.asset_materializations_for_node("digit_plots")[0].metadata
    assert plots["plot_confusion_matrix"].value.startswith("![confusion_matrix](data:image/png;base64,")
    trained = result.asset_materializations_for_node("trained_model")[0].metadata
    assert len(trained["history"].value["loss"]) == 2
    logs = [e.message for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION" or not e.is_step_event]
    assert logs  # the run produced events


@pytest.mark.slow
def test_epoch_progress_is_logged(idx_dir, storage_dir):
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(all_assets, resources=resources(idx_dir, storage_dir), run_config=FAST_TRAINING, instance=instance)
    messages = [record.user_message for record in instance.all_logs(result.run_id)]
    assert any(message.startswith("epoch 1/2:") for message in messages)
    assert any(message.startswith("epoch 2/2:") for message in messages)


@pytest.mark.parametrize(
    "config, field, found",
    [
        ({"epochs": 0}, "preset.tutorial.epochs", "input_value=0"),
        ({"batch_size": 0}, "preset.tutorial.batch_size", "input_value=0"),
        ({"preset": "fast", "epochs": 0}, "preset.fast.epochs", "input_value=0"),
        ({"validation_fraction": 1.5}, "validation_fraction", "input_value=1.5"),
        ({"learning_rate": -1.0}, "preset.tutorial.learning_rate", "input_value=-1.0"),
        ({"learning_rate": math.nan}, "preset.tutorial.learning_rate", "Input should be a finite number [type=finite_number, input_value=nan"),
        ({"learning_rate": math.inf}, "preset.tutorial.learning_rate", "Input should be a finite number [type=finite_number, input_value=inf"),
        ({"validation_fraction": math.nan}, "validation_fraction", "Input should be a finite number [type=finite_number, input_value=nan"),
        ({"validation_fraction": -math.inf}, "validation_fraction", "Input should be a finite number [type=finite_number, input_value=-inf"),
    ],
)
def test_invalid_hyperparameters_fail_before_any_model_work_naming_the_field(idx_dir, storage_dir, config, field, found):
    result = dg.materialize(
        all_assets,
        resources=resources(idx_dir, storage_dir),
        run_config=hyperparameters_run_config(**config),
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "hyperparameters"
    message = str(failure.step_failure_data.error)
    assert f"\n{field}\n" in message and found in message, message
    if "finite" in found:  # not "should be less than or equal to 10", which nan used to get
        assert "less than" not in message and "greater than" not in message, message
    for artifact in ("hyperparameters.json", "compiled_model.keras", "trained_model.json", "model_registry", "evaluation_metrics.json"):
        assert not (storage_dir / artifact).exists(), f"{artifact} was written"


def test_unknown_optimizer_is_rejected_at_launch(idx_dir, storage_dir):
    with pytest.raises(dg.DagsterInvalidConfigError, match=r"optimizer"):
        dg.materialize(
            all_assets,
            resources=resources(idx_dir, storage_dir),
            run_config=hyperparameters_run_config(optimizer="rmsprop"),
        )
    assert not storage_dir.exists(), "nothing ran"


def test_failed_run_keeps_earlier_artifacts(idx_dir, storage_dir):
    assets = [raw_mnist, scaled_mnist]
    assert dg.materialize(assets, resources=resources(idx_dir, storage_dir)).success
    before = {p.name: p.read_bytes() for p in storage_dir.iterdir()}
    (idx_dir / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05ab")  # truncated
    result = dg.materialize(assets, resources=resources(idx_dir, storage_dir), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "t10k-labels-idx1-ubyte: truncated" in str(failure.step_failure_data.error)
    assert {p.name: p.read_bytes() for p in storage_dir.iterdir()} == before


@pytest.mark.slow
def test_command_line_run_reports_accuracy_and_paths(idx_dir, tmp_path):
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "MNIST_PIPELINE_HOME": str(tmp_path / "home"),
        "MNIST_DATA_DIR": str(idx_dir),
        "MNIST_PIPELINE_ENV": "offline",
        "MNIST_MIN_TEST_ACCURACY": "0",
    }
    (tmp_path / "dagster_home").mkdir()
    summary = tmp_path / "summary.json"
    result = subprocess.run(
        [sys.executable, "-m", "mnist_pipeline", "run", "--epochs", "1", "--batch-size", "30", "--json", str(summary)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Test accuracy:" in result.stdout
    report = json.loads(summary.read_text())
    assert set(report["paths"]) == ALL_KEYS - {"mnist_files"}
    assert all(Path(path).exists() for path in report["paths"].values())
    assert 0.0 <= report["metrics"]["test_accuracy"] <= 1.0
    # The run is recorded in the persistent instance, so the UI shows it.
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        assert instance.get_run_by_id(report["run_id"]) is not None


@pytest.mark.slow
def test_a_run_stores_the_trained_model_once_and_loads_it_once(idx_dir, storage_dir, monkeypatch):
    """One .keras file per model in storage, and one load of the trained model per run (issue: the house)."""
    import keras

    loaded: list[str] = []
    load_model = keras.models.load_model

    def counting_load_model(path, *args, **kwargs):  # Keras's own loader, counted
        loaded.append(str(path))
        return load_model(path, *args, **kwargs)

    monkeypatch.setattr(keras.models, "load_model", counting_load_model)
    from mnist_pipeline.defs.model import assets as model_assets

    hashed = []
    dataset_version = model_assets.dataset_version
    monkeypatch.setattr(model_assets, "dataset_version", lambda dataset: hashed.append(1) or dataset_version(dataset))
    result = dg.materialize(all_assets, resources=resources(idx_dir, storage_dir), run_config=FAST_TRAINING)
    assert result.success
    scaled = next(e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("scaled_mnist"))
    lineage = result.output_for_node("trained_model").lineage["input_data_versions"]
    assert lineage["scaled_mnist"] == scaled.materialization.tags["dagster/data_version"]
    assert hashed == [], "trained_model reuses scaled_mnist's recorded version: its file was just verified"
    version = result.asset_materializations_for_node("trained_model")[0].metadata["model_version"].value
    model_file = storage_dir / "model_registry" / version / "model.keras"
    assert sorted(str(p.relative_to(storage_dir)) for p in storage_dir.rglob("*.keras")) == [
        "compiled_model.keras", f"model_registry/{version}/model.keras"
    ]
    assert loaded.count(str(model_file)) == 1, loaded
    assert not (storage_dir / "model_registry" / version / "evaluation.json").exists(), "evaluation_metrics writes into its own store"
