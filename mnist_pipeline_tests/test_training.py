"""Training's execution details: the device it runs on, steps per call into TensorFlow, and that they leave the weights alone."""

import numpy as np
import pytest

from mnist_pipeline.ml.data.preprocessing import scale_images
from mnist_pipeline.ml.model import training
from mnist_pipeline.ml.model.device import device_label, training_device
from mnist_pipeline.ml.model.network import build_tutorial_model, compile_model
from mnist_pipeline_tests.synthetic import make_dataset


@pytest.mark.parametrize(
    "gpu_names, expected",
    [
        ([], "CPU"),
        (["NVIDIA A10G"], "GPU:0 (NVIDIA A10G)"),
        (["NVIDIA L4", "NVIDIA L4"], "GPU:0 (NVIDIA L4), the first of 2 GPUs"),
    ],
)
def test_device_label_names_the_one_device_that_trains(gpu_names, expected):
    assert device_label(gpu_names) == expected


def test_training_device_is_the_cpu_on_a_machine_without_a_gpu():
    """This machine has no GPU (and tensorflow-cpu is no CUDA build): TensorFlow trains on the CPU."""
    assert training_device() == "CPU"


@pytest.mark.parametrize(
    "steps_per_epoch, expected",
    [(1688, 8), (450, 15), (16, 16), (32, 16), (17, 1), (1, 1)],
)
def test_steps_per_call_is_the_largest_divisor_up_to_the_cap(steps_per_epoch, expected):
    chosen = training.steps_per_call(steps_per_epoch)
    assert chosen == expected
    assert steps_per_epoch % chosen == 0 and chosen <= training.MAX_STEPS_PER_CALL


def fitted_weights(tmp_path, name: str) -> tuple[list[np.ndarray], dict]:
    data = make_dataset(num_train=96, num_test=10)
    images = scale_images(data.train_images)
    model = compile_model(build_tutorial_model(seed=1), "sgd", 0.05)
    model, history = training.fit_resumably(
        model, images, data.train_labels, np.arange(16, 96), np.arange(16),
        epochs=2, batch_size=10, seed=1, checkpoint_dir=tmp_path / name, log=lambda message: None,
    )
    return model.get_weights(), history


@pytest.mark.slow
def test_several_steps_per_call_give_the_same_weights_as_one(tmp_path, monkeypatch):
    several, history_several = fitted_weights(tmp_path, "several")  # 8 steps an epoch: all 8 in one call
    monkeypatch.setattr(training, "steps_per_call", lambda steps_per_epoch: 1)
    one, history_one = fitted_weights(tmp_path, "one")
    assert history_several == history_one
    for a, b in zip(several, one):
        assert a.tobytes() == b.tobytes()


def test_training_logs_no_tensorflow_error_line(tmp_path, capfd):
    """Keras slices held-out tensors with a parallel map; under op determinism TensorFlow logged an error-level
    line about it (E0000 ... use_unbounded_threadpool) in every training, which a user reads as a failure."""
    fitted_weights(tmp_path, "quiet")
    logged = capfd.readouterr().err
    assert "E0000" not in logged and "use_unbounded_threadpool" not in logged
