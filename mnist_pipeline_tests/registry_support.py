"""Small models and manifests for the registry's tests (test_registry, test_rules, test_retention, test_quality_gates)."""

from __future__ import annotations

from pathlib import Path

import keras

def tiny_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])


def run_manifest(run_id: str = "run-1") -> dict:
    return {"run_id": run_id, "hyperparameters": {"epochs": 1, "optimizer": "adam"}, "code_version": "c"}


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
