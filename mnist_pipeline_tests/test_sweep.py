"""`mnist-pipeline sweep` and `leaderboard` end to end on synthetic data, and their flag errors.

The sweep's runs are real Dagster runs in a real instance (DAGSTER_HOME in the test's
directory), training real (tiny) models through the same code as trained_model.
"""

import json
import os
import re
import signal
import subprocess
import sys

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
        (["--preset", "huge", "--seeds", "0"], "--preset: expected one of best, fast, tutorial, wide, found 'huge'"),
        (["--seeds", "0"], "--preset: expected at least one preset, found none"),
        (["--preset", "fast", "--seeds", "0", "--set", "momentum=0.9"], "--set: expected an override among augmentation, batch_size, epochs, learning_rate, found 'momentum'"),
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
    manifests = [registry.manifest(v) for v in registry.versions()]  # a mean of candidates (the champion) too
    lineage = {manifest["candidate"]: manifest for manifest in manifests if "candidate" in manifest}
    assert len(manifests) - len(lineage) <= 1
    assert sorted(lineage) == sorted(keys)
    assert all(record["hyperparameters"]["epochs"] == 1 and record["runs"] for record in lineage.values())

    assert cli.main(["leaderboard"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["rank", "candidate", "validation_accuracy"]
    cli.main(["leaderboard", "--json"])
    board = json.loads(capsys.readouterr().out)
    assert table[1].split()[:2] == ["1", board[0]["candidate"]]
    assert [row["rank"] for row in board] == [1, 2]
    assert board[0]["validation_accuracy"] >= board[1]["validation_accuracy"]
    assert {row["candidate"] for row in board} == set(keys)
    assert {row["model_version"] for row in board} == {lineage[key]["version"] for key in keys}
    assert all(0.0 <= row["test_accuracy"] <= 1.0 and row["parameter_count"] > 0 for row in board)
    # Each candidate's evaluation is kept per version, where `models show` and the promotion gate read it.
    records = resources_for_env()["evaluation_records"].records()
    assert {row["model_version"]: records.read(row["model_version"])["test_accuracy"] for row in board} == {
        row["model_version"]: row["test_accuracy"] for row in board
    }

    # The champion: chosen on the validation images both candidates held out (one shared split), so the
    # mean of the top 1 is the top candidate's own last-epoch validation accuracy, as Keras measured it.
    champion = resources_for_env()["json_io_manager"].read(dg.AssetKey("champion_model"))
    assert champion["validation_accuracy_by_size"]["1"] == pytest.approx(board[0]["validation_accuracy"], abs=1e-6)
    # k: the largest (both), unless the best alone is more accurate beyond chance (McNemar, p < 0.05).
    by_size, p_values = champion["validation_accuracy_by_size"], champion["p_value_against_largest_by_size"]
    assert sorted(by_size) == ["1", "2"] and sorted(p_values) == ["1"]
    assert champion["size"] == (1 if p_values["1"] < 0.05 and by_size["1"] > by_size["2"] else 2)
    assert champion["validation_accuracy"] == by_size[str(champion["size"])]
    assert champion["members"] == [row["candidate"] for row in board][: champion["size"]]
    assert champion["best_candidate_test_accuracy"] == pytest.approx(board[0]["test_accuracy"])
    assert f"Champion {champion['model_version']}: " in out
    # Registered and evaluated like any version (a mean of two: its own version, members in its lineage).
    assert records.read(champion["model_version"])["test_accuracy"] == pytest.approx(champion["test_accuracy"])
    registry.load(champion["model_version"])  # verified, and loads with safe_mode=True
    if champion["size"] > 1:
        manifest = registry.manifest(champion["model_version"])  # a complete manifest: `models list` and `show` read it
        assert [m["candidate"] for m in manifest["champion_of"]] == champion["members"]
        assert manifest["hyperparameters"]["size"] == champion["size"]
        assert [m["seed"] for m in manifest["hyperparameters"]["members"]] == [int(key.split("-s")[1].split("-")[0]) for key in champion["members"]]

    # Run again, serving the champion: both candidates are up to date, so nothing trains and no candidate
    # is materialized again; the champion (the same version) goes through the gates to production.
    monkeypatch.setenv("MNIST_SERVED_MODEL", "champion")
    code, out, err = sweep(capsys, "--preset", "fast", "--seeds", "0-1", "--epochs", "1")
    # The same accuracy gate as the main chain's (0.97 by default; synthetic data scores lower): refused.
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        f"Refused: model {champion['model_version']}: expected test accuracy >= 0.9700, found {champion['test_accuracy']:.4f}"
    )
    monkeypatch.setenv("MNIST_MIN_TEST_ACCURACY", "0.5")
    code, out, err = sweep(capsys, "--preset", "fast", "--seeds", "0-1", "--epochs", "1")
    assert code == 0, err
    assert "0 to train" in out and f"up to date: {', '.join(keys)}" in out
    assert f"Serving model {champion['model_version']} " in out
    assert len(recipes) == 2
    with open_instance(sweep_env) as instance:
        assert materializations(instance, candidate_model.key) == 2
        # The leaderboard in the UI: its table, and the plot embedded as a PNG; no model served yet.
        shown = instance.get_latest_materialization_event(dg.AssetKey("leaderboard")).asset_materialization.metadata
        assert all(key in shown["table"].value for key in keys) and "validation_accuracy" in shown["table"].value
        assert shown["plot"].value.startswith("![validation accuracy against training seconds](data:image/png;base64,iVBOR")
        assert shown["dagster/row_count"].value == 2
        from mnist_pipeline.defs.serving.assets import current_production

        assert current_production(instance)["version"] == champion["model_version"]

        # A candidate whose training depended on something else (other code or data: another training key)
        # is stale, and only it: the next sweep would train it alone.
        from mnist_pipeline.defs.experiments.sweep import plan
        from mnist_pipeline.ml.model.candidates import expand_grid

        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=candidate_model.key, partition=keys[0], metadata={"training_key": "older code"})
        )
        stale = plan(instance, expand_grid(["fast"], [0, 1], {"epochs": [1]}))
        assert (stale.to_run, stale.up_to_date) == ([keys[0]], [keys[1]])


