"""What hashing data sets costs: their content version, SHA-256 at write, and verification at each load.

    .venv/bin/python benchmarks/artifact_verification.py [--rounds 5]

Writes data sets of MNIST's real sizes (raw_mnist: uint8, about 55 MB;
scaled_mnist: float32, about 220 MB) with the pipeline's NpzIOManager into a
temporary directory, then times, median of the rounds:
  - the data set's content version, its data version in Dagster (BLAKE3,
    ml/content_versions.py), and the same digest with SHA-256 for comparison;
  - the write alone and the SHA-256 (+ record) the IO manager adds to it;
  - a load's verification in a process that has not hashed the file yet (the
    file is in the page cache, as it is after a run wrote it or read it);
  - the same verification once this process has hashed the unchanged file (a
    run's later steps), and the memory-mapped load itself.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg
import numpy as np

from mnist_pipeline.ml import content_versions
from mnist_pipeline.ml.data.dataset import DigitDataset
from mnist_pipeline.storage import integrity
from mnist_pipeline.storage.atomic import atomic_write
from mnist_pipeline.storage.integrity import file_sha256
from mnist_pipeline.defs.io_managers import NpzIOManager


def dataset(dtype) -> DigitDataset:
    rng = np.random.default_rng(0)
    images = lambda n: rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8).astype(dtype)  # noqa: E731
    labels = lambda n: rng.integers(0, 10, size=n, dtype=np.uint8)  # noqa: E731
    return DigitDataset(images(60_000), labels(60_000), images(10_000), labels(10_000))


def seconds(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; median of {args.rounds} rounds\n")
    print("| artifact | size | content version (BLAKE3) | the same digest with SHA-256 | write | SHA-256 + record at write | verify, first load in a process | verify, later loads | memory-mapped load |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        manager = NpzIOManager(base_dir=tmp)
        for name, dtype in (("raw_mnist", np.uint8), ("scaled_mnist", np.float32)):
            data, key = dataset(dtype), dg.AssetKey(name)
            path = manager.path_for(key)
            version, version_sha256, write, hashed, first, later, load = [], [], [], [], [], [], []
            chunks = lambda: (c for n, a in data.stored_arrays().items() for c in content_versions._array_chunks(n, a))  # noqa: E731
            for _ in range(args.rounds):
                version.append(seconds(lambda: content_versions.dataset_version(data)))
                version_sha256.append(seconds(lambda: content_versions._digest(chunks(), hashlib.sha256)))
                write.append(seconds(lambda: atomic_write(path, lambda tmp: manager.dump(data, tmp))))  # no hash
                hashed.append(seconds(lambda: manager.publish(data, path)) - write[-1])
                time.sleep(0.2)  # past the timestamp margin, so the hash may be remembered
                integrity._HASHED.clear()  # as in a new process: nothing hashed yet
                file_sha256(path)  # the file in the page cache, as after a run
                first.append(seconds(lambda: manager.verified_path(key)))
                later.append(seconds(lambda: manager.verified_path(key)))
                load.append(seconds(lambda: manager.load(path)))
            size = path.stat().st_size / 1e6
            cells = [f"{statistics.median(values):.3f} s" for values in (version, version_sha256, write, hashed, first, later, load)]
            print(f"| {name} | {size:.0f} MB | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
