"""CIFAR-10 from a tiny tarball of the python format: md5-verified, only the six batches read,
their pickles unable to run code."""

import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from diffusiontools.data import cifar10
from diffusiontools.data.sources import load_dataset
from diffusiontools.errors import UserError

PER_BATCH = 2  # images in each tiny batch: 10 train, 2 test


def batch(index: int) -> dict:
    """A batch as the real ones hold it: rows of red, green, blue 32x32 planes, labels a list."""
    rows = np.zeros((PER_BATCH, 3, 32, 32), dtype=np.uint8)
    rows[:, 0], rows[:, 1], rows[:, 2] = index, 100 + index, 200  # one value per channel
    rows[:, 0, 0, 1] = 7  # row 0, column 1 of the red plane
    labels = [(index + i) % 10 for i in range(PER_BATCH)]
    return {"batch_label": f"batch {index}", "labels": labels, "data": rows.reshape(PER_BATCH, -1)}


def write_tarball(folder: Path, members: dict[str, bytes], monkeypatch) -> Path:
    """``folder/cifar-10-python.tar.gz`` holding ``members``, its md5 made the published one."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / cifar10.ARCHIVE
    with tarfile.open(path, "w:gz") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    monkeypatch.setattr(cifar10, "ARCHIVE_MD5", hashlib.md5(path.read_bytes()).hexdigest())
    return path


def real_members(protocol: int = 2) -> dict[str, bytes]:
    names = [*cifar10.MEMBERS["train"], *cifar10.MEMBERS["test"]]
    members = {name: pickle.dumps(batch(i), protocol=protocol) for i, name in enumerate(names)}
    return {**members, "cifar-10-batches-py/readme.html": b"<html>"}


@pytest.mark.parametrize("protocol", [2, 4])
def test_tarball_loads_as_rgb_32x32_in_channel_order(tmp_path, monkeypatch, protocol):
    write_tarball(tmp_path, real_members(protocol), monkeypatch)
    data = load_dataset("cifar10", data_dir=str(tmp_path))
    assert data.train_images.shape == (10, 3, 32, 32) and data.test_images.shape == (2, 3, 32, 32)
    assert data.spec.class_names[0] == "airplane" and data.spec.class_names[9] == "truck"
    first = data.train_images[0]
    assert (first[0, 0, 0], first[0, 0, 1], first[1, 5, 5], first[2, 31, 31]) == (0, 7, 100, 200)
    assert data.train_labels.tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5]
    assert data.test_labels.tolist() == [5, 6] and (data.test_images[:, 1] == 105).all()
    assert data.provenance.files[cifar10.ARCHIVE]["md5"] == cifar10.ARCHIVE_MD5


def test_published_checksum_and_classes():
    assert cifar10.ARCHIVE_MD5 == "c58f30108f718f92721af3b95e74349a"
    assert cifar10.CLASS_NAMES == (
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    )  # fmt: skip


def test_wrong_md5_is_refused_and_the_tarball_kept(tmp_path, monkeypatch):
    path = write_tarball(tmp_path, real_members(), monkeypatch)
    monkeypatch.setattr(cifar10, "ARCHIVE_MD5", "0" * 32)
    with pytest.raises(UserError, match="has md5 .*, not CIFAR-10's published 0{32}; it was left"):
        load_dataset("cifar10", data_dir=str(tmp_path))
    assert path.is_file()


def test_missing_batch_is_named(tmp_path, monkeypatch):
    members = real_members()
    del members["cifar-10-batches-py/data_batch_3"]
    write_tarball(tmp_path, members, monkeypatch)
    with pytest.raises(UserError, match="lacks cifar-10-batches-py/data_batch_3; it is not CIFAR"):
        load_dataset("cifar10", data_dir=str(tmp_path))


class Hostile:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path, monkeypatch):
    members = real_members()
    members["cifar-10-batches-py/test_batch"] = pickle.dumps({"data": Hostile()}, protocol=2)
    write_tarball(tmp_path, members, monkeypatch)
    with pytest.raises(UserError, match="test_batch is not a CIFAR-10 batch .*system is not a"):
        load_dataset("cifar10", data_dir=str(tmp_path))


def test_batch_with_wrong_rows_is_refused(tmp_path, monkeypatch):
    members = real_members()
    bad = {"data": np.zeros((2, 100), dtype=np.uint8), "labels": [0, 1]}
    members["cifar-10-batches-py/data_batch_1"] = pickle.dumps(bad, protocol=2)
    write_tarball(tmp_path, members, monkeypatch)
    with pytest.raises(UserError, match=r"data_batch_1 holds data \(2, 100\) .* \(N, 3072\)"):
        load_dataset("cifar10", data_dir=str(tmp_path))


def test_offline_error_says_where_to_put_the_tarball():
    with pytest.raises(UserError, match="CIFAR-10 files not found in .*; put cifar-10-python"):
        load_dataset("cifar10")
