"""Each rule is decided in one place: the rule functions directly, and every caller reaching the same verdict through them."""

import dagster as dg
import numpy as np
import pytest

from mnist_pipeline import paths
from mnist_pipeline.defs.data.resources import MnistSource
from mnist_pipeline.defs.evaluation.checks import accuracy_gate
from mnist_pipeline.defs.evaluation.gates import QualityGates
from mnist_pipeline.defs.serving.resources import ServedModel
from mnist_pipeline.defs.evaluation.resources import EvaluationRecordsResource
from mnist_pipeline.defs.model.checks import trained_weights_finite
from mnist_pipeline.defs.model.resources import ModelRegistryResource
from mnist_pipeline.defs.serving.assets import Promotion, production_model
from mnist_pipeline.ml.data import quality
from mnist_pipeline.ml.data.dataset import DatasetError, DigitDataset, IDX_FILE_NAMES, structure_problems, validate_structure
from mnist_pipeline.ml.data.sources import read_idx_directory
from mnist_pipeline.ml.evaluation.gate import meets_accuracy_gate
from mnist_pipeline.ml.model.trained import TrainedModel
from mnist_pipeline.ml.model.weights import weights_finite
from mnist_pipeline.registry.evaluations import EvaluationRecords
from mnist_pipeline.registry.promotion import PromotionRefused
from mnist_pipeline.registry.store import ModelRegistry
from mnist_pipeline_tests.synthetic import make_dataset, write_idx_dir
from mnist_pipeline_tests.registry_support import run_manifest, tiny_model

# --- the accuracy gate ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "accuracy, threshold, passes",
    [(0.97, 0.97, True), (0.991, 0.97, True), (0.9699, 0.97, False), (0.0, 0.0, True), (1.0, 1.0, True), (0.5, 0.51, False)],
)
def test_the_accuracy_gate(accuracy, threshold, passes):
    assert meets_accuracy_gate(accuracy, threshold) == (passes, f"expected test accuracy >= {threshold:.4f}, found {accuracy:.4f}")


@pytest.fixture
def evaluated_below_the_gate(tmp_path):
    """A registered model evaluated at 0.95: below the default gate of 0.97."""
    registry = ModelRegistry(tmp_path / "registry")
    model = tiny_model()
    registry.register("v1", model, run_manifest())
    EvaluationRecords(tmp_path / "evaluations").write("v1", {"model_version": "v1", "test_accuracy": 0.95})
    return registry, model


def serve(registry: ModelRegistry, gates: QualityGates, evaluations_root) -> dg.Output:
    """production_model run as Dagster runs it, asked to serve version v1."""
    with dg.instance_for_test() as instance:
        return production_model(
            dg.build_asset_context(instance=instance),
            config=Promotion(version="v1"),
            quality_gates=gates,
            served_model=ServedModel(source="main"),
            model_registry=ModelRegistryResource(root=str(registry.root)),
            evaluation_records=EvaluationRecordsResource(root=str(evaluations_root)),
        )


REFUSED = "expected test accuracy >= 0.9700, found 0.9500"


def test_the_check_and_the_serving_step_refuse_the_same_model_with_the_same_message(evaluated_below_the_gate, tmp_path):
    registry, model = evaluated_below_the_gate
    assert meets_accuracy_gate(0.95, 0.97) == (False, REFUSED)
    # The blocking check, evaluated as Dagster evaluates it.
    checked = accuracy_gate(evaluation_metrics={"test_accuracy": 0.95}, quality_gates=QualityGates())
    assert (checked.passed, checked.description) == (False, REFUSED)
    # The serving step, run as Dagster runs it, on the same model: refused with the same verdict.
    with pytest.raises(PromotionRefused) as refused:
        serve(registry, QualityGates(), tmp_path / "evaluations")
    assert str(refused.value) == f"model v1: {REFUSED}"
    assert not (tmp_path / "storage" / "production_model.json").exists()


def test_the_check_and_the_serving_step_pass_the_same_model_at_a_lower_threshold(evaluated_below_the_gate, tmp_path):
    registry, model = evaluated_below_the_gate
    gates = QualityGates(min_test_accuracy="0.95")
    checked = accuracy_gate(evaluation_metrics={"test_accuracy": 0.95}, quality_gates=gates)
    assert (checked.passed, checked.description) == (True, "expected test accuracy >= 0.9500, found 0.9500")
    served = serve(registry, gates, tmp_path / "evaluations")
    assert served.value["version"] == "v1"


# --- the weight check -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "weights, passes, found",
    [
        ([np.ones(3, np.float32), np.zeros((2, 2), np.float32)], True, "every weight is finite"),
        ([np.ones(3, np.float32), np.array([1.0, np.inf, np.nan], np.float32)], False, "{1: 2}"),
        ([np.array([-np.inf], np.float32)], False, "{0: 1}"),
        ([], True, "every weight is finite"),
    ],
)
def test_the_weight_check(weights, passes, found):
    passed, message = weights_finite(weights)
    assert passed is passes and found in message


