"""The IDX reader: round trips and every malformed-file case, each with its message."""

import gzip

import numpy as np
import pytest

from mnist_pipeline.ml.data.idx import IdxFormatError, encode_idx, idx_sha256, parse_idx, read_idx, write_idx


@pytest.mark.parametrize("shape", [(3, 28, 28), (7,), (2, 3, 4, 5), (0, 28, 28)])
def test_round_trip(tmp_path, shape):
    array = np.arange(int(np.prod(shape)), dtype=np.uint8).reshape(shape)
    write_idx(tmp_path / "a", array)
    loaded = read_idx(tmp_path / "a")
    assert loaded.dtype == np.uint8
    assert loaded.shape == shape
    np.testing.assert_array_equal(loaded, array)


def test_header_is_the_mnist_layout():
    raw = encode_idx(np.zeros((2, 28, 28), dtype=np.uint8))
    assert raw[:4] == bytes.fromhex("00000803")
    assert raw[4:16] == (2).to_bytes(4, "big") + (28).to_bytes(4, "big") + (28).to_bytes(4, "big")
    assert len(raw) == 16 + 2 * 28 * 28


def test_reads_gzip(tmp_path):
    array = np.array([1, 2, 9], dtype=np.uint8)
    (tmp_path / "labels.gz").write_bytes(gzip.compress(encode_idx(array)))
    np.testing.assert_array_equal(read_idx(tmp_path / "labels.gz"), array)


def test_sha256_is_of_the_idx_bytes():
    import hashlib

    array = np.array([[1, 2], [3, 4]], dtype=np.uint8)
    assert idx_sha256(array) == hashlib.sha256(encode_idx(array)).hexdigest()


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(IdxFormatError, match=r"nope.*found nothing"):
        read_idx(tmp_path / "nope")


def test_wrong_magic_number():
    raw = bytearray(encode_idx(np.zeros(4, dtype=np.uint8)))
    raw[2] = 0x0D  # float type code
    with pytest.raises(IdxFormatError, match=r"f\.idx: wrong magic number: expected 0x00000801.*found 0x00000d01"):
        parse_idx(bytes(raw), source="f.idx", expected_ndim=1)


def test_wrong_number_of_dimensions():
    raw = encode_idx(np.zeros((2, 28, 28), dtype=np.uint8))
    with pytest.raises(IdxFormatError, match=r"labels: wrong magic number: expected 0x00000801.*found 0x00000803"):
        parse_idx(raw, source="labels", expected_ndim=1)


def test_truncated_payload():
    raw = encode_idx(np.zeros((5, 28, 28), dtype=np.uint8))[:-100]
    with pytest.raises(IdxFormatError, match=r"x: truncated: header declares shape \(5, 28, 28\), so expected 3936 bytes, found 3836"):
        parse_idx(raw, source="x")


def test_truncated_header():
    with pytest.raises(IdxFormatError, match=r"x: truncated header: expected 16 bytes"):
        parse_idx(bytes.fromhex("00000803") + b"\x00\x00", source="x")


def test_shorter_than_magic():
    with pytest.raises(IdxFormatError, match=r"x: expected at least a 4-byte IDX header, found 2 bytes"):
        parse_idx(b"\x00\x00", source="x")


def test_trailing_bytes():
    raw = encode_idx(np.zeros(3, dtype=np.uint8)) + b"junk"
    with pytest.raises(IdxFormatError, match=r"has trailing bytes.*expected 11 bytes, found 15"):
        parse_idx(raw, source="x")


def test_encode_rejects_non_uint8():
    with pytest.raises(TypeError, match="uint8.*float32"):
        encode_idx(np.zeros(3, dtype=np.float32))


def test_gz_that_is_not_gzip_names_the_file(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(encode_idx(np.array([1, 2, 9], dtype=np.uint8)))  # plain IDX bytes behind a .gz name
    with pytest.raises(IdxFormatError) as raised:
        read_idx(path)
    assert str(raised.value) == (
        f"{path}: expected a gzip-compressed IDX file (the name ends in .gz), "
        "found data that is not gzip (it starts with bytes 00000801, not 1f8b)"
    )


def test_truncated_gz_names_the_file(tmp_path):
    compressed = gzip.compress(encode_idx(np.arange(200, dtype=np.uint8)))
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(IdxFormatError, match=r"^.*t10k-labels-idx1-ubyte\.gz: expected a gzip-compressed IDX file .*, found a truncated gzip stream \(\d+ bytes"):
        read_idx(path)


def test_gz_with_a_bad_checksum_names_the_file(tmp_path):
    compressed = bytearray(gzip.compress(encode_idx(np.arange(50, dtype=np.uint8))))
    compressed[-8:-4] = b"\0\0\0\0"  # the CRC-32 of the uncompressed data
    path = tmp_path / "labels.gz"
    path.write_bytes(bytes(compressed))
    with pytest.raises(IdxFormatError, match=r"labels\.gz: expected a gzip-compressed IDX file .*, found damaged gzip data \(CRC check failed"):
        read_idx(path)


def test_gzip_data_without_the_gz_name_says_so(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(gzip.compress(encode_idx(np.zeros((1, 28, 28), dtype=np.uint8))))
    with pytest.raises(IdxFormatError, match=r"train-images-idx3-ubyte: expected an uncompressed IDX file, found gzip-compressed data \(name it train-images-idx3-ubyte\.gz"):
        read_idx(path, expected_ndim=3)
