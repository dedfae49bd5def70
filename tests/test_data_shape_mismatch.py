"""A run meets data of another shape than it trained on: resuming it, or sampling a cold model
(which starts from the data's test images), is refused in one sentence naming data.dataset and
both shapes, before any weight is loaded or any image degraded; other images of the same shape
are told apart by their files' sha256s."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_runs import one_thread

import diffusiontools as dt
from diffusiontools.errors import UserError
from diffusiontools.training.run_config import load_config
from diffusiontools.training.trainer import train

TINY = {
    "data.dataset": "folder",
    "model.n_hidden": "8,8",
    "diffusion.T": 20,
    "training.batch_size": 4,
    "training.epochs": 1,
    "training.max_steps": 2,
}


def image_folder(folder: Path, size: int) -> Path:
    """Two classes of 6 gray ``size`` x ``size`` PNGs each; an earlier folder's images replaced."""
    for i in range(12):
        path = folder / ("a" if i % 2 else "b") / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (size, size), 20 * i).save(path)
    return folder


def train_on(folder: Path, run: Path, *, resume: bool = False, **overrides) -> Path:
    with one_thread():
        return train(
            load_config(None, {**TINY, "data.dir": folder, **overrides}), run, resume=resume
        )


def test_resuming_on_images_of_another_size_names_both_shapes(tmp_path):
    run = train_on(image_folder(tmp_path / "small", 8), tmp_path / "run")
    other = image_folder(tmp_path / "large", 12)  # as many images, another size
    with pytest.raises(UserError) as e:  # the CNN would otherwise train on them
        train_on(other, run, resume=True, **{"training.max_steps": 4, "training.epochs": 2})
    assert str(e.value) == (
        f"resume=True: data.dataset = folder gives 1x12x12 images, but the run in {run} trained "
        "on 1x8x8 images of data.dataset = folder; point data.dir at the run's data"
    )


def test_resuming_on_other_images_of_the_same_shape_and_count_is_refused(tmp_path):
    run = train_on(image_folder(tmp_path / "first", 8), tmp_path / "run")
    other = image_folder(tmp_path / "second", 8)
    (other / "a" / "1.png").unlink()
    Image.new("L", (8, 8), 255).save(other / "a" / "1.png")  # one image of twelve differs
    with pytest.raises(
        UserError, match=r"resume=True: the data found now is not .* \(files sha256 \['"
    ):
        train_on(other, run, resume=True, **{"training.max_steps": 4, "training.epochs": 2})
    moved = image_folder(tmp_path / "moved", 8)  # the same images elsewhere: data.dir may change
    train_on(moved, run, resume=True, **{"training.max_steps": 4, "training.epochs": 2})


def test_resuming_with_another_data_set_names_data_dataset(tmp_path):
    """Refused with the config, before the data loads: the run's data set is another one."""
    run = train_on(image_folder(tmp_path / "small", 8), tmp_path / "run")
    np.savez(tmp_path / "x.npz", images=np.zeros((12, 12, 12), np.uint8), labels=np.arange(12) % 2)
    with pytest.raises(UserError, match="data.dataset 'folder' -> 'npz'"):
        train_on(tmp_path / "x.npz", run, resume=True, **{"data.dataset": "npz"})


def test_a_cold_model_refuses_to_start_from_images_of_another_size(tmp_path):
    folder = image_folder(tmp_path / "images", 28)
    run = train_on(folder, tmp_path / "run", **{"diffusion.kind": "cold"})
    image_folder(folder, 16)  # the run's folder now holds other images
    with pytest.raises(UserError) as e:
        dt.load(run).sample(2)
    assert str(e.value) == (
        f"sample: data.dataset = folder gives 1x16x16 images, but the run in {run} trained on "
        "1x28x28 images of data.dataset = folder; give data_dir=THEIR_PATH, where the run's "
        "data lie now"
    )
