"""Content hashes of asset values: the data versions Dagster records.

The same content always gives the same version, whatever file timestamps or
archive layout the storage adds, so an unchanged result leaves everything
downstream in sync.

Data sets are hashed with BLAKE3, everything else with SHA-256. Both are
cryptographic; a data set's version is computed in every run that loads MNIST,
and BLAKE3 does it about ten times faster on the project's machine
(benchmarks/artifact_verification.py prints both). Models, tables and JSON
values are small, and their SHA-256 versions name the model registry's
versions, so they stay as they were.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, Iterable

import blake3
import numpy as np

from mnist_pipeline.ml.data.dataset import DigitDataset

VERSION_LENGTH = 16


def _digest(chunks: Iterable[bytes | memoryview], algorithm: Callable[[], Any] = hashlib.sha256) -> str:
    digest = algorithm()
    for chunk in chunks:
        digest.update(len(chunk).to_bytes(8, "big"))
        digest.update(chunk)
    return digest.hexdigest()[:VERSION_LENGTH]


def _array_chunks(name: str, array: np.ndarray) -> Iterable[bytes | memoryview]:
    yield f"{name}:{array.dtype.str}:{array.shape}".encode()
    yield memoryview(np.ascontiguousarray(array)).cast("B")  # the array's own bytes, not a copy


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def dataset_version(dataset: DigitDataset) -> str:
    arrays = dataset.stored_arrays()
    return _digest((chunk for name, array in arrays.items() for chunk in _array_chunks(name, array)), blake3.blake3)


def json_version(value: Any) -> str:
    return _digest([canonical_json(value)])


def _without_names(config: Any) -> Any:
    """A Keras config without its "name" entries: Keras numbers automatic names by how many
    layers the process built before, which says nothing about the model."""
    if isinstance(config, dict):
        return {key: _without_names(value) for key, value in config.items() if key != "name"}
    if isinstance(config, list):
        return [_without_names(value) for value in config]
    return config


def model_version(model: Any) -> str:
    """Architecture, optimizer settings and weights of a Keras model (layer names aside)."""
    chunks = [canonical_json(_without_names(model.get_config()))]
    compile_config = model.get_compile_config() if model.compiled else None
    chunks.append(canonical_json(_without_names(compile_config)))
    for index, weights in enumerate(model.get_weights()):
        chunks.extend(_array_chunks(str(index), np.asarray(weights)))
    return _digest(chunks)


def table_version(table: Any) -> str:
    import pandas as pd

    chunks = [canonical_json([[str(c), str(t)] for c, t in table.dtypes.items()])]
    chunks.append(pd.util.hash_pandas_object(table, index=True).to_numpy().tobytes())
    return _digest(chunks)


def files_version(files: dict[str, bytes]) -> str:
    return _digest(chunk for name in sorted(files) for chunk in (name.encode(), files[name]))
