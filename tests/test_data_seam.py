"""The data seam: ``[data] dataset`` in the config, ``load_data`` the one way to images, what a run
records of its data, and the data sets this version refuses to train on or to score."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import idx_bytes
from tiny_runs import single_thread, tiny_config, train_tiny  # noqa: F401  (autouse: one thread)

import diffusiontools as dt
from diffusiontools.config import (
    DATASETS,
    RECORDED_DATASETS,
    DataConfig,
    config_from_dict,
    read_config,
)
from diffusiontools.data import data_record, idx_family, load_data, load_mnist, to_model
from diffusiontools.data.sources import SOURCES
from diffusiontools.diffusion import make_process
from diffusiontools.errors import UserError
from diffusiontools.evaluation.classifier_store import store_folder
from diffusiontools.training.run_folder import EXPORT_DESCRIPTION
from diffusiontools.training.trained_model import export_run, load_model

OLD_RUNS = Path(__file__).parent / "fixtures" / "old_runs"
FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat") + (
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
KMNIST = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")


# --- the config key ---------------------------------------------------------------------------


def test_dataset_defaults_to_mnist_and_offers_the_sources_a_config_can_name():
    assert DataConfig().dataset == "mnist"
    assert set(DATASETS) == set(SOURCES) - {"mnist_embedded", *RECORDED_DATASETS}
    assert set(RECORDED_DATASETS) <= set(SOURCES)
    with pytest.raises(UserError) as e:
        read_config(None, ["data.dataset=cifar"])
    assert str(e.value) == (
        "data.dataset='cifar' is not allowed: choose one of mnist, fashion_mnist, kmnist, "
        "cifar10, folder, npz, digits8, coloured_mnist"
    )
    # memory, what a run trained on arrays records, reads back from a record
    assert config_from_dict({"data": {"dataset": "memory"}}).data.dataset == "memory"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["data.dataset=digits8", "data.source=embedded"],
            "data.source=embedded applies to MNIST (data.dataset = mnist) only; another data "
            "set would ignore it: remove it",
        ),
        (
            ["data.channels=3"],
            "data.channels=3 applies to a folder of images (data.dataset = folder) only; "
            "another data set would ignore it: remove it",
        ),
        (
            ["data.dataset=fashion_mnist", "data.test_fraction=0.2"],
            "data.test_fraction=0.2 applies to data sets without their own test split "
            "(data.dataset = folder, npz, digits8 or memory) only; a data set with its own test "
            "split would ignore it: remove it",
        ),
        (
            ["data.dataset=digits8", "data.dir=/tmp"],
            "data.dir=/tmp applies to data sets read from files (data.dataset other than "
            "digits8 and coloured_mnist) only; a data set made from what installed packages "
            "ship (digits8, coloured_mnist) would ignore it: remove it",
        ),
        (["data.dataset=npz"], "data.dataset = npz needs data.dir, the .npz file"),
        (["data.dataset=folder", "data.channels=2", "data.dir=/tmp"], "data.channels=2 is not"),
        (["data.test_fraction=0.95"], "data.test_fraction=0.95 is out of range: must be <= 0.9"),
    ],
)
def test_keys_of_other_data_sets_are_refused(overrides, message):
    with pytest.raises(UserError) as e:
        tiny_config(*overrides)
    assert str(e.value).startswith(message)


def test_a_record_without_the_dataset_key_reads_as_mnist():
    config, _ = read_config(OLD_RUNS / "9d1e346_gaussian" / "config.ini")
    assert config.data.dataset == "mnist" and config.data.source == "mnist"
    stored = config_from_dict({"data": {"dir": None, "source": "auto", "subset": 256}})
    assert stored.data.dataset == "mnist"


# --- load_data --------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["auto", "embedded"])
def test_load_data_of_mnist_is_load_mnist_with_a_channel_axis(source):
    old = load_mnist(None, source)
    new = load_data(DataConfig(source=source))
    assert new.train_images.shape == (len(old.train_images), 1, 28, 28)
    for split in ("train", "test"):
        assert torch.equal(getattr(new, f"{split}_images")[:, 0], getattr(old, f"{split}_images"))
        assert torch.equal(getattr(new, f"{split}_labels"), getattr(old, f"{split}_labels"))
    assert new.spec.shape == (1, 28, 28) and new.spec.class_names == tuple("0123456789")
    record = data_record(new)
    for key in ("source", "folder", "n_train", "n_test", "md5"):
        assert record[key] == old.provenance[key]
    assert record["source"] == {"auto": "mnist", "embedded": "embedded"}[source]
    assert record["dataset"]["spec"]["height"] == 28


def tiny_member(n_train: int = 64, n_test: int = 16) -> dict[str, bytes]:
    """Four IDX .gz files of small random 28x28 images in 10 classes."""
    rng = np.random.default_rng(0)
    arrays = [
        rng.integers(0, 256, (n_train, 28, 28)),
        np.arange(n_train) % 10,
        rng.integers(0, 256, (n_test, 28, 28)),
        np.arange(n_test) % 10,
    ]
    return {
        f"{stem}.gz": gzip.compress(idx_bytes(array), mtime=0)
        for stem, array in zip(idx_family.STEMS.values(), arrays, strict=True)
    }


def member_folder(folder: Path, member: str, monkeypatch) -> Path:
    """``folder`` holding tiny files of ``member``, whose md5s stand in for the published ones."""
    files = tiny_member()
    md5 = {name: hashlib.md5(body).hexdigest() for name, body in files.items()}
    patched = dataclasses.replace(idx_family.FAMILY[member], md5=md5)
    monkeypatch.setitem(idx_family.FAMILY, member, patched)
    folder.mkdir()
    for name, body in files.items():
        (folder / name).write_bytes(body)
    return folder


@pytest.fixture
def fashion_folder(tmp_path, monkeypatch) -> Path:
    return member_folder(tmp_path / "fashion", "fashion_mnist", monkeypatch)


def test_an_mnist_file_of_another_member_is_named_and_left_in_place(fashion_folder):
    path = fashion_folder / "train-images-idx3-ubyte.gz"
    before = path.read_bytes()
    with pytest.raises(UserError) as e:
        load_data(DataConfig(dir=str(fashion_folder), source="mnist"))
    assert str(e.value) == (
        f"{path} is Fashion-MNIST's train-images-idx3-ubyte.gz, not MNIST's; use data.dataset "
        "= fashion_mnist for these files, or point data.dir at MNIST's (nothing was deleted)"
    )
    assert path.read_bytes() == before


def test_the_cold_start_takes_the_images_it_is_handed():
    """The diffusion layer loads no data: its test start degrades the test images given."""
    config = tiny_config("diffusion.kind=cold", "sampling.start=test")
    loaded = load_data(config.data)
    white = dataclasses.replace(loaded, test_images=torch.full_like(loaded.test_images, 255))
    process = make_process(config)
    start = process.start_state(3, torch.Generator().manual_seed(0), "cpu", config, white, 5)
    again = process.start_from(
        to_model(white.test_images[5:8]), "test", torch.Generator().manual_seed(0)
    )
    assert torch.equal(start.x, again.x)


# --- what trains, what is recorded, what is refused --------------------------------------------


@pytest.mark.parametrize("member, class_names", [("fashion_mnist", FASHION), ("kmnist", KMNIST)])
def test_the_idx_family_trains_samples_and_is_recorded(tmp_path, monkeypatch, member, class_names):
    folder = member_folder(tmp_path / member, member, monkeypatch)
    run = train_tiny(
        tmp_path / "run",
        f"data.dataset={member}",
        f"data.dir={folder}",
        "data.subset=40",
        "training.epochs=1",
        "training.batch_size=8",
    )
    record = json.loads((run / "data.json").read_text())
    assert record["source"] == member
    assert record["n_train"] == 64 and record["n_train_split"] == 32
    assert record["dataset"]["spec"] == {
        "channels": 1,
        "height": 28,
        "width": 28,
        "num_classes": 10,
        "class_names": list(class_names),
    }
    assert record["dataset"]["provenance"]["source"] == member
    model = load_model(run, None, torch.device("cpu"))
    assert model.data["dataset"]["spec"]["class_names"] == list(class_names)  # the checkpoint's
    samples = model.sample(4, seed=0)
    assert samples.shape == (4, 1, 28, 28) and torch.isfinite(samples).all()
    exported = json.loads((export_run(run) / EXPORT_DESCRIPTION).read_text())
    assert exported["data"]["dataset"]["spec"] == record["dataset"]["spec"]
    with pytest.raises(UserError) as e:
        dt.evaluate({member: model}, n_samples=10, out=tmp_path / "eval", device="cpu")
    fingerprint = load_data(DataConfig(dataset=member, dir=str(folder))).fingerprint()[:12]
    assert str(e.value) == (
        f"evaluate: samples of data.dataset = {member} need a classifier of that data set "
        f"(fingerprint {fingerprint}), and none is stored in {store_folder()}; train one with "
        f"`diffusiontools classifier train --set data.dataset={member} --set data.dir={folder}`"
    )


def test_the_quality_probe_refuses_a_data_set_without_its_classifier(tmp_path, fashion_folder):
    with pytest.raises(UserError) as e:
        config = tiny_config(
            "data.dataset=fashion_mnist", f"data.dir={fashion_folder}", "training.eval_every=1"
        )
        dt.train(config, tmp_path / "run")
    data = DataConfig(dataset="fashion_mnist", dir=str(fashion_folder))
    assert str(e.value) == (
        "training.eval_every=1: samples of data.dataset = fashion_mnist need a classifier of "
        f"that data set (fingerprint {load_data(data).fingerprint()[:12]}), and none is stored "
        f"in {store_folder()}; train one with `diffusiontools classifier train --set "
        f"data.dataset=fashion_mnist --set data.dir={fashion_folder}`, or set "
        "training.eval_every = 0 to train without the quality probe"
    )
    assert not (tmp_path / "run" / "data.json").exists()


@pytest.mark.parametrize("n", [5, 11])
def test_a_class_count_that_does_not_fit_the_data_is_refused_before_training(tmp_path, n):
    """Five classes cannot embed MNIST's labels 0-9 (it was an IndexError deep in torch);
    eleven would learn a class that has no images."""
    with pytest.raises(UserError) as e:
        train_tiny(tmp_path / "run", f"model.num_classes={n}")
    assert str(e.value) == (
        f"model.num_classes = {n} does not fit data.dataset = mnist, which has 10 classes: "
        "give 0 (unconditional) or 10"
    )
    assert not (tmp_path / "run" / "checkpoints").exists()
