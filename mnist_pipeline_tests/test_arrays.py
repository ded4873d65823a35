"""The memory-mapped .npz reader: same arrays as np.load, without reading what is not touched."""

import os

import numpy as np
import pytest

from mnist_pipeline.storage.arrays import ArrayFileError, load_npz_memory_mapped


@pytest.mark.parametrize(
    "array",
    [
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
        np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4),
        np.asfortranarray(np.arange(12, dtype=np.int64).reshape(3, 4)),
        np.array(7.5, dtype=np.float64),
        np.zeros((0, 28, 28), dtype=np.float32),
    ],
    ids=["uint8-3d", "float32", "fortran-order", "scalar", "empty"],
)
def test_reads_what_np_load_reads(tmp_path, array):
    path = tmp_path / "arrays.npz"
    np.savez(path, first=array, second=np.arange(5, dtype=np.uint8))
    loaded = load_npz_memory_mapped(path)
    with np.load(path, allow_pickle=False) as expected:
        assert sorted(loaded) == sorted(expected.files)
        for name in expected.files:
            assert loaded[name].dtype == expected[name].dtype
            assert loaded[name].shape == expected[name].shape
            np.testing.assert_array_equal(loaded[name], expected[name])


def test_arrays_are_read_only_maps_of_the_file(tmp_path):
    path = tmp_path / "arrays.npz"
    np.savez(path, images=np.ones((100, 28, 28), dtype=np.float32))
    images = load_npz_memory_mapped(path)["images"]
    assert isinstance(images.base, np.memmap)  # nothing copied into memory up front
    assert not images.flags.writeable
    with pytest.raises(ValueError):
        images[0, 0, 0] = 2.0


def test_a_replaced_file_leaves_loaded_arrays_intact(tmp_path):
    """The IO managers publish by rename: a reader keeps the version it mapped."""
    path = tmp_path / "arrays.npz"
    np.savez(path, images=np.full((10, 4), 3, dtype=np.uint8))
    images = load_npz_memory_mapped(path)["images"]
    replacement = tmp_path / "new.npz"
    np.savez(replacement, images=np.full((10, 4), 9, dtype=np.uint8))
    os.replace(replacement, path)
    assert (images == 3).all()
    assert (load_npz_memory_mapped(path)["images"] == 9).all()


def test_compressed_members_are_read_whole(tmp_path):
    path = tmp_path / "arrays.npz"
    np.savez_compressed(path, labels=np.arange(10, dtype=np.uint8))
    np.testing.assert_array_equal(load_npz_memory_mapped(path)["labels"], np.arange(10, dtype=np.uint8))


def test_object_arrays_are_refused_naming_file_and_member(tmp_path):
    path = tmp_path / "arrays.npz"
    np.savez(path, labels=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ArrayFileError, match=r"arrays.npz: member labels.npy: expected a numeric array, found dtype object"):
        load_npz_memory_mapped(path)


def test_a_file_that_is_not_a_zip_is_refused_naming_it(tmp_path):
    path = tmp_path / "arrays.npz"
    path.write_bytes(b"not an archive at all")
    with pytest.raises(ArrayFileError, match=r"arrays.npz: expected an .npz \(a ZIP archive\), found a file that is not one"):
        load_npz_memory_mapped(path)


def corrupt(path, offset: int, replacement: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset : offset + len(replacement)] = replacement
    path.write_bytes(bytes(raw))


def member_offset(path, name: str) -> int:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return archive.getinfo(name).header_offset


def test_a_damaged_member_header_is_refused_naming_file_and_member(tmp_path):
    path = tmp_path / "arrays.npz"
    np.savez(path, images=np.zeros((4, 4), dtype=np.float32))
    corrupt(path, member_offset(path, "images.npy"), b"XXXX")
    with pytest.raises(ArrayFileError, match=r"arrays.npz: member images.npy: expected a ZIP local header, found b'XXXX'"):
        load_npz_memory_mapped(path)


def test_a_damaged_npy_header_is_refused_naming_file_and_member(tmp_path):
    path = tmp_path / "arrays.npz"
    np.savez(path, images=np.zeros((4, 4), dtype=np.float32))
    corrupt(path, path.read_bytes().index(b"\x93NUMPY"), b"\x00NOTNPY")
    with pytest.raises(ArrayFileError, match=r"arrays.npz: member images.npy: expected a .npy header of format 1.0 or 2.0, found"):
        load_npz_memory_mapped(path)


def test_a_header_promising_more_data_than_stored_is_refused(tmp_path):
    path = tmp_path / "arrays.npz"
    np.savez(path, images=np.zeros((4, 4), dtype=np.float32))
    start = path.read_bytes().index(b"'shape': (4, 4)")
    corrupt(path, start, b"'shape': (9, 4)")
    with pytest.raises(ArrayFileError, match=r"images.npy: expected 144 bytes of data for shape \(9, 4\) and dtype float32, found 64"):
        load_npz_memory_mapped(path)