def test_the_weight_check_and_the_serving_step_refuse_the_same_model(tmp_path):
    model = tiny_model()
    model.set_weights([np.full_like(w, np.nan) if i == 0 else w for i, w in enumerate(model.get_weights())])
    expected = f"expected every weight finite, found non-finite values in weight arrays {{0: {model.get_weights()[0].size}}}"
    checked = trained_weights_finite(trained_model=TrainedModel(model, {}))
    assert (checked.passed, checked.description) == (False, expected)
    registry = ModelRegistry(tmp_path / "registry")
    registry.register("v1", model, run_manifest())
    EvaluationRecords(tmp_path / "evaluations").write("v1", {"model_version": "v1", "test_accuracy": 0.99})
    with pytest.raises(PromotionRefused) as refused:
        serve(registry, QualityGates(min_test_accuracy="0"), tmp_path / "evaluations")
    assert str(refused.value) == f"model v1: {expected}"


# --- IDX structure --------------------------------------------------------------------------


def with_arrays(dataset: DigitDataset, **arrays) -> DigitDataset:
    return DigitDataset(**{**dataset.arrays(), **arrays})


ARRAY_NAMES = {name: name for name in IDX_FILE_NAMES}


def bad_labels(dataset):
    labels = dataset.test_labels.copy()
    labels[5] = 12
    return with_arrays(dataset, test_labels=labels)


@pytest.mark.parametrize(
    "damage, check, problem",
    [
        (bad_labels, quality.labels_in_range, "test_labels: expected labels in 0..9, found 12 at index 5 (1 out of range)"),
        (
            lambda d: with_arrays(d, test_images=np.zeros((100, 32, 32), np.uint8)),
            quality.shapes,
            "test_images: expected images of shape (N, 28, 28), found (100, 32, 32)",
        ),
        (
            lambda d: with_arrays(d, train_labels=d.train_labels[:-1]),
            lambda d: quality.counts(d, None),
            "train_images holds 300 images but train_labels holds 299 labels: expected the same count",
        ),
    ],
)
def test_the_reader_and_the_data_checks_find_the_same_structural_problem(tmp_path, damage, check, problem):
    dataset = damage(make_dataset())
    assert structure_problems(dataset, ARRAY_NAMES) == [problem]
    assert check(dataset) == (False, problem)  # the raw_mnist check names the array
    directory = write_idx_dir(dataset, tmp_path / "idx")
    files = {name: str(directory / file) for name, file in IDX_FILE_NAMES.items()}
    in_files = structure_problems(dataset, files)
    named_by_file = problem
    for name in ARRAY_NAMES:
        named_by_file = named_by_file.replace(name, files[name])
    assert in_files == [named_by_file]
    for read in (lambda: validate_structure(dataset, files), lambda: read_idx_directory(directory)):
        with pytest.raises(DatasetError) as raised:
            read()
        assert str(raised.value) == in_files[0]  # the reader names the file


def test_a_sound_dataset_has_no_structural_problem():
    dataset = make_dataset()
    assert structure_problems(dataset, ARRAY_NAMES) == []
    assert quality.labels_in_range(dataset)[0] and quality.shapes(dataset)[0] and quality.counts(dataset, None)[0]


# --- the directory fallback -----------------------------------------------------------------


@pytest.mark.parametrize("configured", [None, ""])
def test_an_unconfigured_directory_is_the_default(tmp_path, configured):
    assert paths.configured_dir(configured, lambda: tmp_path / "default") == tmp_path / "default"


def test_a_configured_directory_is_made_absolute_and_the_default_is_not_asked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    def never() -> None:
        raise AssertionError("the default was asked for although a directory is configured")

    assert paths.configured_dir("relative/dir", never) == tmp_path / "relative" / "dir"
    assert paths.configured_dir("~/x", never) == tmp_path / "home" / "x"


def test_every_directory_field_uses_the_one_fallback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNIST_STORAGE_DIR", str(tmp_path / "storage"))
    monkeypatch.setenv("MNIST_CACHE_DIR", str(tmp_path / "cache"))
    from mnist_pipeline.defs.io_managers import NpzIOManager
    from mnist_pipeline.defs.model.resources import TrainingCheckpoints

    assert NpzIOManager().storage_dir() == tmp_path / "storage"
    assert NpzIOManager(base_dir="s").storage_dir() == tmp_path / "s"
    assert ModelRegistryResource().registry().root == tmp_path / "storage" / "model_registry"
    assert ModelRegistryResource(root="r").registry().root == tmp_path / "r"
    assert TrainingCheckpoints().root_dir() == tmp_path / "storage" / "training_checkpoints"
    assert TrainingCheckpoints(root="c").root_dir() == tmp_path / "c"
    assert MnistSource().resolved_cache_dir() == tmp_path / "cache"
    assert MnistSource(cache_dir="m").resolved_cache_dir() == tmp_path / "m"
    assert EvaluationRecordsResource().records().root == tmp_path / "storage" / "evaluation_metrics.by_model_version"
    assert EvaluationRecordsResource(root="e").records().root == tmp_path / "e"


def test_misshapen_labels_are_reported_as_such_not_counted_or_indexed():
    dataset = make_dataset()
    labels = np.full((dataset.num_test, 2), 12, np.uint8)  # two-dimensional, and out of range
    bad = with_arrays(dataset, test_labels=labels)
    assert structure_problems(bad, ARRAY_NAMES) == [f"test_labels: expected labels of shape (N,), found ({dataset.num_test}, 2)"]
