"""Reader and writer for the IDX format that the original MNIST files use.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number
of dimensions), one big-endian uint32 per dimension, then the values in C
order. MNIST uses type 0x08 (unsigned byte) throughout.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np

UNSIGNED_BYTE = 0x08
GZIP_MAGIC = b"\x1f\x8b"


class IdxFormatError(ValueError):
    """An IDX file is missing, truncated or not what it claims to be."""


def read_idx(path: str | Path, *, expected_ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a uint8 array.

    Raises IdxFormatError naming the file, what was expected and what was found.
    """
    path = Path(path)
    if not path.is_file():
        raise IdxFormatError(f"{path}: expected an IDX file, found nothing at that path")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gunzip(raw, source=str(path))
    elif raw[:2] == GZIP_MAGIC:
        raise IdxFormatError(
            f"{path}: expected an uncompressed IDX file, found gzip-compressed data "
            f"(name it {path.name}.gz to have it decompressed)"
        )
    return parse_idx(raw, source=str(path), expected_ndim=expected_ndim)


def gunzip(compressed: bytes, *, source: str) -> bytes:
    """Decompress a .gz file's bytes; IdxFormatError naming `source` if they are not whole gzip data."""
    try:
        return gzip.decompress(compressed)
    except EOFError:
        found = f"a truncated gzip stream ({len(compressed)} bytes, cut off before its end marker)"
    except gzip.BadGzipFile as error:
        if compressed[:2] != GZIP_MAGIC:
            found = f"data that is not gzip (it starts with bytes {compressed[:4].hex()}, not 1f8b)"
        else:
            found = f"damaged gzip data ({error})"
    except zlib.error as error:
        found = f"damaged gzip data ({error})"
    raise IdxFormatError(f"{source}: expected a gzip-compressed IDX file (the name ends in .gz), found {found}")


def parse_idx(raw: bytes, *, source: str, expected_ndim: int | None = None) -> np.ndarray:
    if len(raw) < 4:
        raise IdxFormatError(f"{source}: expected at least a 4-byte IDX header, found {len(raw)} bytes")
    zero, dtype_code, ndim = int.from_bytes(raw[0:2], "big"), raw[2], raw[3]
    magic = int.from_bytes(raw[0:4], "big")
    if zero != 0 or dtype_code != UNSIGNED_BYTE:
        want = f"0x{UNSIGNED_BYTE << 8 | (expected_ndim or ndim):08x}"
        raise IdxFormatError(
            f"{source}: wrong magic number: expected {want} (unsigned-byte IDX), found 0x{magic:08x}"
        )
    if expected_ndim is not None and ndim != expected_ndim:
        raise IdxFormatError(
            f"{source}: wrong magic number: expected 0x{UNSIGNED_BYTE << 8 | expected_ndim:08x} "
            f"({expected_ndim}-dimensional), found 0x{magic:08x} ({ndim}-dimensional)"
        )
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise IdxFormatError(
            f"{source}: truncated header: expected {header_len} bytes for {ndim} dimensions, found {len(raw)}"
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected_len = header_len + int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected_len:
        state = "truncated" if len(raw) < expected_len else "has trailing bytes"
        raise IdxFormatError(
            f"{source}: {state}: header declares shape {shape}, so expected {expected_len} bytes, "
            f"found {len(raw)}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(shape).copy()


def encode_idx(array: np.ndarray) -> bytes:
    """Serialise a uint8 array to IDX bytes: the inverse of parse_idx."""
    if array.dtype != np.uint8:
        raise TypeError(f"IDX arrays must be uint8, found {array.dtype}")
    header = bytes([0, 0, UNSIGNED_BYTE, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def write_idx(path: str | Path, array: np.ndarray) -> None:
    Path(path).write_bytes(encode_idx(array))


def idx_sha256(array: np.ndarray) -> str:
    """SHA-256 of the array as an uncompressed IDX file.

    Equals the published hash of the original MNIST file the array came from,
    whichever route (IDX, gzip, Keras's npz) delivered it.
    """
    return hashlib.sha256(encode_idx(array)).hexdigest()
