"""MNIST, Fashion-MNIST and KMNIST from IDX files: each member's own files load, another member's
files are named as such and left in place, and nothing is found without saying where to put it."""

import dataclasses
import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
from conftest import idx_bytes
from loopback import mirror

from diffusiontools.config import DataConfig
from diffusiontools.data import data_record, idx_family, load_data, mnist
from diffusiontools.data.sources import load_dataset
from diffusiontools.errors import UserError

MEMBERS = ("mnist", "fashion_mnist", "kmnist")


def tiny_files(member: str) -> dict[str, bytes]:
    """The four .gz files of 3 train and 3 test 28x28 images, pixels telling the members apart."""
    value = MEMBERS.index(member) + 1
    arrays = [
        np.full((3, 28, 28), value),
        np.array([0, 1, 9]),
        np.full((3, 28, 28), 10 * value),
        np.array([2, 3, 4]),
    ]
    return {
        f"{stem}.gz": gzip.compress(idx_bytes(array), mtime=0)
        for stem, array in zip(idx_family.STEMS.values(), arrays, strict=True)
    }


def write(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (folder / name).write_bytes(body)
    return folder


@pytest.fixture
def tiny_family(tmp_path, monkeypatch):
    """Each member's checksum table replaced by its tiny files' md5s; cache and env isolated."""
    monkeypatch.delenv(mnist.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for member in MEMBERS:
        md5 = {name: hashlib.md5(body).hexdigest() for name, body in tiny_files(member).items()}
        patched = dataclasses.replace(idx_family.FAMILY[member], md5=md5)
        monkeypatch.setitem(idx_family.FAMILY, member, patched)
    return tmp_path


@pytest.mark.parametrize("member", MEMBERS)
def test_each_member_loads_its_own_files(tiny_family, member):
    folder = write(tiny_family / member, tiny_files(member))
    data = load_dataset(member, data_dir=str(folder))
    value = MEMBERS.index(member) + 1
    assert data.train_images.shape == (3, 1, 28, 28) and data.test_images.shape == (3, 1, 28, 28)
    assert (data.train_images == value).all() and (data.test_images == 10 * value).all()
    assert data.train_labels.tolist() == [0, 1, 9] and data.test_labels.tolist() == [2, 3, 4]
    assert data.spec.num_classes == 10
    assert data.provenance.source == member and data.provenance.details["unverified"] == []
    md5 = {name: sums["md5"] for name, sums in data.provenance.files.items()}
    assert md5 == idx_family.FAMILY[member].md5


def test_class_names_are_the_published_ones():
    names = {member: idx_family.FAMILY[member].class_names for member in MEMBERS}
    assert names["mnist"] == tuple("0123456789")
    assert names["fashion_mnist"][0] == "T-shirt/top" and names["fashion_mnist"][9] == "Ankle boot"
    assert names["kmnist"] == ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")


@pytest.mark.parametrize(
    "member, files_of, title, other_title",
    [
        ("mnist", "fashion_mnist", "MNIST", "Fashion-MNIST"),
        ("fashion_mnist", "kmnist", "Fashion-MNIST", "Kuzushiji-MNIST"),
        ("kmnist", "mnist", "Kuzushiji-MNIST", "MNIST"),
    ],
)
def test_another_members_files_are_named_and_left_in_place(
    tiny_family, member, files_of, title, other_title
):
    folder = write(tiny_family / "data", tiny_files(files_of))
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    with pytest.raises(UserError) as e:
        load_dataset(member, data_dir=str(folder))
    assert (
        f"train-images-idx3-ubyte.gz is {other_title}'s train-images-idx3-ubyte.gz, not {title}'s"
        in str(e.value)
    )
    assert f"use data.dataset = {files_of} for these files" in str(e.value)
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before


def test_unknown_md5_is_refused_and_the_file_kept(tiny_family):
    files = tiny_files("mnist")
    files["t10k-labels-idx1-ubyte.gz"] = gzip.compress(idx_bytes(np.array([5, 5, 5])), mtime=0)
    folder = write(tiny_family / "data", files)
    with pytest.raises(
        UserError,
        match="labels-idx1-ubyte.gz has md5 .*, not MNIST's published .*; it was left in place",
    ) as refused:
        load_dataset("mnist", data_dir=str(folder))
    assert str(refused.value).endswith(
        "replace it with a fresh copy of MNIST's t10k-labels-idx1-ubyte.gz, or, for data of one's "
        "own in this layout, store the files uncompressed (read and recorded as unverified) or as "
        "one .npz file with data.dataset = npz"
    )
    assert (folder / "t10k-labels-idx1-ubyte.gz").read_bytes() == files["t10k-labels-idx1-ubyte.gz"]


def uncompressed(member: str) -> dict[str, bytes]:
    return {name[: -len(".gz")]: gzip.decompress(body) for name, body in tiny_files(member).items()}


def test_uncompressed_files_are_read_listed_and_warned_about_as_unverified(tiny_family, caplog):
    files = uncompressed("mnist")  # MNIST's content, but its sha256s are not the tiny files'
    folder = write(tiny_family / "raw", files)
    with caplog.at_level("WARNING", logger="diffusiontools"):
        data = load_data(DataConfig(dataset="kmnist", dir=str(folder)))
    names = ", ".join(idx_family.STEMS.values())
    note = (
        f"{names} in {folder} are uncompressed and match no published checksum, so their content "
        "could not be verified as Kuzushiji-MNIST's; they were read as Kuzushiji-MNIST"
    )
    assert [record.getMessage() for record in caplog.records] == [note]
    assert data.provenance.details["unverified"] == list(idx_family.STEMS.values())
    assert data_record(data)["dataset"]["provenance"]["details"]["unverified_note"] == note
    assert (data.train_images == 1).all()


def test_uncompressed_content_of_a_known_member_is_verified_or_named(tiny_family, monkeypatch):
    sha256 = {
        name: hashlib.sha256(body).hexdigest() for name, body in uncompressed("mnist").items()
    }
    patched = dataclasses.replace(idx_family.FAMILY["mnist"], sha256=sha256)
    monkeypatch.setitem(idx_family.FAMILY, "mnist", patched)
    folder = write(tiny_family / "raw", uncompressed("mnist"))
    data = load_dataset("mnist", data_dir=str(folder))
    assert data.provenance.details["unverified"] == []
    with pytest.raises(UserError) as refused:
        load_dataset("fashion_mnist", data_dir=str(folder))
    assert str(refused.value) == (
        f"{folder / 'train-images-idx3-ubyte'} is MNIST's train-images-idx3-ubyte (uncompressed), "
        "not Fashion-MNIST's; use data.dataset = mnist for these files, or point data.dir at "
        "Fashion-MNIST's (nothing was deleted)"
    )


def test_published_mnist_contents_are_those_of_its_gz_files():
    assert idx_family.FAMILY["mnist"].sha256["train-labels-idx1-ubyte"] == (
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
    )
    assert set(idx_family.FAMILY["mnist"].sha256) == set(idx_family.STEMS.values())
    assert idx_family.FAMILY["fashion_mnist"].sha256 == idx_family.FAMILY["kmnist"].sha256 == {}


def test_a_folder_with_three_of_the_four_files_names_the_missing_one(tiny_family):
    files = tiny_files("fashion_mnist")
    del files["train-labels-idx1-ubyte.gz"]
    folder = write(tiny_family / "data", files)
    with pytest.raises(UserError) as refused:
        load_dataset("fashion_mnist", data_dir=str(folder))
    assert str(refused.value) == (
        f"{folder} holds 3 of Fashion-MNIST's four IDX files but not train-labels-idx1-ubyte(.gz); "
        "add it, or point data.dir at a folder with all four"
    )


def test_label_outside_the_ten_classes_names_the_file(tiny_family, monkeypatch):
    files = tiny_files("mnist")
    files["train-labels-idx1-ubyte.gz"] = gzip.compress(idx_bytes(np.array([0, 1, 12])), mtime=0)
    md5 = {name: hashlib.md5(body).hexdigest() for name, body in files.items()}
    monkeypatch.setitem(
        idx_family.FAMILY, "mnist", dataclasses.replace(idx_family.FAMILY["mnist"], md5=md5)
    )
    with pytest.raises(
        UserError, match="train-labels-idx1-ubyte.gz holds label 12; MNIST's labels are 0..9"
    ):
        load_dataset("mnist", data_dir=str(write(tiny_family / "data", files)))


def test_offline_error_says_where_to_put_the_files(tiny_family):
    with pytest.raises(UserError) as e:
        load_dataset("fashion_mnist")
    cache = tiny_family / "cache" / "diffusiontools" / "fashion_mnist"
    message = str(e.value)
    assert f"Fashion-MNIST files not found in {cache}" in message
    assert "downloading is off: DIFFUSIONTOOLS_OFFLINE=1" in message
    assert "put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz" in message


def test_missing_data_dir_is_an_error_not_a_reason_to_look_elsewhere(tiny_family):
    with pytest.raises(UserError, match="data.dir=/no/such/folder does not exist"):
        load_dataset("kmnist", data_dir="/no/such/folder")


def test_a_wrong_file_in_the_cache_is_named_before_any_download(tiny_family, monkeypatch):
    monkeypatch.setenv(mnist.OFFLINE_VAR, "0")
    monkeypatch.setitem(
        idx_family.FAMILY,
        "kmnist",
        dataclasses.replace(idx_family.FAMILY["kmnist"], mirrors=("http://127.0.0.1:9/",)),
    )
    cache = tiny_family / "cache" / "diffusiontools" / "kmnist"
    write(cache, dict(list(tiny_files("fashion_mnist").items())[:1]))  # one of four: not "found"
    with pytest.raises(
        UserError, match="is Fashion-MNIST's train-images-idx3-ubyte.gz, not Kuzushiji"
    ):
        load_dataset("kmnist")
    assert sorted(path.name for path in cache.iterdir()) == ["train-images-idx3-ubyte.gz"]


def test_download_fetches_the_members_files_into_its_cache(tiny_family, monkeypatch):
    bodies = tiny_files("fashion_mnist")

    with mirror(bodies) as url:
        member = dataclasses.replace(idx_family.FAMILY["fashion_mnist"], mirrors=(url,))
        monkeypatch.setitem(idx_family.FAMILY, "fashion_mnist", member)
        monkeypatch.setenv(mnist.OFFLINE_VAR, "0")
        data = load_dataset("fashion_mnist")
    cache = tiny_family / "cache" / "diffusiontools" / "fashion_mnist"
    assert data.provenance.details["folder"] == str(cache)
    assert sorted(path.name for path in cache.iterdir()) == sorted(bodies)
    assert (data.train_images == 2).all()


@pytest.mark.real_mnist
def test_real_mnist_loads_with_published_checksums(real_mnist):
    data = load_dataset("mnist", data_dir=str(real_mnist), download=False)
    assert data.train_images.shape == (60000, 1, 28, 28) and data.test_images.shape == (
        10000,
        1,
        28,
        28,
    )
    gz = {name: sums["md5"] for name, sums in data.provenance.files.items() if name.endswith(".gz")}
    assert gz == {name: md5 for name, md5 in idx_family.FAMILY["mnist"].md5.items() if name in gz}


@pytest.mark.real_mnist
def test_real_mnist_contents_have_the_recorded_sha256(real_mnist):
    for stem, sha256 in idx_family.FAMILY["mnist"].sha256.items():
        content = gzip.decompress((real_mnist / f"{stem}.gz").read_bytes())
        assert hashlib.sha256(content).hexdigest() == sha256
