"""IO managers that store each asset as one file named after its asset key.

    <base_dir>/<asset key path>.<extension>

Every write is atomic (temporary file, then rename), so a failed or killed
run leaves the previous artifact whole. Nothing is pickled: arrays are .npz
read with allow_pickle=False, models .keras read with safe_mode=True, tables
Parquet, metrics JSON, plots PNG.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, ClassVar, Optional

import dagster as dg
import numpy as np
from pydantic import Field

from mnist_pipeline.data.dataset import DigitDataset
from mnist_pipeline.model.trained import TrainedModel
from mnist_pipeline.paths import default_storage_dir
from mnist_pipeline.storage.arrays import load_npz_memory_mapped
from mnist_pipeline.storage.atomic import atomic_publish_directory, atomic_write


class ArtifactMissingError(FileNotFoundError):
    """An upstream asset has no stored artifact yet."""


class StorageError(OSError):
    """An artifact could not be written where the storage directory says."""


class FileIOManager(dg.ConfigurableIOManager):
    """Base: maps an asset key to a path; subclasses say how to write and read it."""

    base_dir: Optional[str] = Field(
        default=None,
        description="Absolute directory for artifacts; defaults to <pipeline home>/storage.",
    )

    # Part of the storage format, not a setting: a ClassVar, so the Launchpad does not offer it as config.
    extension: ClassVar[str] = ""

    def storage_dir(self) -> Path:
        return Path(self.base_dir).expanduser().resolve() if self.base_dir else default_storage_dir()

    def path_for(self, asset_key: dg.AssetKey) -> Path:
        return self.storage_dir().joinpath(*asset_key.path).with_suffix(self.extension)

    def dump(self, obj: Any, path: Path) -> None:
        raise NotImplementedError

    def load(self, path: Path) -> Any:
        raise NotImplementedError

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        path = self.path_for(context.asset_key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.publish(obj, path)
        except OSError as error:
            raise StorageError(
                f"{path.parent}: expected a writable storage directory for {context.asset_key.to_user_string()}, "
                f"found {type(error).__name__}: {error}. The previous artifact, if any, is unchanged."
            ) from error
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path)), **self.file_metadata(obj, path)})

    def file_metadata(self, obj: Any, path: Path) -> dict[str, dg.MetadataValue]:
        """Extra metadata about what was written; none by default."""
        return {}

    def publish(self, obj: Any, path: Path) -> None:
        atomic_write(path, lambda tmp: self.dump(obj, tmp))

    def load_input(self, context: dg.InputContext) -> Any:
        key = context.upstream_output.asset_key if context.upstream_output else context.asset_key
        path = self.path_for(key)
        if not path.exists():
            raise ArtifactMissingError(
                f"{path}: expected the stored artifact of asset '{key.to_user_string()}', found no file. "
                f"Materialize '{key.to_user_string()}' first."
            )
        return self.load(path)


class NpzIOManager(FileIOManager):
    """DigitDataset <-> uncompressed .npz (one array per split), memory-mapped on load.

    A step reads only what it touches: the evaluation steps never page in the training images.
    """

    extension: ClassVar[str] = ".npz"

    def dump(self, obj: DigitDataset, path: Path) -> None:
        with open(path, "wb") as handle:
            np.savez(handle, **obj.stored_arrays())

    def load(self, path: Path) -> DigitDataset:
        return DigitDataset.from_arrays(load_npz_memory_mapped(path), source=str(path))


HISTORY_MEMBER = "mnist_pipeline/history.json"


class KerasModelIOManager(FileIOManager):
    """keras.Model or TrainedModel <-> one .keras file.

    A TrainedModel's history travels inside the same archive (as
    mnist_pipeline/history.json), so model and history are replaced together.
    """

    extension: ClassVar[str] = ".keras"

    def dump(self, obj: Any, path: Path) -> None:
        model = obj.model if isinstance(obj, TrainedModel) else obj
        model.save(path)
        if isinstance(obj, TrainedModel):
            with zipfile.ZipFile(path, "a") as archive:
                archive.writestr(HISTORY_MEMBER, json.dumps(obj.history))

    def load(self, path: Path) -> Any:
        import keras

        model = keras.models.load_model(path, safe_mode=True)
        with zipfile.ZipFile(path) as archive:
            if HISTORY_MEMBER not in archive.namelist():
                return model
            history = json.loads(archive.read(HISTORY_MEMBER))
        return TrainedModel(model=model, history=history)


class JsonIOManager(FileIOManager):
    """dict of plain values <-> .json."""

    extension: ClassVar[str] = ".json"

    def dump(self, obj: dict, path: Path) -> None:
        path.write_text(json.dumps(obj, indent=2, sort_keys=True))

    def load(self, path: Path) -> dict:
        return json.loads(path.read_text())


class ParquetIOManager(FileIOManager):
    """pandas.DataFrame <-> .parquet."""

    extension: ClassVar[str] = ".parquet"

    def dump(self, obj, path: Path) -> None:
        obj.to_parquet(path, index=False)

    def load(self, path: Path):
        import pandas as pd

        return pd.read_parquet(path)


class PngDirectoryIOManager(FileIOManager):
    """dict of name -> PNG bytes <-> a directory of <name>.png files, published at once."""

    extension: ClassVar[str] = ""

    def publish(self, obj: dict[str, bytes], path: Path) -> None:
        atomic_publish_directory(path, {f"{name}.png": content for name, content in obj.items()})

    def file_metadata(self, obj: dict[str, bytes], path: Path) -> dict[str, dg.MetadataValue]:
        return {f"{name}_path": dg.MetadataValue.path(str(path / f"{name}.png")) for name in obj}

    def load(self, path: Path) -> dict[str, bytes]:
        return {png.stem: png.read_bytes() for png in sorted(path.glob("*.png"))}
