"""Which device trains the model: the first GPU TensorFlow sees, else the CPU.

Nothing in the project chooses a device: TensorFlow places the model's ops on
`GPU:0` when it sees a GPU (a CUDA build of TensorFlow, the `gpu` extra, a
driver) and on the CPU otherwise. Training uses one device (no distribution
strategy), so on a machine with several GPUs only the first trains.

Imports TensorFlow: import this module inside asset bodies only.
"""

from __future__ import annotations


def device_label(gpu_names: list[str]) -> str:
    """"CPU" without a GPU; else "GPU:0 (<its name>)", with how many GPUs were seen when more than one."""
    if not gpu_names:
        return "CPU"
    label = f"GPU:0 ({gpu_names[0]})"
    return label if len(gpu_names) == 1 else f"{label}, the first of {len(gpu_names)} GPUs"


def training_device() -> str:
    """The device TensorFlow trains on in this process, as `device_label` names it."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    # The driver's name for the card (e.g. "NVIDIA A10G"); the physical device's own name is only "/physical_device:GPU:0".
    return device_label([tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in gpus])
