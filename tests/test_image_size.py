"""``data.image_size`` on data sets of fixed size: Pillow's bilinear resize after loading (Bansal
et al.'s MNIST loader's), recorded in the data's spec, provenance and fingerprint, and followed by
everything that reads the side (degradation bounds, resume checks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import diffusiontools as dt
from diffusiontools.data import data_record, load_data
from diffusiontools.data.resize import resize_images
from diffusiontools.diffusion import make_process
from diffusiontools.errors import UserError
from diffusiontools.training.resume_rules import check_same_data
from diffusiontools.training.run_config import load_config


def mnist(*overrides: str):
    return load_config(None, list(overrides))


def test_a_2x2_image_upsamples_to_4x4_by_the_bilinear_closed_form():
    # Pixel centres at (i + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 of the source: the edges
    # copy the nearest pixel, the middle two weigh the pair 3:1 and 1:3, rows then columns.
    image = torch.tensor([[0, 160], [240, 80]], dtype=torch.uint8).reshape(1, 1, 2, 2)
    expected = [[0, 40, 120, 160], [60, 80, 120, 140], [180, 160, 120, 100], [240, 200, 120, 80]]
    assert resize_images(image, 4)[0, 0].tolist() == expected


def test_mnist_at_32px_is_torchs_bilinear_within_one_grey_level():
    images = load_data(mnist().data).test_images[:16]  # (16, 1, 28, 28)
    ours = resize_images(images, 32).float()
    theirs = F.interpolate(images.float(), size=(32, 32), mode="bilinear", align_corners=False)
    assert ours.shape == (16, 1, 32, 32)
    assert (ours - theirs.round()).abs().max() <= 1  # Pillow rounds its row pass to 8 bits


def test_mnist_at_image_size_32_records_the_resize():
    native, resized = load_data(mnist().data), load_data(mnist("data.image_size=32").data)
    assert resized.spec.shape == (1, 32, 32) and resized.train_images.shape[1:] == (1, 32, 32)
    assert resized.provenance.conversions == (
        "images resized (bilinear) from 28x28 to 32x32 (data.image_size)",
    )
    assert torch.equal(resized.train_labels, native.train_labels)
    assert resized.fingerprint() != native.fingerprint()
    assert load_data(mnist("data.image_size=28").data).fingerprint() == native.fingerprint()


def test_a_28px_resume_of_a_32px_run_names_data_image_size():
    native, resized = load_data(mnist().data), load_data(mnist("data.image_size=32").data)
    with pytest.raises(UserError) as e:
        check_same_data(data_record(resized), data_record(native), "runs/r")
    assert str(e.value) == (
        "resume=True: data.dataset = mnist gives 1x28x28 images, but the run in runs/r trained "
        "on 1x32x32 images of data.dataset = mnist; point data.dir at the run's data, or set "
        "data.image_size = 32, the run's side"
    )


def test_the_degradation_bounds_follow_image_size():
    settings = ("diffusion.kind=cold", "diffusion.degradation=resolution", "diffusion.level_max=5")
    with pytest.raises(UserError, match="exceeds 4, the most resolution takes on the 28x28"):
        mnist(*settings)
    make_process(mnist(*settings, "data.image_size=32"))  # 32 px halves five times
    with pytest.raises(UserError, match="exceeds 3, the most resolution takes on the 8x8"):
        mnist(*settings, "data.dataset=cifar10", "data.image_size=8")


def test_arrays_handed_over_refuse_image_size(tmp_path):
    images = np.zeros((20, 8, 8), dtype=np.uint8)
    config = dt.load_config("quickstart", {"data.image_size": 16})
    with pytest.raises(UserError, match=r"^data.image_size=16 resizes data sets loaded from"):
        dt.train(config, tmp_path / "run", data=images)
    assert not (tmp_path / "run").exists()
