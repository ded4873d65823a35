"""Read an uncompressed .npz with each array memory-mapped from the file.

A step then holds in memory only the arrays, and the parts of them, it
touches: evaluating on the test split never reads the training images. The
file stays an ordinary .npz that `np.load(path, allow_pickle=False)` reads.

An object in an object store cannot be memory-mapped: it is read whole into
memory, still with allow_pickle=False, and never written to the local disk.
"""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import numpy as np

from mnist_pipeline.storage.location import StoragePath, is_remote, read_bytes

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # a ZIP member's local file header (30 bytes)
_LOCAL_HEADER_SIGNATURE = b"PK\x03\x04"
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


class ArrayFileError(ValueError):
    """A stored array file is not what the pipeline writes."""


def load_npz_memory_mapped(path: StoragePath) -> dict[str, np.ndarray]:
    """Every array of `path`, as read-only memory maps (compressed members are read whole).

    Object arrays are refused, as `np.load(..., allow_pickle=False)` refuses them.
    In an object store: every array read into memory (see the module docstring).
    """
    if is_remote(path):
        return _load_npz_in_memory(path)
    arrays: dict[str, np.ndarray] = {}
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise ArrayFileError(f"{path}: expected an .npz (a ZIP archive), found a file that is not one ({error})") from error
    with archive, open(path, "rb") as handle:
        for member in archive.infolist():
            name = member.filename.removesuffix(".npy")
            if member.compress_type != zipfile.ZIP_STORED:
                with np.load(path, allow_pickle=False) as stored:
                    arrays[name] = stored[name]
                continue
            arrays[name] = _map_member(path, handle, member)
    return arrays


def _map_member(path: Path, handle, member: zipfile.ZipInfo) -> np.ndarray:
    where = f"{path}: member {member.filename}"
    handle.seek(member.header_offset)
    header = _LOCAL_HEADER.unpack(handle.read(_LOCAL_HEADER.size))
    if header[0] != _LOCAL_HEADER_SIGNATURE:
        raise ArrayFileError(f"{where}: expected a ZIP local header, found {header[0]!r}")
    name_length, extra_length = header[-2], header[-1]
    data_start = member.header_offset + _LOCAL_HEADER.size + name_length + extra_length
    handle.seek(data_start)
    try:
        version = np.lib.format.read_magic(handle)
        if version not in _HEADER_READERS:
            raise ValueError(f"format version {version}")
        shape, fortran_order, dtype = _HEADER_READERS[version](handle)
    except ValueError as error:
        raise ArrayFileError(f"{where}: expected a .npy header of format 1.0 or 2.0, found {error}") from error
    if dtype.hasobject:
        raise ArrayFileError(f"{where}: expected a numeric array, found dtype {dtype} (object arrays need pickle)")
    offset = handle.tell()
    size = int(np.prod(shape)) * dtype.itemsize
    if offset - data_start + size > member.file_size:
        raise ArrayFileError(
            f"{where}: expected {size} bytes of data for shape {shape} and dtype {dtype}, "
            f"found {member.file_size - (offset - data_start)}"
        )
    if size == 0:  # nothing to map
        return np.empty(shape, dtype=dtype)
    mapped = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran_order else "C")
    return mapped.view(np.ndarray)  # a plain array; the map lives as long as it does


def _load_npz_in_memory(path: StoragePath) -> dict[str, np.ndarray]:
    content = read_bytes(path)
    try:
        with np.load(io.BytesIO(content), allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    except zipfile.BadZipFile as error:
        raise ArrayFileError(f"{path}: expected an .npz (a ZIP archive), found an object that is not one ({error})") from error
    except ValueError as error:  # an object array, refused without pickle; a malformed member
        raise ArrayFileError(f"{path}: expected numeric arrays readable without pickle, found {error}") from error
