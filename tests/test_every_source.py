"""Every data source end to end on files the test writes itself (no network): a tiny Gaussian
model trains on it, samples at the data's shape, exports and samples again from the export, and
its samples are scored with that data set's own classifier (MNIST's: the shipped one)."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_idx_folder
from PIL import Image
from tiny_runs import single_thread, tiny_config  # noqa: F401  (autouse: one thread)

import diffusiontools as dt
from diffusiontools.data import cifar10
from diffusiontools.data.sources import SOURCES
from diffusiontools.evaluation.classifier_store import train_for_dataset
from diffusiontools.training.trainer import train

# Evaluation at its smallest: 10 samples against 10 test images.
SMALL = {"n_samples": 10, "tsne_reference": 10, "test_reference": 10, "n_boot": 5, "n_boot_set": 2}
RNG = np.random.default_rng(0)


def idx_files(folder: Path) -> list[str]:
    """The four raw IDX files: 40 train and 12 test 28x28 images of 10 classes."""
    arrays = [
        RNG.integers(0, 256, (40, 28, 28)),
        np.arange(40) % 10,
        RNG.integers(0, 256, (12, 28, 28)),
        np.arange(12) % 10,
    ]
    return [f"data.dir={write_idx_folder(folder, arrays)}", "data.subset=40"]


def cifar_files(folder: Path, monkeypatch) -> list[str]:
    """cifar-10-python.tar.gz: 6 pickled batches (5 train, 1 test) of 12 RGB images each, its md5
    made the published one."""
    folder.mkdir(parents=True)
    path = folder / cifar10.ARCHIVE
    with tarfile.open(path, "w:gz") as tar:
        for name in [*cifar10.MEMBERS["train"], *cifar10.MEMBERS["test"]]:
            rows = RNG.integers(0, 256, (12, 3 * 32 * 32), dtype=np.uint8)
            body = pickle.dumps({"data": rows, "labels": [i % 10 for i in range(12)]})
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    monkeypatch.setattr(cifar10, "ARCHIVE_MD5", hashlib.md5(path.read_bytes()).hexdigest())
    return [f"data.dir={folder}", "data.subset=60"]


def image_folder(folder: Path) -> list[str]:
    """Two class folders of 12 PNGs, gray and RGB of two sizes, half held out for testing."""
    for i in range(24):
        cls, mode = ("cats", "RGB") if i % 2 else ("dogs", "L")
        path = folder / cls / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        colour = (10 * i, 0, 255) if mode == "RGB" else 10 * i
        Image.new(mode, (12, 10) if i < 12 else (10, 10), colour).save(path)
    overrides = [f"data.dir={folder}", "data.channels=3", "data.image_size=8"]
    return [*overrides, "data.test_fraction=0.5", "data.subset=12"]


def npz_file(folder: Path) -> list[str]:
    """48 gray 16x16 images (N, H, W) with labels 0-2, a quarter held out."""
    folder.mkdir(parents=True)
    path = folder / "mine.npz"
    np.savez(
        path, images=RNG.integers(0, 256, (48, 16, 16), dtype=np.uint8), labels=np.arange(48) % 3
    )
    return [f"data.dir={path}", "data.test_fraction=0.25", "data.subset=36"]


def sources(tmp_path: Path, monkeypatch) -> dict[str, tuple[list[str], tuple[int, int, int]]]:
    """Source -> (its [data] overrides, the images' shape)."""
    return {
        "mnist": (["data.subset=256"], (1, 28, 28)),
        "mnist_embedded": (["data.source=embedded", "data.subset=256"], (1, 28, 28)),
        "fashion_mnist": (idx_files(tmp_path / "fashion"), (1, 28, 28)),
        "kmnist": (idx_files(tmp_path / "kmnist"), (1, 28, 28)),
        "cifar10": (cifar_files(tmp_path / "cifar", monkeypatch), (3, 32, 32)),
        "folder": (image_folder(tmp_path / "mine"), (3, 8, 8)),
        "npz": (npz_file(tmp_path / "npz"), (1, 16, 16)),
        "digits8": (["data.subset=256"], (1, 8, 8)),
        "coloured_mnist": (["data.subset=256"], (3, 32, 32)),
    }


# Every source but ``memory`` (arrays from Python: the last test), as data.sources names them.
FILE_SOURCES = tuple(name for name in SOURCES if name != "memory")


@pytest.mark.slow
@pytest.mark.parametrize("source", FILE_SOURCES)
def test_each_source_trains_samples_exports_and_is_evaluated(source, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    written = sources(tmp_path, monkeypatch)
    assert set(written) == set(FILE_SOURCES)  # a source added to the package is added here
    data, shape = written[source]
    dataset = "mnist" if source == "mnist_embedded" else source
    config = tiny_config(
        f"data.dataset={dataset}", *data, "training.max_steps=2", "training.batch_size=8"
    )
    run = train(config, tmp_path / "run")
    model = dt.load(run)
    assert model.shape == shape and tuple(model.sample(2, steps=2).shape) == (2, *shape)
    export = model.export(tmp_path / "export")
    again = dt.load(export)
    assert torch.equal(again.sample(2, seed=1, steps=2), model.sample(2, seed=1, steps=2))
    recorded = json.loads((run / "data.json").read_text())["dataset"]
    assert recorded["spec"]["channels"] == shape[0] and recorded["spec"]["height"] == shape[1]
    if dataset != "mnist":  # MNIST's classifier ships with the package
        train_for_dataset(config.data, epochs=1)
    result = dt.evaluate({"tiny": model}, out=tmp_path / "eval", **SMALL)
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["settings"]["classifier"]["dataset"] == dataset
    classes = recorded["spec"]["num_classes"]
    assert len(metrics["runs"]["tiny"]["class_histogram"]) == classes
    assert 0.0 <= result.value("tiny", "class_entropy") <= np.log(classes) + 1e-9


def test_arrays_from_python_train_sample_and_export(tmp_path):
    images = RNG.integers(0, 256, (40, 3, 8, 8), dtype=np.uint8)
    labels = np.arange(40) % 4
    config = tiny_config("training.max_steps=2", "model.num_classes=4")
    model = dt.train(config, tmp_path / "run", data=(images, labels))
    assert model.shape == (3, 8, 8) and tuple(model.sample(2, label=3, steps=2).shape) == (
        2,
        3,
        8,
        8,
    )
    again = dt.load(model.export(tmp_path / "export"))
    assert torch.equal(again.sample(2, seed=1, steps=2), model.sample(2, seed=1, steps=2))
    assert json.loads((tmp_path / "run" / "data.json").read_text())["source"] == "memory"
