"""Pure functions behind the assets, tested without Dagster or Keras."""

import numpy as np
import pytest

from mnist_pipeline.ml.data.preprocessing import class_counts, scale_images
from mnist_pipeline.ml.evaluation.metrics import confusion_matrix, precision_recall
from mnist_pipeline.ml.evaluation.predictions import PROBABILITY_COLUMNS, build_predictions_table
from mnist_pipeline.ml.model.split import validation_split


@pytest.mark.parametrize(
    "pixel, expected",
    [(0, 0.0), (255, 1.0), (51, 0.2), (128, 128 / 255)],
)
def test_scale_images_values(pixel, expected):
    scaled = scale_images(np.full((1, 28, 28), pixel, dtype=np.uint8))
    assert scaled.dtype == np.float32
    assert scaled[0, 0, 0] == pytest.approx(expected, abs=1e-7)


def test_class_counts_include_absent_classes():
    assert class_counts(np.array([1, 1, 3], dtype=np.uint8), [str(d) for d in range(10)]) == {
        "0": 0, "1": 2, "2": 0, "3": 1, "4": 0, "5": 0, "6": 0, "7": 0, "8": 0, "9": 0,
    }
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    assert list(class_counts(np.array([9], dtype=np.uint8), names).items())[-2:] == [("Bag", 0), ("Ankle boot", 1)]


@pytest.mark.parametrize(
    "true, predicted, expected_precision, expected_recall",
    [
        ([0, 1, 2], [0, 1, 2], [1, 1, 1], [1, 1, 1]),
        ([0, 0, 1, 1], [0, 1, 1, 1], [1, 2 / 3, 0], [0.5, 1, 0]),
        ([2, 2], [0, 0], [0, 0, 0], [0, 0, 0]),
    ],
)
def test_precision_recall(true, predicted, expected_precision, expected_recall):
    matrix = confusion_matrix(np.array(true), np.array(predicted), num_classes=3)
    precision, recall = precision_recall(matrix)
    np.testing.assert_allclose(precision, expected_precision)
    np.testing.assert_allclose(recall, expected_recall)


def test_confusion_matrix_layout():
    matrix = confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 2, 1, 2]), num_classes=3)
    np.testing.assert_array_equal(matrix, [[1, 0, 1], [0, 1, 0], [0, 0, 1]])


def test_confusion_matrix_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match=r"same shape, found \(3,\) and \(2,\)"):
        confusion_matrix(np.array([0, 1, 2]), np.array([0, 1]))


def test_predictions_table_columns_and_values():
    probabilities = np.zeros((3, 10), dtype=np.float32)
    probabilities[0, 7] = 0.9
    probabilities[0, 1] = 0.1
    probabilities[1, 2] = 1.0
    probabilities[2, 3] = 0.6
    probabilities[2, 5] = 0.4
    table = build_predictions_table(probabilities, np.array([7, 2, 5], dtype=np.uint8))
    assert list(table.columns) == [
        "index", "true_label", "predicted_label", "true_class", "predicted_class", "confidence", *PROBABILITY_COLUMNS, "correct",
    ]
    assert table["predicted_label"].tolist() == [7, 2, 3]
    assert table["true_class"].tolist() == ["7", "2", "5"] and table["predicted_class"].tolist() == ["7", "2", "3"]
    assert table["correct"].tolist() == [True, True, False]
    assert table["confidence"].tolist() == pytest.approx([0.9, 1.0, 0.6])
    assert table["prob_5"].tolist() == pytest.approx([0.0, 0.0, 0.4])


@pytest.mark.parametrize("shape", [(3, 9), (3,), (2, 10)])
def test_predictions_table_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="expected"):
        build_predictions_table(np.zeros(shape, dtype=np.float32), np.zeros(3, dtype=np.uint8))