def test_a_candidate_reads_its_config_by_key_and_a_key_without_one_is_refused(tmp_path):
    from mnist_pipeline.defs.experiments.resources import CandidateConfigError, ExperimentStore
    from mnist_pipeline.ml.model.candidates import make_candidate

    store = ExperimentStore(root=str(tmp_path / "experiments"))
    candidate = make_candidate("best", 3, {"learning_rate": 0.002})
    store.write_config(candidate)
    assert store.read_config(candidate.key) == candidate
    # A key that is its whole config (added by hand in the UI) needs no record; any other key does.
    assert store.read_config("best-s4") == make_candidate("best", 4)
    with pytest.raises(CandidateConfigError, match=r"candidates/best-s4-lr0\.002-abcdef\.json: expected the config record of candidate 'best-s4-lr0.002-abcdef', found no file"):
        store.read_config("best-s4-lr0.002-abcdef")
    with pytest.raises(CandidateConfigError, match=r"candidates/huge-s1\.json: expected the config record of candidate 'huge-s1', found no file"):
        store.read_config("huge-s1")
    # A record copied under another key is refused: it would train a config its key does not name.
    store.config_path("best-s9").write_text(json.dumps(candidate.as_record()))
    with pytest.raises(CandidateConfigError, match="best-s9.json: expected the config record of candidate 'best-s9', found .*does not match"):
        store.read_config("best-s9")


def test_an_augmentation_override_reaches_the_candidates_recipe(tmp_path):
    """`--set augmentation=2`: kept in the candidate's record, and resolved into the recipe its network is built with."""
    from mnist_pipeline.defs.experiments.assets import candidate_params
    from mnist_pipeline.defs.experiments.resources import ExperimentStore
    from mnist_pipeline.ml.model.candidates import make_candidate

    store = ExperimentStore(root=str(tmp_path / "experiments"))
    candidate = make_candidate("wide", 1, {"augmentation": 2})
    store.write_config(candidate)
    assert candidate_params(store.read_config(candidate.key))["augmentation"] == 2.0
    assert candidate_params(make_candidate("wide", 1))["augmentation"] == 1.0  # the preset's own
    assert "augmentation" not in candidate_params(make_candidate("fast", 1))


