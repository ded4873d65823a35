"""The benchmark's pieces: the bare Keras baseline matches the pipeline's default, and the harness measures and judges.

No timing targets here: those are for benchmarks/run.py on a known machine.
"""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from mnist_pipeline.model.split import validation_split

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
    from mnist_pipeline.model.network import build_tutorial_model

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
    written = {path.name for path in out.iterdir()}
    assert {"trained_model.keras", "evaluation_metrics.json", "predictions_table.parquet", "confusion_matrix.png"} <= written


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


def fabricated_results(pipeline_wall: float, pipeline_rss: float, step_seconds: float, import_s: float) -> dict:
    bare = {"wall_s": 60.0, "cpu_s": 100.0, "peak_rss_mib": 1400.0, "test_accuracy": 0.9761, "training_seconds": 50.0,
            "images_per_second": 10800.0, "prediction_seconds": 0.3}
    pipeline = {"wall_s": pipeline_wall, "cpu_s": 102.0, "peak_rss_mib": pipeline_rss, "test_accuracy": 0.9761, "training_seconds": 50.0,
                "images_per_second": 10800.0, "train_images": 54000, "prediction_seconds": 0.3,
                "prediction_step_seconds": step_seconds, "steps": {"raw_mnist": 0.2, "trained_model": 51.0}}
    return {
        "date": "2026-01-01", "machine": "test machine", "versions": "none", "load_before": "0", "load_after": "0",
        "startup": {"median_s": import_s, "min_s": import_s, "max_s": import_s, "tensorflow_imported": False},
        "comparison": {"recipe": {"epochs": 10, "batch_size": 32, "optimizer": "sgd", "learning_rate": 0.01,
                                  "validation_fraction": 0.1, "seed": 0}, "bare": bare, "pipeline": pipeline},
        "presets": {
            "fast": [{"seed": s, "test_accuracy": a, "val_accuracy": 0.99, "training_seconds": 9.0, "epochs": 3,
                      "batch_size": 120} for s, a in enumerate([0.991, 0.992, 0.993])],
            "best": [{"seed": 0, "test_accuracy": 0.994, "val_accuracy": 0.993, "training_seconds": 200.0,
                      "epochs": 15, "batch_size": 120}],
        },
    }


def rows(text: str) -> dict[str, str]:
    return {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}


def test_report_passes_what_meets_the_targets(harness):
    table = rows(harness.report(fabricated_results(65.9, 1500.0, 1.5, 1.2), "./scripts/benchmark"))
    assert table["wall time, launch to exit"].endswith("| PASS |")  # 60 s + 10% = 66 s allowed
    assert table["peak memory (RSS)"].endswith("| PASS |")
    assert table["predict 10,000 test images and build the table"].endswith("| PASS |")
    assert table["import `mnist_pipeline.definitions` (median of 5)"].endswith("| PASS |")
    assert table["fast"].endswith("| PASS |")
    assert "| 99.20% ± 0.10 (99.10–99.30) |" in table["fast"]
    assert table["best"].endswith("| **FAIL** |")  # 99.4% < 99.5%


def test_report_fails_what_misses_the_targets(harness):
    table = rows(harness.report(fabricated_results(66.1, 1600.0, 2.1, 1.6), "./scripts/benchmark"))
    for row in ("wall time, launch to exit", "peak memory (RSS)", "predict 10,000 test images and build the table",
                "import `mnist_pipeline.definitions` (median of 5)"):
        assert table[row].endswith("| **FAIL** |"), row


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
