"""`mnist-pipeline sweep` and `leaderboard` end to end on synthetic data, and their flag errors.

The sweep's runs are real Dagster runs in a real instance (DAGSTER_HOME in the test's
directory), training real (tiny) models through the same code as trained_model.
"""

import json

import dagster as dg
import pytest

from mnist_pipeline.cli import main as cli
from mnist_pipeline.defs.experiments.assets import candidate_model
from mnist_pipeline.defs.resources import resources_for_env


@pytest.fixture
def sweep_env(tmp_path, idx_dir, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("MNIST_DATA_DIR", str(idx_dir))
    return tmp_path / "dagster_home"


def sweep(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["sweep", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--preset", "fast", "--seeds", "4-1"], "--seeds: expected a range from low to high such as 0-4, found '4-1'"),
        (["--preset", "fast", "--seeds", "one"], "--seeds: expected a seed, a range such as 0-4, or a list such as 0,2,5; found 'one'"),
        (["--preset", "huge", "--seeds", "0"], "--preset: expected one of best, fast, tutorial, found 'huge'"),
        (["--seeds", "0"], "--preset: expected at least one preset, found none"),
        (["--preset", "fast", "--seeds", "0", "--set", "momentum=0.9"], "--set: expected an override among batch_size, epochs, learning_rate, found 'momentum'"),
        (["--preset", "fast", "--seeds", "0", "--set", "learning_rate"], "--set: expected name=value[,value...] such as learning_rate=0.002,0.003; found 'learning_rate'"),
        (["--preset", "fast", "--seeds", "0", "--set", "epochs=two"], "--set epochs: expected an integer, found 'two'"),
        (["--preset", "fast", "--seeds", "0", "--epochs", "2", "--set", "epochs=3"], "--set epochs: expected each override once, found it twice"),
        (["--preset", "fast", "--seeds", "0", "--parallel", "0"], "--parallel: expected a whole number of at least 1, found '0'"),
    ],
)
def test_sweep_flag_errors_name_the_flag_and_start_nothing(capsys, sweep_env, args, message):
    code, out, err = sweep(capsys, *args)
    assert code == 2
    assert message in err
    assert not sweep_env.exists(), "nothing was launched, so no instance was opened"


def test_leaderboard_before_any_sweep_says_so(capsys, sweep_env):
    assert cli.main(["leaderboard"]) == 1
    err = capsys.readouterr().err
    assert "no leaderboard yet" in err and "leaderboard.parquet" in err and "run `mnist-pipeline sweep` first" in err


def materializations(instance: dg.DagsterInstance, key: dg.AssetKey) -> int:
    return len(instance.fetch_materializations(key, limit=100).records)


@pytest.mark.slow
def test_a_sweep_trains_each_candidate_once_registers_it_and_ranks_by_validation_accuracy(
    capsys, sweep_env, open_instance, monkeypatch
):
    from mnist_pipeline.ml.model import training

    recipes = []
    real = training.train_with_recipe

    def recording(compiled, dataset, recipe, **kwargs):  # the real function, called: a spy, not a stand-in
        recipes.append(recipe)
        return real(compiled, dataset, recipe, **kwargs)

    monkeypatch.setattr(training, "train_with_recipe", recording)
    code, out, err = sweep(capsys, "--preset", "fast", "--seeds", "0-1", "--epochs", "1")
    assert code == 0, err
    keys = [line.split()[0] for line in out.splitlines() if "trained and evaluated" in line]
    assert len(keys) == 2 and keys[0].startswith("fast-s0-ep1-") and keys[1].startswith("fast-s1-ep1-")
    # Both candidates trained through the one training path, with their own seed and the override.
    assert [(r["preset"], r["seed"], r["epochs"]) for r in recipes] == [("fast", 0, 1), ("fast", 1, 1)]

    registry = resources_for_env()["model_registry"].registry()
    lineage = {registry.manifest(v)["candidate"]: registry.manifest(v) for v in registry.versions()}
    assert sorted(lineage) == sorted(keys)
    assert all(record["hyperparameters"]["epochs"] == 1 and record["runs"] for record in lineage.values())

    cli.main(["leaderboard", "--json"])
    board = json.loads(capsys.readouterr().out)
    assert [row["rank"] for row in board] == [1, 2]
    assert board[0]["validation_accuracy"] >= board[1]["validation_accuracy"]
    assert {row["candidate"] for row in board} == set(keys)
    assert {row["model_version"] for row in board} == {lineage[key]["version"] for key in keys}
    assert all(0.0 <= row["test_accuracy"] <= 1.0 and row["parameter_count"] > 0 for row in board)

    # Run again: both candidates are up to date, so nothing trains and no candidate is materialized again.
    code, out, err = sweep(capsys, "--preset", "fast", "--seeds", "0-1", "--epochs", "1")
    assert code == 0, err
    assert "0 to train" in out and f"up to date: {', '.join(keys)}" in out
    assert len(recipes) == 2
    with open_instance(sweep_env) as instance:
        assert materializations(instance, candidate_model.key) == 2