def test_a_damaged_candidate_record_is_reported_not_read(tmp_path):
    from mnist_pipeline.defs.experiments.resources import CandidateRecordIOManager, ExperimentStore
    from mnist_pipeline.storage.integrity import IntegrityError

    store = ExperimentStore(root=str(tmp_path / "experiments"))
    manager = CandidateRecordIOManager(experiment_store=store)
    key = dg.AssetKey("candidate_evaluation")
    context = dg.build_output_context(asset_key=key, partition_key="fast-s0")
    manager.handle_output(context, {"candidate": "fast-s0", "test_accuracy": 0.9})
    assert manager.read(key, "fast-s0") == {"candidate": "fast-s0", "test_accuracy": 0.9}
    path = store.record_path(key, "fast-s0")
    path.write_text(path.read_text().replace("0.9", "0.99"))
    with pytest.raises(IntegrityError, match=r"fast-s0\.json: expected the record of asset 'candidate_evaluation' for candidate 'fast-s0'"):
        manager.read(key, "fast-s0")


def test_what_changed_leaves_the_sweep_to_the_sweep(open_instance, tmp_path):
    """`update` runs the full job's assets; candidates are partitions that only a sweep names, so it must not pick them."""
    from mnist_pipeline.definitions import defs
    from mnist_pipeline.defs.automation.what_changed import what_changed

    home = tmp_path / "dagster_home"
    home.mkdir()
    with open_instance(home) as instance:
        changed = {key.to_user_string() for key in what_changed(instance, defs().resolve_asset_graph()).changed}
    assert "trained_model" in changed and "production_model" in changed
    assert changed.isdisjoint({"candidate_model", "candidate_evaluation", "leaderboard"})


def test_candidates_train_on_the_training_queue_and_in_the_training_pool():
    """On the cluster, like trained_model: the Celery queue `training`; everywhere, the run queue's one training run at a time."""
    from mnist_pipeline.definitions import defs
    from mnist_pipeline.defs.executor import TRAINING_POOL, TRAINING_STEP_TAGS

    job = defs().resolve_job_def("mnist_sweep_candidates")
    nodes = {node.name: node for node in job.graph.node_defs}
    assert TRAINING_STEP_TAGS.items() <= dict(nodes["candidate_model"].tags).items()
    assert not TRAINING_STEP_TAGS.items() <= dict(nodes["candidate_evaluation"].tags).items()
    assert (nodes["candidate_model"].pool, nodes["candidate_evaluation"].pool) == (TRAINING_POOL, None)
    assert job.partitions_def.name == "candidates"


@pytest.mark.parametrize("via_variable", [True, False])
def test_an_unknown_served_model_names_what_set_it(monkeypatch, via_variable):
    from mnist_pipeline.defs.serving.resources import ServedModel
    from mnist_pipeline.settings import ConfigurationError

    monkeypatch.setenv("MNIST_SERVED_MODEL", "newest")
    resource = ServedModel() if via_variable else ServedModel(source="newest")
    where = "MNIST_SERVED_MODEL" if via_variable else "ServedModel.source"
    with pytest.raises(ConfigurationError, match=f"^{where}: expected one of \\['champion', 'main'\\]"):
        resource.asset()


@pytest.mark.parametrize("value, asset", [(None, "trained_model"), ("", "trained_model"), ("main", "trained_model"), ("champion", "champion_model")])
def test_the_served_model_setting(monkeypatch, value, asset):
    from mnist_pipeline.defs.serving.resources import ServedModel

    monkeypatch.delenv("MNIST_SERVED_MODEL", raising=False)
    if value is not None:
        monkeypatch.setenv("MNIST_SERVED_MODEL", value)
    assert ServedModel().asset() == asset


