"""IDX parsing: shapes and values of small synthetic files, and every corruption named by file."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from diffusiontools.data import read_idx
from diffusiontools.errors import UserError


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic 0x0000080<ndim>, big-endian sizes, payload."""
    header = struct.pack(">I", 0x800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_reads_images_raw_and_gz(tmp_path, name):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    out = read_idx(write(tmp_path / name, idx_bytes(images)))
    assert out.dtype == np.uint8 and out.shape == (5, 28, 28)
    np.testing.assert_array_equal(out, images)
    assert out.flags.writeable  # torch.from_numpy shares it without a warning


@pytest.mark.parametrize("name", ["labels-idx1-ubyte", "labels-idx1-ubyte.gz"])
def test_reads_labels_raw_and_gz(tmp_path, name):
    labels = np.arange(10, dtype=np.uint8)
    out = read_idx(write(tmp_path / name, idx_bytes(labels)))
    assert out.shape == (10,)
    np.testing.assert_array_equal(out, labels)


def test_truncated_payload_names_file_and_sizes(tmp_path):
    data = idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8))
    path = write(tmp_path / "train-images-idx3-ubyte.gz", data[:1000])
    with pytest.raises(UserError, match=r"train-images-idx3-ubyte\.gz is truncated") as e:
        read_idx(path)
    assert f"expected {16 + 3 * 28 * 28} bytes, got 1000" in str(e.value)


def test_truncated_gzip_stream_names_file(tmp_path):
    compressed = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8)))
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(UserError, match=r"train-labels-idx1-ubyte\.gz is truncated"):
        read_idx(path)


def test_wrong_magic_names_file_and_magic(tmp_path):
    data = struct.pack(">II", 0x00000D03, 0) + b""
    path = write(tmp_path / "weird-idx", data)
    with pytest.raises(UserError, match=r"weird-idx is not an MNIST IDX file: magic .*0x00000d03"):
        read_idx(path)


def test_extra_bytes_are_refused(tmp_path):
    path = write(tmp_path / "labels", idx_bytes(np.arange(4, dtype=np.uint8)) + b"\x00")
    with pytest.raises(UserError, match="labels is corrupt"):
        read_idx(path)


def test_header_shorter_than_promised(tmp_path):
    path = write(tmp_path / "images", struct.pack(">II", 0x803, 5))
    with pytest.raises(UserError, match="images is truncated: expected a 16-byte header"):
        read_idx(path)
