"""A flat folder of images (no class labels): an unconditional model trains, samples and is
evaluated on it; what needs labels (a class-conditional model, digit=, the quality probe, the
class metrics) is refused or left out with a sentence saying so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from tiny_runs import single_thread, tiny_config, train_tiny  # noqa: F401  (autouse: one thread)

import diffusiontools as dt
from diffusiontools.data.embedded import embedded_mnist
from diffusiontools.errors import UserError

N_IMAGES = 120  # 108 train images (the first 100 used: 80 train split, 20 validation), 12 test


@pytest.fixture
def digits_folder(tmp_path) -> Path:
    """The first N_IMAGES embedded MNIST digits as a flat folder of 28x28 gray PNGs."""
    images = embedded_mnist()[0][:N_IMAGES]  # (N, 28, 28) uint8
    folder = tmp_path / "digits"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image, "L").save(folder / f"{i:03d}.png")
    return folder


def folder_keys(folder: Path) -> tuple[str, str]:
    return "data.dataset=folder", f"data.dir={folder}"


def test_an_unconditional_model_trains_and_samples_on_unlabelled_images(tmp_path, digits_folder):
    run = train_tiny(tmp_path / "run", *folder_keys(digits_folder), "data.subset=100")
    record = json.loads((run / "data.json").read_text())
    assert record["dataset"]["spec"]["num_classes"] == 0
    assert (record["n_train_split"], record["n_val_split"]) == (80, 20)
    model = dt.load(run, device="cpu")
    assert tuple(model.sample(4, seed=0).shape) == (4, 1, 28, 28)
    with pytest.raises(UserError) as e:
        model.sample(4, digit=3)
    assert str(e.value) == (
        "digit=3 needs a class-conditional model (model.num_classes > 0); this model is "
        "unconditional"
    )


def test_a_class_conditional_model_is_refused_on_unlabelled_images(tmp_path, digits_folder):
    with pytest.raises(UserError) as e:
        train_tiny(tmp_path / "run", *folder_keys(digits_folder), "model.num_classes=10")
    assert str(e.value) == (
        "model.num_classes = 10 needs class labels, and data.dataset = folder has none: give "
        "model.num_classes = 0 (unconditional)"
    )
    assert not (tmp_path / "run" / "data.json").exists()


def test_the_quality_probe_is_refused_on_unlabelled_images(tmp_path, digits_folder):
    with pytest.raises(UserError) as e:
        dt.train(tiny_config(*folder_keys(digits_folder), "training.eval_every=1"), tmp_path / "r")
    assert str(e.value) == (
        "training.eval_every=1: the quality probe scores with a classifier of the data set's "
        "classes, and data.dataset = folder has no class labels; set training.eval_every = 0 "
        "and score the run with `diffusiontools evaluate`"
    )
    assert not (tmp_path / "r").exists()