def started_sweep(home, idx_dir, *args: str) -> subprocess.Popen:
    """`mnist-pipeline sweep` in its own process (a signal to it must not reach pytest), in its own process group."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("MNIST_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(home / "dagster_home"), MNIST_PIPELINE_HOME=str(home / "pipeline"), MNIST_DATA_DIR=str(idx_dir),
               TF_CPP_MIN_LOG_LEVEL="2")  # fmt: skip
    (home / "dagster_home").mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "mnist_pipeline", "sweep", "--preset", "fast", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def read_until(process: subprocess.Popen, pattern: str, count: int = 1) -> list[str]:
    """The sweep's output lines up to the `count`-th that matches `pattern`."""
    lines, matches = [], 0
    for line in process.stdout:
        lines.append(line)
        matches += bool(re.search(pattern, line))
        if matches == count:
            return lines
    raise AssertionError(f"the sweep ended before {count} line(s) matching {pattern!r}: {''.join(lines)}{process.stderr.read()}")


@pytest.mark.slow
@pytest.mark.parametrize("parallel, signal_to", [("1", "process"), ("2", "process"), ("2", "group")])
def test_a_signal_stops_the_sweep_and_the_same_command_finishes_it(tmp_path, idx_dir, parallel, signal_to):
    """SIGTERM to the sweep (`kill`, a container's stop), or SIGINT to its process group (Ctrl-C in a terminal):
    the candidates training are interrupted, keeping their checkpoints, and no other starts. Before, each signal
    failed only the candidate training, and the sweep went on to train every other one."""
    args = ("--seeds", "0-2", "--epochs", "30", "--parallel", parallel)
    sweep_process = started_sweep(tmp_path, idx_dir, *args)
    training_at_once = int(parallel)
    try:
        before = read_until(sweep_process, r"candidate_model: epoch 2/30", training_at_once)
        if signal_to == "process":
            sweep_process.send_signal(signal.SIGTERM)
        else:
            os.killpg(sweep_process.pid, signal.SIGINT)
        out, err = sweep_process.communicate(timeout=120)
    finally:  # a sweep the signal did not stop, or a failure before it: its whole group goes, workers included
        if sweep_process.poll() is None:
            os.killpg(sweep_process.pid, signal.SIGKILL)
            sweep_process.wait()
    out = "".join(before) + out
    assert sweep_process.returncode == 130, out + err
    assert len(re.findall(r"Run \S+ of mnist_sweep_candidates", out)) == training_at_once, "none started after the signal"
    interrupted = re.findall(r"^  (fast-s\d-ep30-\S+) +INTERRUPTED \(run ", out, flags=re.MULTILINE)
    assert len(interrupted) == training_at_once
    assert "candidate_model                      failed" in out and "interrupted (SIGINT or SIGTERM)" in out
    not_started = [f"fast-s{seed}" for seed in range(training_at_once, 3)]
    last = err.strip().splitlines()[-1]
    assert last.startswith("mnist-pipeline sweep: interrupted (SIGINT or SIGTERM): stopped before ")
    assert [key.split("-ep")[0] for key in last.split("stopped before ")[1].split(" started")[0].split(", ")] == not_started
    assert last.endswith("run the same command again to finish the sweep.")

    if parallel != "1":
        return  # resuming is the same in a worker; once is enough for the suite's time
    # The same command again: the interrupted training resumes from its checkpoint, the rest train, and the
    # leaderboard lists all three.
    again = started_sweep(tmp_path, idx_dir, *args)
    try:
        out, err = again.communicate(timeout=600)
    finally:
        if again.poll() is None:
            os.killpg(again.pid, signal.SIGKILL)
            again.wait()
    assert again.returncode == 0, out + err
    assert len(re.findall(r"Resuming from the checkpoint after epoch \d+ of 30", out)) == training_at_once
    assert len(re.findall(r"^  fast-s\d-ep30-\S+ +trained and evaluated", out, flags=re.MULTILINE)) == 3
