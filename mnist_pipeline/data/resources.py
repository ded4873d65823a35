"""The resource that decides where MNIST comes from."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, List, Optional

import dagster as dg
from pydantic import Field, field_validator

from mnist_pipeline.data.dataset import IDX_FILE_NAMES
from mnist_pipeline.data.idx import IdxFormatError
from mnist_pipeline.data.sources import DOWNLOAD_SOURCES, LoadedDataset, find_idx_file, load_mnist
from mnist_pipeline.paths import default_cache_dir


class MnistSource(dg.ConfigurableResource):
    """Loads MNIST-format data.

    With `data_dir` set, that directory is the only source: any data set in the
    MNIST IDX format, checked by structure. Otherwise a verified local cache,
    then each of `download_sources` in order, checked against MNIST's SHA-256.
    """

    data_dir: Optional[str] = Field(
        default=None, description="Directory holding the four IDX files (plain or .gz)."
    )
    cache_dir: Optional[str] = Field(
        default=None, description="Where fetched MNIST is cached; defaults to <pipeline home>/mnist_cache."
    )
    download_sources: List[str] = Field(
        default=list(DOWNLOAD_SOURCES),
        description=f"Fetchers to try, in order, when nothing is cached: any of {list(DOWNLOAD_SOURCES)}.",
    )

    @field_validator("download_sources")
    @classmethod
    def _known_sources(cls, sources: List[str]) -> List[str]:
        unknown = [name for name in sources if name not in DOWNLOAD_SOURCES]
        if unknown:
            raise ValueError(f"expected names from {list(DOWNLOAD_SOURCES)}, found {unknown}")
        return sources

    def resolved_cache_dir(self) -> Path:
        return Path(self.cache_dir).expanduser().resolve() if self.cache_dir else default_cache_dir()

    def load(self, log: Callable[[str], None] = lambda message: None) -> LoadedDataset:
        return load_mnist(
            data_dir=self.data_dir,
            cache_dir=self.resolved_cache_dir(),
            download_sources=self.download_sources,
            log=log,
        )

    def current_files(self) -> dict[str, Path]:
        """The files a load would read first: the data directory's, else the cache's (those present)."""
        if self.data_dir is not None:
            directory = Path(self.data_dir).expanduser()
            found = {}
            for name in IDX_FILE_NAMES:
                try:
                    found[name] = find_idx_file(directory, name)
                except IdxFormatError:
                    continue
            return found
        cache = self.resolved_cache_dir()
        return {name: cache / base for name, base in IDX_FILE_NAMES.items() if (cache / base).is_file()}

    def fingerprint(self, log: Callable[[str], None] = lambda message: None) -> dict[str, str]:
        """SHA-256 of each file a load would read, fetching MNIST into the cache first if it is not there."""
        if self.data_dir is None and len(self.current_files()) < len(IDX_FILE_NAMES):
            self.load(log=log)
        return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in self.current_files().items()}
