"""The benchmark's pieces: the bare Keras baseline matches the pipeline's default, and the harness measures and judges.

No timing targets here: those are for benchmarks/run.py on a known machine.
"""

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from mnist_pipeline.ml.model.split import validation_split

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bare():
    return load_script("bare_keras")


@pytest.fixture(scope="module")
def harness():
    return load_script("run")


def test_bare_script_builds_the_tutorial_network(bare):
    from mnist_pipeline.ml.model.network import build_tutorial_model

    mine, theirs = bare.build_model(seed=3), build_tutorial_model(seed=3)
    assert mine.name == theirs.name
    assert [layer.get_config() | {"name": ""} for layer in mine.layers] == [
        layer.get_config() | {"name": ""} for layer in theirs.layers
    ]
    for a, b in zip(mine.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed", [0, 5])
def test_bare_script_splits_like_the_pipeline(bare, seed):
    for mine, theirs in zip(bare.split_indices(60000, 0.1, seed), validation_split(60000, 0.1, seed)):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.slow
def test_bare_script_runs_and_writes_what_the_pipeline_writes(bare, idx_dir, tmp_path, capsys):
    out = tmp_path / "out"
    bare.main([
        f"--cache-dir={idx_dir}", f"--out={out}", "--epochs=1", "--batch-size=30", "--optimizer=adam",
        "--learning-rate=0.003", "--validation-fraction=0.1", "--seed=0",
    ])
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= figures["test_accuracy"] <= 1.0
    assert figures["train_images"] == 270
    assert figures["training_seconds"] > 0 and figures["prediction_seconds"] > 0
    assert figures["training_cpu_seconds"] > 0
    written = {path.name for path in out.iterdir()}
    assert {"trained_model.keras", "evaluation_metrics.json", "predictions_table.parquet", "confusion_matrix.png"} <= written
    assert saved_steps_per_execution(out) == 1  # Keras's default, as the tutorial writes it


def saved_steps_per_execution(out: Path) -> int:
    import keras

    return keras.models.load_model(out / "trained_model.keras", safe_mode=True).get_compile_config()["steps_per_execution"]


@pytest.mark.slow
def test_bare_script_tuned_runs_the_given_steps_per_call(bare, idx_dir, tmp_path, capsys):
    out = tmp_path / "out"
    bare.main([
        f"--cache-dir={idx_dir}", f"--out={out}", "--epochs=1", "--batch-size=30", "--optimizer=sgd",
        "--learning-rate=0.01", "--validation-fraction=0.1", "--seed=0", "--steps-per-execution=3",
    ])
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["steps_per_execution"] == 3
    assert saved_steps_per_execution(out) == 3  # what the model was compiled with, not only what was asked


def test_bare_script_refuses_fewer_than_one_step_per_call(bare, idx_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        bare.main([
            f"--cache-dir={idx_dir}", f"--out={tmp_path}", "--epochs=1", "--batch-size=30", "--optimizer=sgd",
            "--learning-rate=0.01", "--validation-fraction=0.1", "--seed=0", "--steps-per-execution=0",
        ])
    assert "--steps-per-execution expects a whole number of at least 1; found 0" in capsys.readouterr().err


@pytest.fixture(scope="module")
def loops():
    return load_script("training_loops")


@pytest.fixture(autouse=True)
def restore_steps_per_call_cap(monkeypatch):
    """training_loops.py caps model/training.py's MAX_STEPS_PER_CALL (a process of its own normally); called
    in this process, the cap must not outlive the test (it made test_training's steps-per-call tests fail)."""
    from mnist_pipeline.ml.model import training

    monkeypatch.setattr(training, "MAX_STEPS_PER_CALL", training.MAX_STEPS_PER_CALL)


def train_alone(loops, idx_dir, tmp_path, capsys, loop: str, steps: int) -> dict:
    loops.main([
        f"--loop={loop}", f"--steps-per-execution={steps}", f"--cache-dir={idx_dir}",
        f"--checkpoint-dir={tmp_path / f'checkpoint-{loop}-{steps}'}", "--epochs=2", "--batch-size=30",
        "--optimizer=sgd", "--learning-rate=0.01", "--validation-fraction=0.1", "--seed=0",
    ])
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.slow
def test_training_loops_time_each_loop_and_steps_per_call_keeps_the_updates(loops, idx_dir, tmp_path, capsys):
    # 270 training images in batches of 30: 9 steps an epoch, so 3 steps per call divide it.
    runs = {(loop, steps): train_alone(loops, idx_dir, tmp_path, capsys, loop, steps)
            for loop in ("keras", "pipeline") for steps in (1, 3)}
    for (loop, steps), run in runs.items():
        assert (run["loop"], run["steps_per_execution"]) == (loop, steps)
        assert run["training_seconds"] > 0 and run["training_cpu_seconds"] > 0
    # The pipeline's loop makes the same updates at 1 and 3 steps per call (its own test checks this too).
    assert runs[("pipeline", 1)]["weights_sha256"] == runs[("pipeline", 3)]["weights_sha256"]
    # The two loops order the batches differently, so they end with different weights.
    assert runs[("pipeline", 3)]["weights_sha256"] != runs[("keras", 3)]["weights_sha256"]


def test_training_loops_refuse_steps_per_call_the_pipeline_would_not_pick(loops, idx_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        train_alone(loops, idx_dir, tmp_path, capsys, "pipeline", 4)  # 4 does not divide 9 steps: it picks 3
    assert "found 4, for which it picks 3" in capsys.readouterr().err


@pytest.mark.slow
def test_timed_run_records_the_time_inside_training_of_a_real_run(harness, idx_dir, tmp_path):
    env = harness.child_env(
        DAGSTER_HOME=str(tmp_path / "dagster_home"), MNIST_PIPELINE_HOME=str(tmp_path / "home"),
        MNIST_DATA_DIR=str(idx_dir), MNIST_MIN_TEST_ACCURACY="0",
    )
    (tmp_path / "dagster_home").mkdir()
    timings, summary = tmp_path / "timings.json", tmp_path / "summary.json"
    measured = harness.run_measured(
        [sys.executable, str(harness.TIMED_RUN), f"--timings={timings}", "run", "--epochs=1", f"--json={summary}"],
        env, tmp_path / "logs",
    )
    inside = json.loads(timings.read_text())
    trained = json.loads(summary.read_text())["metrics"]["training_seconds"]
    assert 0 < inside["training_cpu_s"] < measured.cpu_s
    # The wrapper times the same call the trained_model asset times (its metadata rounds to 0.01 s).
    assert abs(inside["training_wall_s"] - trained) < 0.05 + 0.05 * trained
    assert inside["training_wall_s"] < measured.wall_s


def test_default_recipe_is_the_pipelines_default(harness):
    assert harness.default_recipe(None) == {
        "epochs": 10, "batch_size": 32, "optimizer": "sgd", "learning_rate": 0.01, "validation_fraction": 0.1, "seed": 0,
    }
    assert harness.default_recipe(2)["epochs"] == 2


def test_run_measured_reports_the_childs_own_peak_memory(harness, tmp_path):
    allocate = "import time; block = b'x' * (300 * 2**20); print('done'); time.sleep(0.3)"
    measured = harness.run_measured([sys.executable, "-c", allocate], harness.child_env(), tmp_path / "logs")
    assert 300 <= measured.peak_rss_mib < 450
    assert measured.stdout.strip() == "done"
    assert measured.wall_s > 0
    small = harness.run_measured([sys.executable, "-c", "import time; time.sleep(0.3)"], harness.child_env(), tmp_path / "logs2")
    assert 1 < small.peak_rss_mib < 100  # the child's own, whatever the parent's (pytest's) size


def test_run_measured_raises_with_the_childs_error(harness, tmp_path):
    with pytest.raises(RuntimeError, match=r"exited with 3; stderr ends:\nboom"):
        harness.run_measured(
            [sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"], harness.child_env(), tmp_path
        )


def fabricated_results(pipeline_wall: float, pipeline_outside: float, pipeline_rss: float, step_seconds: float,
                       import_s: float) -> dict:
    # Keras's defaults: slower than the pipeline by far, so a target judged against it would pass everything here.
    bare = {"wall_s": 84.3, "cpu_s": 120.0, "peak_rss_mib": 1400.0, "test_accuracy": 0.9761, "training_seconds": 78.1,
            "images_per_second": 6900.0, "prediction_seconds": 0.3, "outside_training_s": 6.2, "outside_training_cpu_s": 8.0}
    # The equally tuned script: wall 60 s (66 s allowed), 6 s outside training (9 s allowed), 1400 MiB (1540 allowed).
    tuned = {"wall_s": 60.0, "cpu_s": 100.0, "peak_rss_mib": 1400.0, "test_accuracy": 0.9761, "training_seconds": 54.0,
             "images_per_second": 10000.0, "prediction_seconds": 0.3, "outside_training_s": 6.0, "outside_training_cpu_s": 7.5}
    pipeline = {"wall_s": pipeline_wall, "cpu_s": 102.0, "peak_rss_mib": pipeline_rss, "test_accuracy": 0.9752,
                "training_seconds": pipeline_wall - pipeline_outside, "outside_training_s": pipeline_outside,
                "outside_training_cpu_s": 11.0, "images_per_second": 10800.0, "train_images": 54000, "prediction_seconds": 0.3,
                "prediction_step_seconds": step_seconds, "steps": {"raw_mnist": 0.2, "trained_model": 51.0}}
    return {
        "date": "2026-01-01", "machine": "test machine", "versions": "none", "load_before": "0", "load_after": "0",
        "startup": {"median_s": import_s, "min_s": import_s, "max_s": import_s, "tensorflow_imported": False},
        "comparison": {"recipe": {"epochs": 10, "batch_size": 32, "optimizer": "sgd", "learning_rate": 0.01,
                                  "validation_fraction": 0.1, "seed": 0}, "steps_per_execution": 8, "rounds": 1,
                       "bare": bare, "bare_tuned": tuned, "pipeline": pipeline, "floor": {"wall_s": 3.1, "cpu_s": 5.9},
                       "bare_runs": [bare], "bare_tuned_runs": [tuned], "pipeline_runs": [pipeline],
                       "floor_runs": [{"wall_s": 3.1, "cpu_s": 5.9}]},
        "presets": {
            "fast": [{"seed": s, "test_accuracy": a, "val_accuracy": 0.99, "training_seconds": 9.0, "epochs": 3,
                      "batch_size": 120} for s, a in enumerate([0.991, 0.992, 0.993])],
            "best": [{"seed": 0, "test_accuracy": 0.994, "val_accuracy": 0.993, "training_seconds": 200.0,
                      "epochs": 15, "batch_size": 120}],
        },
    }


def rows(text: str) -> dict[str, str]:
    return {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}


OUTSIDE_TRAINING = "wall time outside training: the orchestration cost (start-up, loading, evaluation, storage, checks, plots)"


def test_report_passes_what_meets_the_targets(harness):
    text = harness.report(fabricated_results(65.9, 9.0, 1500.0, 1.5, 1.2), "./scripts/benchmark")
    table = rows(text)
    assert "| measure | bare Keras script, Keras's defaults | bare Keras script, 8 steps per call | pipeline | target | result |" in text
    assert table["wall time, launch to exit"].endswith("| ≤ tuned script + max(3 s, 10%) = 66.0 s | PASS |")
    assert table[OUTSIDE_TRAINING].endswith("| ≤ 1.5x the tuned script's = 9.0 s | PASS |")
    assert "| 6.2 s | 6.0 s | 9.0 s (x1.50 of the tuned script's) |" in table[OUTSIDE_TRAINING]
    assert table["CPU time outside training"] == "| CPU time outside training | 8.0 s | 7.5 s | 11.0 s | | |"
    assert table["steps per call into TensorFlow"] == "| steps per call into TensorFlow | 1 | 8 | 8 | | |"
    assert table["peak memory (RSS)"].endswith("| PASS |")
    assert table["predict 10,000 test images and build the table"].endswith("| PASS |")
    assert table["load the code location: import `mnist_pipeline.definitions`, build `defs()` (median of 5)"].endswith("| PASS |")
    assert table["fast"].endswith("| PASS |")
    assert "| 99.20% ± 0.10 (99.10–99.30) |" in table["fast"]
    assert table["best"].endswith("| **FAIL** |")  # 99.4% < 99.5%
    assert ("round 1: bare 84.3 s (6.2 s outside training), bare_tuned 60.0 s (6.0 s outside training), "
            "pipeline 65.9 s (9.0 s outside training), Dagster alone 3.1 s") in text
    floor = next(row for key, row in table.items() if key.startswith("of which Dagster alone"))
    assert floor.endswith("| | | 3.1 s wall, 5.9 s CPU | | |")


def test_report_fails_what_misses_the_targets(harness):
    # 66.1 s would pass against Keras's defaults (84.3 s), but not against the equally tuned script (60 s).
    table = rows(harness.report(fabricated_results(66.1, 9.1, 1600.0, 2.1, 1.6), "./scripts/benchmark"))
    for row in ("wall time, launch to exit", OUTSIDE_TRAINING, "peak memory (RSS)",
                "predict 10,000 test images and build the table", "load the code location: import `mnist_pipeline.definitions`, build `defs()` (median of 5)"):
        assert table[row].endswith("| **FAIL** |"), row


def test_report_fails_orchestration_cost_above_one_and_a_half_times_the_tuned_script_s(harness):
    # Everything else within its target; only the time outside training is 2x the tuned script's (12 s against 6 s).
    table = rows(harness.report(fabricated_results(64.0, 12.0, 1500.0, 1.5, 1.2), "./scripts/benchmark"))
    assert table["wall time, launch to exit"].endswith("| PASS |")
    assert table[OUTSIDE_TRAINING].endswith("| 12.0 s (x2.00 of the tuned script's) | ≤ 1.5x the tuned script's = 9.0 s | **FAIL** |")


def training_run(loop: str, steps: int, seconds: float, weights: str) -> dict:
    return {"loop": loop, "steps_per_execution": steps, "training_seconds": seconds, "training_cpu_seconds": 1.5 * seconds,
            "images_per_second": 54000 * 10 / seconds, "final_val_accuracy": 0.97, "weights_sha256": weights}


def test_report_says_where_the_training_speed_comes_from(harness):
    # The figures: Keras's defaults 78 s, 8 steps per call 70 s; the pipeline's loop 66 s and 57 s.
    runs = {"keras-1": [training_run("keras", 1, 78.0, "k")], "keras-8": [training_run("keras", 8, 70.0, "k")],
            "pipeline-1": [training_run("pipeline", 1, 66.0, "p")], "pipeline-8": [training_run("pipeline", 8, 57.0, "p")]}
    results = fabricated_results(65.9, 9.0, 1500.0, 1.5, 1.2)
    results["training"] = {"recipe": results["comparison"]["recipe"], "steps_per_execution": 8, "rounds": 1,
                           "runs": runs, "medians": {key: value[0] for key, value in runs.items()}}
    text = harness.report(results, "./scripts/benchmark")
    table = rows(text)
    keras_row = next(row for key, row in table.items() if key.startswith("Keras's own"))
    pipeline_row = next(row for key, row in table.items() if key.startswith("the pipeline's"))
    assert keras_row.endswith("| 78.0 s (117.0 s) | 70.0 s (105.0 s) | -8.0 s (-10%) |")
    assert pipeline_row.endswith("| 66.0 s (99.0 s) | 57.0 s (85.5 s) | -9.0 s (-14%) |")
    assert table["gain from the pipeline's loop"] == "| gain from the pipeline's loop | -12.0 s (-15%) | -13.0 s (-19%) | |"
    assert ("78.0 s → 57.0 s (-21.0 s (-27%)): 8 steps per call first gives -8.0 s (-10%), then the pipeline's loop "
            "-13.0 s (-19%); the pipeline's loop first gives -12.0 s (-15%), then 8 steps per call -9.0 s (-14%)") in text
    assert "keras's loop identical, pipeline's loop identical" in text


def test_median_run_takes_each_figure_s_median(harness):
    runs = [
        {"wall_s": 10.0, "test_accuracy": 0.9, "steps": {"a": 1.0}, "train_images": 5},
        {"wall_s": 30.0, "test_accuracy": 0.9, "steps": {"a": 3.0}, "train_images": 5},
        {"wall_s": 20.0, "test_accuracy": 0.9, "steps": {"a": 9.0}, "train_images": 5},
    ]
    assert harness.median_run(runs) == {"wall_s": 20.0, "test_accuracy": 0.9, "steps": {"a": 3.0}, "train_images": 5}


@pytest.mark.parametrize("argv", [["--rounds", "0"], ["--seeds", "0"], ["--parts", "everything"], ["--presets", "huge"]])
def test_bad_arguments_are_rejected_naming_them(harness, argv, capsys):
    with pytest.raises(SystemExit):
        harness.main(argv)
    error = capsys.readouterr().err
    assert argv[0] in error and "found" in error


def graph_shape(definitions, job_name: str) -> tuple:
    """Assets and their parents, checks, and each step of the job with its inputs: what makes a run's events."""
    graph = definitions.resolve_asset_graph()
    # The sweeps' assets (group experiments) are in the code location but never in the full job: not part of the floor.
    assets = {key.to_user_string(): sorted(parent.to_user_string() for parent in graph.get(key).parent_keys)
              for key in graph.get_all_asset_keys() if graph.get(key).group_name != "experiments"}
    checks = sorted(key.to_user_string() for key in graph.asset_check_keys)
    job = definitions.resolve_job_def(job_name)
    steps = {node.name: sorted(input_def.name for input_def in node.definition.input_defs) for node in job.nodes}
    return assets, checks, steps


def test_dagster_floor_has_the_pipeline_s_graph():
    from mnist_pipeline.definitions import defs
    from mnist_pipeline.defs.jobs import full_pipeline_job

    floor = load_script("dagster_floor")
    pipeline_assets, pipeline_checks, pipeline_steps = graph_shape(defs(), full_pipeline_job.name)
    floor_assets, floor_checks, floor_steps = graph_shape(floor.defs, floor.JOB_NAME)
    assert floor_assets == pipeline_assets
    assert floor_checks == pipeline_checks
    assert floor_steps == pipeline_steps and len(floor_steps) == 15


@pytest.mark.slow
def test_dagster_floor_runs_the_job_with_empty_steps(harness, tmp_path):
    measured = harness.run_dagster_floor(tmp_path, "floor")
    assert measured["wall_s"] > 0 and measured["cpu_s"] > 0
    printed = (tmp_path / "floor" / "logs" / "stdout.txt").read_text()
    events = re.fullmatch(r"Run [0-9a-f-]+: succeeded, (\d+) events\n", printed)
    assert events and int(events[1]) >= 140, printed  # 150 in Dagster 1.13; a 1-epoch pipeline run writes 154


def test_cpu_by_step_charges_each_interval_to_what_ran_in_it():
    sys.path.insert(0, str(BENCHMARKS))  # cpu_by_step imports timed_run beside it
    by_step = load_script("cpu_by_step")
    prefix = "mnist_full_pipeline - 0b0e - 42"
    marks = [
        ("python started", 0.1), ("imported dagster", 1.1),
        (f"{prefix} - RUN_START - Started execution of run for \"mnist_full_pipeline\".", 3.1),
        (f"{prefix} - trained_model - STEP_START - Started execution of step \"trained_model\".", 3.2),
        (f"{prefix} - trained_model - LOADED_INPUT - Loaded input \"compiled_model\" using input manager \"keras_io_manager\"", 3.5),
        (f"{prefix} - trained_model - STEP_INPUT - Got input \"compiled_model\" of type \"Any\".", 3.6),
        ("training starts", 4.0),
        ("mnist_full_pipeline - 0b0e - trained_model - epoch 1/1: accuracy=0.9", 10.0),
        ("training ends", 12.0),
        (f"{prefix} - trained_model - STEP_OUTPUT - Yielded output \"result\" of type \"TrainedModel\".", 12.5),
        (f"{prefix} - trained_model - ASSET_MATERIALIZATION - Materialized value trained_model.", 13.0),
        (f"{prefix} - trained_model - STEP_SUCCESS - Finished execution of step \"trained_model\" in 9s.", 13.1),
        (f"{prefix} - RUN_SUCCESS - Finished execution of run for \"mnist_full_pipeline\".", 13.3),
        ("the command returned", 13.4),
    ]
    spent = by_step.charge(marks, total_cpu=14.0)
    assert spent == pytest.approx({
        "start-up: the interpreter, importing Dagster": 1.1,
        "start-up: the instance, the definitions, creating the run": 2.0,
        "loading compiled_model": 0.3,
        "computing trained_model": 0.4 + 0.5,  # before training, and its output after
        "training": 8.0,
        "storing outputs": 0.5,
        "Dagster: events, launching and finishing steps": 0.1 + 0.1 + 0.1 + 0.2 + 0.1,
        "exit": 0.6,
    })


def test_cluster_benchmark_times_each_step_and_its_wait_from_submission_to_start():
    cluster = load_script("cluster")
    events = [
        ("RUN_START", None, 0.0, ""),
        ("ENGINE_EVENT", "raw_mnist", 1.0, 'Submitting celery task for step "raw_mnist" to queue "dagster".'),
        ("ENGINE_EVENT", "raw_mnist", 2.5, "Executing steps raw_mnist in celery worker"),
        ("STEP_START", "raw_mnist", 3.0, ""),
        ("STEP_SUCCESS", "raw_mnist", 7.0, ""),
        ("STEP_START", "scaled_mnist", 8.0, ""),  # in-process: no submission
        ("STEP_SUCCESS", "scaled_mnist", 8.5, ""),
        ("STEP_START", "trained_model", 9.0, ""),  # failed: no duration
        ("STEP_FAILURE", "trained_model", 10.0, ""),
    ]
    assert cluster.step_times(events) == {
        "raw_mnist": {"queued": 2.0, "seconds": 4.0},
        "scaled_mnist": {"seconds": 0.5},
    }


def test_cluster_benchmark_table_gives_medians_and_the_cluster_s_extra_per_step():
    cluster = load_script("cluster")

    def result(wall, raw, queued=None):
        step = {"seconds": raw, "order": 0, **({"queued": queued} if queued is not None else {})}
        return {"wall_s": wall, "training_s": 10.0, "steps": {"raw_mnist": step}}

    table = cluster.markdown({
        "embedded": [result(100.0, 1.0), result(90.0, 2.0), result(95.0, 3.0)],
        "cluster": [result(130.0, 4.0, 1.5), result(120.0, 5.0, 2.5), result(125.0, 6.0, 3.5)],
    })
    assert "| wall time, launch to exit | 95.0 s | 125.0 s | 30.0 s |" in table
    assert "| training (as the run reports it) | 10.0 s | 10.0 s | 0.0 s |" in table
    assert "| step `raw_mnist` | 2.0 s | 5.0 s (+2.5 s from submission to start) | 3.0 s |" in table


@pytest.fixture(scope="module")
def champion_benchmark():
    return load_script("champion")


def test_champion_benchmark_tabulates_each_k_on_validation_and_test(champion_benchmark, capsys):
    champion = {"validation_accuracy_by_size": {"1": 0.9942, "2": 0.994, "3": 0.99383}}
    champion_benchmark.print_by_size(champion, {1: 0.9948, 2: 0.995, 3: 0.9953})
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-4:] == [
        "| k | 1 | 2 | 3 |",
        "|---|---|---|---|",
        "| validation | 99.42% | 99.40% | 99.38% |",
        "| test | 99.48% | 99.50% | 99.53% |",
    ]


def test_champion_benchmark_shows_each_smaller_k_s_p_value_against_the_largest(champion_benchmark, capsys):
    champion = {"validation_accuracy_by_size": {"1": 0.9942, "2": 0.994, "3": 0.99383},
                "p_value_against_largest_by_size": {"1": 0.0412, "2": 0.63}}  # fmt: skip
    champion_benchmark.print_by_size(champion, {1: 0.9948, 2: 0.995, 3: 0.9953})
    assert capsys.readouterr().out.strip().splitlines()[-2] == "| validation, p against k = 3 | 0.04 | 0.63 |  |"
    # A record from before the rule (no p-values in it): the p-values recomputed by --report.
    del champion["p_value_against_largest_by_size"]
    champion_benchmark.print_by_size(champion, {1: 0.9948, 2: 0.995, 3: 0.9953}, {1: 0.5, 2: 1.0})
    assert capsys.readouterr().out.strip().splitlines()[-2] == "| validation, p against k = 3 | 0.50 | 1.00 |  |"


def test_champion_benchmark_counts_the_test_digits_its_candidates_share_as_errors(champion_benchmark, capsys):
    import numpy as np

    labels = np.array([0, 1, 2, 3])
    first = np.eye(4)[[0, 1, 1, 0]]  # wrong on digits 2 and 3
    second = np.eye(4)[[0, 2, 2, 0]]  # wrong on digits 1 and 3
    third = np.eye(4)[[1, 1, 2, 3]] * 0.9 + 0.025  # wrong on digit 0 only, and less sure
    errors = champion_benchmark.shared_test_errors([first, second, third], labels)
    # digit 3: two of three wrong, and their mean too; no digit is missed by all three
    assert errors == {"every": 0, "at_least_half": 1, "any": 4, "mean_of_all": 1}
    assert champion_benchmark.shared_test_errors([first], labels) == {"every": 2, "at_least_half": 2, "any": 2, "mean_of_all": 2}
    champion_benchmark.print_shared_errors(errors, 3)
    assert capsys.readouterr().out.strip() == (
        "Test digits missed by the 3 weighed candidates: by every one 0, by at least half 1, by any 4; by the mean of all 1."
    )


def test_champion_benchmark_needs_seeds_unless_it_reports_a_sweep_done(champion_benchmark, capsys):
    with pytest.raises(SystemExit):
        champion_benchmark.main(["--preset", "fast"])
    assert "--seeds is required" in capsys.readouterr().err


def test_champion_benchmark_report_refuses_a_directory_without_a_sweep(champion_benchmark, tmp_path, capsys):
    assert champion_benchmark.main(["--report", str(tmp_path)]) == 1
    error = capsys.readouterr().err.strip().splitlines()[0]
    assert f"--report {tmp_path}: expected the work directory of a sweep" in error and "found none" in error


@pytest.mark.parametrize(
    "network, options",
    [("best_zoom", {}), ("strided", {}), ("wide", {}), ("best", {"elastic": "1"}),
     ("best", {"label-smoothing": "0.1", "weight-decay": "0.05"})],  # fmt: skip
)
def test_recipe_probe_trains_on_the_sweep_s_split_and_saves_its_probabilities(network, options, tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = tmp_path / "scaled_mnist.npz"
    np.savez(data, train_images=rng.random((200, 28, 28), dtype=np.float32), train_labels=rng.integers(0, 10, 200),
             test_images=rng.random((30, 28, 28), dtype=np.float32), test_labels=rng.integers(0, 10, 30))  # fmt: skip
    out = tmp_path / "probabilities.npz"
    probe = load_script("recipe_probe")
    flags = [part for name, value in options.items() for part in (f"--{name}", value)]
    assert probe.main([network, "--epochs", "1", "--batch-size", "60", *flags, "--data", str(data), "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    shown = {name: options.get(name, "0") for name in ("elastic", "label-smoothing", "weight-decay")}
    assert re.fullmatch(
        rf"{network} epochs=1 seed=0 elastic={shown['elastic']} label_smoothing={shown['label-smoothing']} "
        rf"weight_decay={shown['weight-decay']} parameters=\d+ validation=\d\.\d{{4}} test=\d\.\d{{4}} training=\d+ s "
        r"\(before batch normalisation was measured again: validation=\d\.\d{4} test=\d\.\d{4}\)",
        line,
    )
    saved = np.load(out, allow_pickle=False)
    _, validation = validation_split(200, probe.VALIDATION_FRACTION, probe.SWEEP_VALIDATION_SEED)
    assert saved["val"].shape == (len(validation), 10) and saved["test"].shape == (30, 10)
    np.testing.assert_allclose(saved["test"].sum(axis=1), 1.0, rtol=1e-5)


def bar_images(count: int) -> np.ndarray:
    """A vertical bar at a different place in each image: something to bend."""
    images = np.zeros((count, 28, 28), dtype=np.float32)
    for i in range(count):
        images[i, 6:22, 10 + i % 6 : 14 + i % 6] = 1.0
    return images


def test_the_probe_s_elastic_distortion_is_decided_by_its_seed_and_differs_per_image():
    import tensorflow as tf

    probe = load_script("recipe_probe")
    images = tf.constant(bar_images(8))
    first, again, other = (np.asarray(probe.elastic_distort(images, tf.constant(seed, tf.int64), 1.0))
                           for seed in ((3, 17), (3, 17), (3, 18)))  # fmt: skip
    assert np.array_equal(first, again) and not np.allclose(first, other)
    same = np.asarray(probe.elastic_distort(tf.constant(np.repeat(bar_images(1), 2, axis=0)), tf.constant((1, 2), tf.int64), 1.0))
    assert not np.allclose(same[0], same[1])
    assert first.min() >= 0.0 and first.max() <= 1.0 and np.all(np.abs(first - bar_images(8)).mean(axis=(1, 2)) > 0.01)


def test_the_probe_s_elastic_distortion_moves_rows_and_columns_independently_by_simards_amount():
    """Keras's RandomElasticTransform (3.15.1) draws one noise for both, which moves every pixel along the diagonal."""
    import tensorflow as tf

    probe = load_script("recipe_probe")
    field = np.asarray(probe.displacement_field(64, 28, 28, tf.constant((0, 1), tf.int64), 1.0))[:, 8:20, 8:20]
    rows, columns = field[..., 0].ravel(), field[..., 1].ravel()
    assert abs(np.corrcoef(rows, columns)[0, 1]) < 0.1
    assert 1.5 < np.hypot(rows, columns).mean() < 2.0  # 1.7 pixels: the figure the probe's docstring gives


@pytest.mark.parametrize(
    ("row", "column", "expected"),
    [(5.0, 7.0, 5 * 28 + 7), (5.5, 7.0, 5 * 28 + 7 + 14), (5.0, 7.25, 5 * 28 + 7.25), (-3.0, 7.0, 0.0), (5.0, 40.0, 0.0), (27.5, 27.0, (27 * 28 + 27) / 2)],
)
def test_the_probe_s_resampling_reads_between_pixels_and_black_outside(row, column, expected, monkeypatch):
    """With the displacement field held constant, each output pixel is the image read at that fractional position."""
    import tensorflow as tf

    probe = load_script("recipe_probe")
    grid_rows, grid_columns = np.mgrid[0:28, 0:28].astype(np.float32)
    shift = np.stack([row - grid_rows, column - grid_columns], axis=-1)[None]  # every pixel reads (row, column)
    monkeypatch.setattr(probe, "displacement_field", lambda *args: tf.constant(shift))
    image = np.arange(28 * 28, dtype=np.float32).reshape(1, 28, 28)
    assert np.asarray(probe.elastic_distort(tf.constant(image), None, 1.0))[0, 0, 0] == pytest.approx(expected)


def test_champion_benchmark_weighs_a_probe_as_one_more_member(champion_benchmark, capsys):
    labels = np.array([0, 1, 2, 3])
    first, second = np.eye(4)[[0, 1, 1, 0]] * 0.6 + 0.1, np.eye(4)[[0, 2, 2, 0]] * 0.6 + 0.1  # both miss digit 3
    probe = np.eye(4)[[1, 1, 2, 3]]  # sure, and right but on digit 0
    figures = champion_benchmark.probe_as_member([first, second], [first, second], probe, probe, labels, labels)
    # Without it: digits 0 and 1 right (on 1 and 2 the two tie, and argmax takes the lower class); with it, 0, 1, 2.
    assert figures["alone"] == (0.75, 0.75)
    assert figures["without"] == (0.5, 0.5) and figures["with"] == (0.75, 0.75)
    assert figures["missed_by_every"] == 1 and figures["of_those_right"] == 1
    champion_benchmark.print_probe("probe.npz", figures, 2)
    assert capsys.readouterr().out.strip() == (
        "probe.npz: alone 75.00% / 75.00%; the mean of 2 50.00% / 50.00%, with it 75.00% / 75.00%; "
        "of the 1 test digits every candidate misses, it gets 1 right"
    )


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"val": np.zeros((6, 10)), "test": np.zeros((4, 10))}, r"expected val of shape \(5, 10\) \(this sweep's shared validation images x 10 classes\), found \(6, 10\)"),
        ({"val": np.zeros((5, 10))}, r"expected the \.npz of `recipe_probe\.py --out` \(arrays val and test\), found: "),
        (np.zeros((5, 10)), r"expected the \.npz of `recipe_probe\.py --out` \(arrays val and test\), found: "),  # a .npy
        (None, r"expected the \.npz of `recipe_probe\.py --out` \(arrays val and test\), found: .*No such file"),
    ],
)
def test_champion_benchmark_refuses_a_probe_file_that_does_not_fit_the_sweep(champion_benchmark, tmp_path, arrays, message):
    path = tmp_path / "probe.npz"
    if isinstance(arrays, dict):
        np.savez(path, **arrays)
    elif arrays is not None:
        with open(path, "wb") as file:  # np.save would add .npy to the name
            np.save(file, arrays)
    with pytest.raises(SystemExit, match=rf"--with-probe {path}: {message}"):
        champion_benchmark.read_probe(path, 5, 4)


def test_champion_benchmark_takes_a_probe_only_with_a_report(champion_benchmark, tmp_path, capsys):
    with pytest.raises(SystemExit):
        champion_benchmark.main(["--seeds", "0", "--with-probe", str(tmp_path / "probe.npz")])
    assert "--with-probe needs --report WORK" in capsys.readouterr().err


def test_champion_benchmark_pools_sweeps_and_draws_means_from_the_pool(champion_benchmark):
    labels = np.array([0, 1, 2, 3])
    right, wrong_on_last = np.eye(4)[[0, 1, 2, 3]], np.eye(4)[[0, 1, 2, 0]]
    members = [right, right, wrong_on_last, wrong_on_last * 0.9 + 0.025]
    whole = champion_benchmark.pooled_means(members, members, labels, labels, size=4)
    # On the last digit two members are right and two wrong, one of those less sure: the mean of all four is right
    # (2.025 against 1.925, summed), and the whole pool is one draw.
    assert whole["draws"] == 1 and whole["test"] == 1.0 and whole["test_sd"] == 0.0
    pairs = champion_benchmark.pooled_means(members, members, labels, labels, size=1, draws=400)
    # One member drawn: right on all 4 digits half the time, on 3 of 4 the other half.
    assert pairs["draws"] == 400 and pairs["test"] == pytest.approx(0.875, abs=0.02)
    assert pairs["share_at_target"] == pytest.approx(0.5, abs=0.08) and pairs["test_sd"] == pytest.approx(0.125, abs=0.01)
    assert champion_benchmark.pooled_means(members, members, labels, labels, size=1, draws=50)["test"] == (
        champion_benchmark.pooled_means(members, members, labels, labels, size=1, draws=50)["test"]
    )  # seeded: the same draws every time


@pytest.mark.parametrize("argv", [["--pool", "a"], ["--pool", "a", "--pool", "b", "--report", "c"], ["--pool", "a", "--pool", "b", "--seeds", "0-2"]])
def test_champion_benchmark_pool_takes_two_or_more_sweeps_and_nothing_else(champion_benchmark, argv, capsys):
    with pytest.raises(SystemExit):
        champion_benchmark.main(argv)
    assert "--pool takes two or more sweeps done" in capsys.readouterr().err


def test_champion_benchmark_pool_refuses_a_directory_without_a_sweep(champion_benchmark, tmp_path, capsys):
    assert champion_benchmark.main(["--pool", str(tmp_path), "--pool", str(tmp_path)]) == 1
    assert f"--pool {tmp_path}: expected the work directory of a sweep" in capsys.readouterr().err
