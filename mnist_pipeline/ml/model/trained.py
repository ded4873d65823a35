"""A fitted model together with its per-epoch history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class TrainedModel:
    model: Any  # keras.Model; not imported here to keep start-up free of TensorFlow
    history: dict[str, list[float]]
