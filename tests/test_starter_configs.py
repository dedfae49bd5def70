"""The starter configs of the other data sets (digits8, fashion_mnist, cifar10, folder): each
loads and passes the config check, and trains a few steps, shrunk, on files the test writes in
its data set's own format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_idx_folder
from PIL import Image
from test_data_cifar10 import real_members, write_tarball
from tiny_runs import one_thread

import diffusiontools as dt
from diffusiontools.config import packaged_configs
from diffusiontools.training.run_config import load_config
from diffusiontools.training.trainer import train

STARTERS = ("digits8", "fashion_mnist", "cifar10", "folder")
# Each run shrunk to seconds: a narrow UNet (its levels as the config's), two optimiser steps.
SHRINK = ("model.base_channels=8", "training.batch_size=4", "training.max_steps=2")


def fashion_files(tmp_path: Path, monkeypatch) -> tuple[str, ...]:
    """Fashion-MNIST's four (uncompressed) IDX files: 20 train and 5 test 28x28 images."""
    rng = np.random.default_rng(0)
    arrays = [
        rng.integers(0, 256, (20, 28, 28)),
        np.arange(20) % 10,
        rng.integers(0, 256, (5, 28, 28)),
        np.arange(5),
    ]
    return (f"data.dir={write_idx_folder(tmp_path / 'fashion', arrays)}",)


def cifar_tarball(tmp_path: Path, monkeypatch) -> tuple[str, ...]:
    """cifar-10-python.tar.gz of 10 train and 2 test 32x32 RGB images, its md5 made published."""
    write_tarball(tmp_path / "cifar", real_members(), monkeypatch)
    return (f"data.dir={tmp_path / 'cifar'}",)


def image_folder(tmp_path: Path, monkeypatch) -> tuple[str, ...]:
    """Two classes of 6 PNGs each, gray and RGB of two sizes: the config converts them all."""
    for i in range(12):
        cls, mode = ("cats", "RGB") if i % 2 else ("dogs", "L")
        path = tmp_path / "mine" / cls / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        colour = (20 * i, 0, 255) if mode == "RGB" else 20 * i
        Image.new(mode, (12, 10) if i < 6 else (10, 10), colour).save(path)
    return (f"data.dir={tmp_path / 'mine'}", "data.image_size=8")


def no_files(tmp_path: Path, monkeypatch) -> tuple[str, ...]:
    return ("data.subset=64",)  # digits8 is embedded


DATA = {
    "digits8": (no_files, (1, 8, 8)),
    "fashion_mnist": (fashion_files, (1, 28, 28)),
    "cifar10": (cifar_tarball, (3, 32, 32)),
    "folder": (image_folder, (3, 8, 8)),
}


def test_the_starter_configs_are_packaged_and_pass_the_config_check():
    assert set(STARTERS) <= set(packaged_configs())
    for name in STARTERS:
        config = load_config(name)
        assert config.data.dataset == name and config.diffusion.kind == "gaussian"
        assert config.model.network == "unet" and config.training.ema_decay > 0
    folder = load_config("folder").data
    assert (folder.channels, folder.image_size) == (3, 32)
    assert folder.dir == str(Path("~/my_images").expanduser().resolve())
    assert load_config("cifar10").diffusion.schedule == "cosine"
    assert load_config("cifar10").model.channel_mults == (1, 2, 2, 2)


@pytest.mark.parametrize("name", STARTERS)
def test_each_starter_config_trains_on_its_own_format(tmp_path, monkeypatch, name):
    write_data, shape = DATA[name]
    overrides = [*write_data(tmp_path, monkeypatch), *SHRINK]
    with one_thread():
        run = train(load_config(name, overrides), tmp_path / "run")
    model = dt.load(run)
    assert model.step == 2 and model.shape == shape
    assert tuple(model.sample(2, steps=2).shape) == (2, *shape)
    record = json.loads((run / "data.json").read_text())
    assert record["dataset"]["spec"]["channels"] == shape[0]
    if name == "folder":  # every conversion made on the way in is in the run's record
        assert sorted(record["dataset"]["provenance"]["conversions"]) == [
            "12 of 12 images resized (bicubic) and centre-cropped to 8x8",
            "6 of 12 images of mode L converted to RGB by Pillow",
        ]


def test_the_folder_config_trains_on_a_folder_with_train_and_test_subfolders(tmp_path):
    """The README's command works on both folder layouts: folder.ini sets no test_fraction,
    which a folder with train/ and test/ would refuse (its splits are its own)."""
    for split, n in (("train", 8), ("test", 4)):
        for i in range(n):
            path = tmp_path / "mine" / split / ("cats" if i % 2 else "dogs") / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (10, 10), (20 * i, 0, 255)).save(path)
    overrides = [f"data.dir={tmp_path / 'mine'}", "data.image_size=8", *SHRINK]
    with one_thread():
        run = train(load_config("folder", overrides), tmp_path / "run")
    provenance = json.loads((run / "data.json").read_text())["dataset"]["provenance"]
    assert (provenance["n_train"], provenance["n_test"]) == (8, 4)
