"""Comparing two models: McNemar's exact test, per-class accuracy, and `mnist-pipeline models compare A B`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mnist_pipeline.ml.evaluation.comparison import compare_predictions, mcnemar_exact, per_class_accuracy


@pytest.mark.parametrize(
    "only_a_right, only_b_right, p_value",
    [
        (10, 2, 2 * (1 + 12 + 66) / 2**12),  # 2 * P(X <= 2), X ~ binomial(12, 1/2)
        (2, 10, 2 * (1 + 12 + 66) / 2**12),  # symmetric
        (6, 0, 2 / 2**6),
        (3, 1, 2 * (1 + 4) / 2**4),
        (5, 5, 1.0),  # an even split: capped at 1
        (0, 0, 1.0),  # never exactly one right
    ],
)
def test_mcnemar_exact_p_value(only_a_right, only_b_right, p_value):
    test = mcnemar_exact(only_a_right, only_b_right)

    assert test.p_value == pytest.approx(p_value, rel=1e-12)
    assert test.significant == (p_value < 0.05)


def test_mcnemar_at_mnist_sizes_stays_exact_and_tiny():
    assert 0 < mcnemar_exact(600, 400).p_value < 1e-9  # a float, not an overflow


def test_mcnemar_refuses_negative_counts():
    with pytest.raises(ValueError, match="expected counts of at least 0, found -1 and 2"):
        mcnemar_exact(-1, 2)


def test_per_class_accuracy_is_the_share_of_each_class_predicted_right_and_nan_for_an_absent_class():
    accuracy = per_class_accuracy(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 0]), num_classes=4)

    np.testing.assert_array_equal(accuracy[:3], [0.5, 1.0, 0.0])
    assert np.isnan(accuracy[3])


def test_compare_predictions_pairs_the_two_models_image_by_image():
    labels = np.array([0, 1, 2, 3, 4])
    result = compare_predictions(labels, np.array([0, 1, 2, 0, 0]), np.array([0, 1, 0, 3, 1]), num_classes=5)

    assert (result.accuracy_a, result.accuracy_b) == (0.6, 0.6)
    np.testing.assert_array_equal(result.disagreements, [2, 3, 4])
    assert (result.mcnemar.only_a_right, result.mcnemar.only_b_right) == (1, 1)


def test_compare_predictions_refuses_unpaired_predictions():
    with pytest.raises(ValueError, match=r"one prediction of each model per test image, found \(2,\) and \(3,\) for \(3,\) labels"):
        compare_predictions(np.zeros(3, int), np.zeros(2, int), np.zeros(3, int), num_classes=10)


def models_command(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "mnist_pipeline", "models", *args], capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
def test_models_compare_reports_what_the_two_registered_models_predict(tmp_path, idx_dir, monkeypatch, synthetic_dataset):
    import keras

    from mnist_pipeline.defs.resources import resources_for_env
    from mnist_pipeline.ml.content_versions import model_version
    from mnist_pipeline.ml.data.preprocessing import scale_images

    monkeypatch.setenv("MNIST_DATA_DIR", str(idx_dir))
    registry = resources_for_env()["model_registry"].registry()
    images, labels = scale_images(synthetic_dataset.test_images), synthetic_dataset.test_labels
    versions, predicted = [], []
    for seed in (0, 1):  # two different networks: untrained, so they disagree on many images
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
        version = model_version(model)
        registry.register(version, model, {"run_id": f"run-{seed}", "hyperparameters": {}, "code_version": "c"})
        versions.append(version)
        predicted.append(model.predict(images, verbose=0).argmax(axis=1))
    figure = tmp_path / "figures" / "disagreements.png"

    result = models_command("compare", *versions, "--json", "--figure", str(figure))

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    a, b = versions
    assert summary["test_accuracy"] == {a: pytest.approx((predicted[0] == labels).mean()), b: pytest.approx((predicted[1] == labels).mean())}
    assert summary["disagreements"] == int((predicted[0] != predicted[1]).sum()) > 0
    assert summary["only_a_right"] == int(((predicted[0] == labels) & (predicted[1] != labels)).sum())
    assert summary["per_class_accuracy"]["3"][a] == pytest.approx((predicted[0][labels == 3] == 3).mean())
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    unknown = models_command("compare", a, "0000000000000000")
    assert unknown.returncode == 1
    assert "expected a registered model version '0000000000000000', found none" in unknown.stderr.strip().splitlines()[-1]
