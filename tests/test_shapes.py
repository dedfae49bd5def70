"""The data decides the shape: digits8 (1x8x8) and an RGB 32x32 data set train, sample and write
their files end to end; a run loaded without its data knows its shape from its record."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_runs import single_thread, train_tiny  # noqa: F401  (autouse: one thread)

import diffusiontools as dt
from diffusiontools.config import ModelConfig
from diffusiontools.data import recorded_shape
from diffusiontools.errors import UserError
from diffusiontools.models import make_network
from diffusiontools.outputs.samples_io import load_samples
from diffusiontools.training.sample_files import sample_files, sample_to_files
from diffusiontools.training.trained_model import export_run

DIGITS8 = ("data.dataset=digits8", "data.subset=256", "training.epochs=1")
TINY_UNET = ("model.network=unet", "model.base_channels=8")


def blobs_npz(path, n: int = 64, size: int = 32) -> None:
    """``n`` RGB images (N, H, W, 3) of one coloured disc each on black, labelled by its colour
    (0 red, 1 green, 2 blue), at seeded random places."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:size, :size]
    images = np.zeros((n, size, size, 3), np.uint8)
    labels = np.arange(n) % 3
    for i, colour in enumerate(labels):
        r, c = rng.integers(6, size - 6, 2)
        disc = (rows - r) ** 2 + (cols - c) ** 2 <= 25
        images[i, disc, colour] = 255
    np.savez(path, images=images, labels=labels)


@pytest.mark.parametrize("network", [("model.network=cnn",), TINY_UNET])
def test_digits8_trains_samples_and_writes_its_grid_and_npz(tmp_path, network):
    run = train_tiny(tmp_path / "run", *DIGITS8, *network)
    model = dt.load(run)
    assert model.shape == (1, 8, 8)
    assert model.sample(4).shape == (4, 1, 8, 8)
    files = sample_to_files(model, sample_files(run), 5)
    images, _ = load_samples(files.npz)
    assert images.shape == (5, 8, 8) and images.dtype == np.uint8
    with np.load(files.npz) as stored:
        assert stored["images"].shape == (5, 8, 8) and int(stored["format"]) == 2
    assert files.grid.is_file()


def test_a_unet_with_more_levels_than_8x8_halves_into_is_refused(tmp_path):
    with pytest.raises(UserError) as e:
        train_tiny(tmp_path / "run", *DIGITS8, *TINY_UNET, "model.channel_mults=1,1,1,1,1")
    assert str(e.value) == (
        "model.channel_mults = (1, 1, 1, 1, 1) asks for 5 levels, but 8x8 images halve exactly "
        "into at most 4: give 1 to 4 entries"
    )


def test_a_cold_level_beyond_8x8_images_is_refused(tmp_path):
    """pixelate's default level_max, 14 px, is larger than digits8's side (tests/test_cold_shapes
    trains cold processes on other sizes)."""
    with pytest.raises(UserError) as e:
        train_tiny(
            tmp_path / "run", *DIGITS8, "diffusion.kind=cold", "diffusion.degradation=pixelate"
        )
    assert str(e.value) == (
        "diffusion.level_max = 14 (the default of pixelate) exceeds 8, the most pixelate takes "
        "on the 8x8 images of data.dataset = digits8: use at most 8"
    )


def test_rgb_32x32_trains_a_unet_and_samples_without_its_data(tmp_path):
    data = tmp_path / "blobs.npz"
    blobs_npz(data)
    run = train_tiny(
        tmp_path / "run",
        "data.dataset=npz",
        f"data.dir={data}",
        "data.subset=64",
        "training.epochs=1",
        "sampling.sample_every=1",
        "sampling.n_samples=4",
        "training.log=tensorboard",
        *TINY_UNET,
        "model.channel_mults=1,2",
    )
    assert (run / "samples" / "epoch_0000.png").is_file()  # the RGB grid drawn while training
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))  # with its RGB image
    data.unlink()  # sample, export and load back: the shape comes from the run's record
    model = dt.load(run)
    assert model.shape == (3, 32, 32)
    assert model.sample(3).shape == (3, 3, 32, 32)
    exported = dt.load(export_run(run))
    assert exported.shape == (3, 32, 32)
    assert torch.equal(exported.sample(2, seed=1), model.sample(2, seed=1))
    files = sample_to_files(model, sample_files(run, trajectory=True), 3)
    images, _ = load_samples(files.npz)
    assert images.shape == (3, 3, 32, 32) and files.grid.is_file() and files.trajectory.is_file()
    assert dt.show(model.sample(2)).figure is not None


def test_an_old_npz_of_28x28_images_still_reads(tmp_path):
    old = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28).astype(np.uint8)
    np.savez_compressed(tmp_path / "old.npz", images=old, meta=json.dumps({"seed": 4}))
    images, meta = load_samples(tmp_path / "old.npz")
    assert images.shape == (3, 28, 28) and np.array_equal(images, old) and meta == {"seed": 4}


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (2, 16, 16), (2, 1, 16, 16)])
def test_a_users_npz_without_format_reads_at_any_size(tmp_path, shape):
    """np.savez(path, images=...) of CIFAR-sized samples was refused by a message listing
    (N, 3, H, W) among the shapes expected; torch's gray (N, 1, H, W) reads as (N, H, W)."""
    mine = np.arange(np.prod(shape)).reshape(shape).astype(np.uint8)
    np.savez(tmp_path / "mine.npz", images=mine)
    images, meta = load_samples(tmp_path / "mine.npz")
    assert np.array_equal(images, mine.reshape(-1, *shape[-2:]) if shape[1] == 1 else mine)
    assert meta == {}


def test_an_npz_of_another_layout_is_refused_in_one_sentence(tmp_path):
    np.savez(tmp_path / "hwc.npz", images=np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(UserError) as e:
        load_samples(tmp_path / "hwc.npz")
    assert str(e.value) == (
        f"npz={tmp_path / 'hwc.npz'} holds 'images' of uint8 (2, 8, 8, 3): expected an NPZ "
        "archive holding 'images', uint8 (N, H, W) or (N, 3, H, W), as diffusiontools sample "
        "writes"
    )


def test_an_npz_of_an_unknown_format_is_refused(tmp_path):
    path = tmp_path / "new.npz"
    np.savez_compressed(path, images=np.zeros((2, 8, 8), np.uint8), meta="{}", format=3)
    with pytest.raises(UserError) as e:
        load_samples(path)
    assert str(e.value) == (
        f"npz={path} has format 3; this version reads format 2 and files without one: "
        "update diffusiontools"
    )


def test_a_record_without_a_spec_reads_as_28x28_gray():
    assert recorded_shape(None) == (1, 28, 28)
    assert recorded_shape({"source": "mnist", "md5": {}}) == (1, 28, 28)
    spec = {"channels": 3, "height": 32, "width": 32, "num_classes": 0, "class_names": []}
    assert recorded_shape({"dataset": {"spec": spec}}) == (3, 32, 32)


@pytest.mark.parametrize("network", ["cnn", "unet", "unet2d_diffusers"])
def test_networks_map_images_of_their_shape_to_the_same_shape(network):
    if network == "unet2d_diffusers":
        pytest.importorskip("diffusers")
    config = ModelConfig(network=network, base_channels=8)
    net = make_network(config, seed=0, T=20, shape=(3, 16, 16))
    x = torch.zeros(2, 3, 16, 16)
    assert net(x, torch.full((2,), 0.5)).shape == (2, 3, 16, 16)