@pytest.mark.parametrize("num, fraction, expected_val", [(60000, 0.1, 6000), (300, 0.2, 60), (10, 0.15, 2)])
def test_validation_split_sizes_and_disjointness(num, fraction, expected_val):
    train, val = validation_split(num, fraction, seed=3)
    assert len(val) == expected_val
    assert len(train) + len(val) == num
    assert np.intersect1d(train, val).size == 0


def test_validation_split_is_seeded():
    a_train, a_val = validation_split(1000, 0.1, seed=1)
    b_train, b_val = validation_split(1000, 0.1, seed=1)
    c_train, c_val = validation_split(1000, 0.1, seed=2)
    np.testing.assert_array_equal(a_val, b_val)
    assert not np.array_equal(a_val, c_val)


def test_validation_split_needs_both_parts():
    with pytest.raises(ValueError, match=r"validation_fraction: 0.01 of 10 training images leaves 0 for validation"):
        validation_split(10, 0.01, seed=0)


def test_evaluate_agrees_with_its_own_predictions(synthetic_dataset):
    """Keras's accuracy and the confusion matrix count the same predictions; precision and recall follow from it."""
    import keras

    from mnist_pipeline.ml.data.preprocessing import scale_images
    from mnist_pipeline.ml.evaluation.evaluate import evaluate, predict_probabilities

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    images, labels = scale_images(synthetic_dataset.test_images), synthetic_dataset.test_labels
    evaluation = evaluate(model, images, labels)
    predicted = predict_probabilities(model, images).argmax(axis=1)
    assert evaluation.confusion_matrix.sum() == len(labels)
    assert np.trace(evaluation.confusion_matrix) == int((predicted == labels).sum())
    assert abs(evaluation.test_accuracy - float((predicted == labels).mean())) < 1e-6
    assert set(evaluation.as_metrics()) == {"test_loss", "test_accuracy", "precision", "recall", "confusion_matrix"}


def test_evaluate_gives_keras_loss_and_accuracy_from_one_prediction_and_needs_no_compiled_model(synthetic_dataset):
    """The loss and accuracy come from the predicted probabilities (no second pass through model.evaluate).

    Keras's evaluate, on the same model compiled, is the reference: equal to float32 rounding. The model
    given to evaluate is not compiled, which Keras's evaluate refuses: only predict is called.
    """
    import keras

    from mnist_pipeline.ml.data.preprocessing import scale_images
    from mnist_pipeline.ml.evaluation.evaluate import evaluate

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    images, labels = scale_images(synthetic_dataset.test_images), synthetic_dataset.test_labels
    evaluation = evaluate(model, images, labels)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    keras_loss, keras_accuracy = model.evaluate(images, labels, batch_size=1000, verbose=0)
    assert evaluation.test_loss == pytest.approx(keras_loss, rel=1e-5)
    assert evaluation.test_accuracy == pytest.approx(keras_accuracy, abs=1e-6)


def test_sparse_crossentropy_clips_certain_mistakes_as_keras_does():
    """A probability of exactly 0 for the true class costs -log(1e-7) after renormalising, as in Keras, not infinity."""
    import keras

    from mnist_pipeline.ml.evaluation.evaluate import sparse_crossentropy

    probabilities = np.array([[1.0, 0.0, 0.0], [0.2, 0.5, 0.3], [0.0, 0.0, 1.0]], dtype=np.float32)
    labels = np.array([1, 1, 2])
    expected = float(np.mean(keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(labels, probabilities))))
    assert sparse_crossentropy(probabilities, labels) == pytest.approx(expected, rel=1e-5)
    assert sparse_crossentropy(probabilities, labels) == pytest.approx((-np.log(1e-7 / (1 + 1e-7)) - np.log(0.5)) / 3, rel=1e-5)


def test_sparse_crossentropy_names_what_it_expected_for_mismatched_shapes():
    from mnist_pipeline.ml.evaluation.evaluate import sparse_crossentropy

    with pytest.raises(ValueError, match=r"expected probabilities of shape \(N, classes\) for 3 labels, found \(2, 10\)"):
        sparse_crossentropy(np.full((2, 10), 0.1), np.array([0, 1, 2]))
