"""The resource that decides where MNIST comes from."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, ClassVar, List, Optional

from pydantic import Field, field_validator

from mnist_pipeline import settings
from mnist_pipeline.defs.settings_resource import SettingsFromEnvironment, variable_field
from mnist_pipeline.ml.data.dataset import IDX_FILE_NAMES
from mnist_pipeline.ml.data.idx import IdxFormatError
from mnist_pipeline.ml.data.sources import CLASSES_FILE, DOWNLOAD_SOURCES, MNIST_SHA256, LoadedDataset, find_idx_file, load_mnist
from mnist_pipeline.paths import configured_dir, default_cache_dir
from mnist_pipeline.ml.content_versions import json_version


class MnistSource(SettingsFromEnvironment):
    """Loads MNIST-format data.

    With a data directory, that directory is the only source: any data set in
    the MNIST IDX format, checked by structure. Otherwise a verified local
    cache, then each download source in order, checked against MNIST's SHA-256.
    Unset fields come from their environment variables when used (variable_field; the cache directory's
    variables are read by paths.py).
    """

    data_dir: Optional[str] = variable_field(
        "Directory holding the four IDX files (plain or .gz), the only source when set.",
        settings.DATA_DIR,
        "no data directory: MNIST itself, from the cache or a download source",
    )
    cache_dir: Optional[str] = Field(
        default=None,
        description="Where fetched MNIST is cached; unset: $MNIST_CACHE_DIR, else <pipeline home>/mnist_cache.",
    )
    download_sources: Optional[List[str]] = variable_field(
        f"Fetchers to try, in order, when nothing is cached: any of {list(DOWNLOAD_SOURCES)}.",
        settings.PIPELINE_ENV,
        f"the {settings.DEFAULT_PIPELINE_ENV!r} environment's; each environment's sources: "
        + ", ".join(f"{env}: {sources}" for env, sources in settings.DOWNLOAD_SOURCES_BY_ENV.items()),
    )

    @field_validator("download_sources")
    @classmethod
    def _known_sources(cls, sources: Optional[List[str]]) -> Optional[List[str]]:
        unknown = [name for name in sources or [] if name not in DOWNLOAD_SOURCES]
        if unknown:
            raise ValueError(f"expected names from {list(DOWNLOAD_SOURCES)}, found {unknown}")
        return sources

    def resolved_data_dir(self) -> Optional[str]:
        return self.setting("data_dir")[0]

    def resolved_cache_dir(self) -> Path:
        return configured_dir(self.cache_dir, default_cache_dir)

    def resolved_download_sources(self) -> List[str]:
        found, source = self.setting("download_sources")
        if isinstance(found, list):  # configured as a list of fetchers
            return list(found)
        # The variable names an environment, whose download sources settings.py lists.
        return settings.download_sources_for(found or settings.DEFAULT_PIPELINE_ENV, source)

    def load(self, log: Callable[[str], None] = lambda message: None) -> LoadedDataset:
        data_dir = self.resolved_data_dir()
        return load_mnist(
            data_dir=data_dir,
            cache_dir=self.resolved_cache_dir(),
            # A data directory is the only source, so the download settings are not even read.
            download_sources=self.resolved_download_sources() if data_dir is None else [],
            log=log,
        )

    def current_files(self) -> dict[str, Path]:
        """The data directory's IDX files that are present (empty without a data directory)."""
        data_dir = self.resolved_data_dir()
        if data_dir is None:
            return {}
        directory = Path(data_dir).expanduser()
        found = {}
        for name in IDX_FILE_NAMES:
            try:
                found[name] = find_idx_file(directory, name)
            except IdxFormatError:
                continue
        return found

    def fingerprint(self) -> dict[str, str]:
        """What identifies the data a load would return, without fetching anything.

        A data directory is identified by the SHA-256 of its files. Otherwise
        the data is MNIST itself, whichever source delivers it: every fetched or
        cached file is verified against the published hashes, so those hashes
        are its identity.
        """
        if self.resolved_data_dir() is None:
            return dict(MNIST_SHA256)
        found = {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in self.current_files().items()}
        classes = Path(self.resolved_data_dir()).expanduser() / CLASSES_FILE
        if classes.is_file():  # new or renamed classes change the data too (absent, the version is as before)
            found["class_names"] = hashlib.sha256(classes.read_bytes()).hexdigest()
        return found

    def files_version(self) -> str:
        """The data version of the files as they are now: what `mnist_files` observes, and what
        `raw_mnist` records having read."""
        return json_version(self.fingerprint())
