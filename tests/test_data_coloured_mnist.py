"""Coloured MNIST: the embedded digits as RGB 32x32 on per-image colours, made offline."""

import numpy as np
import pytest
import torch

from diffusiontools.config import DataConfig
from diffusiontools.data import load_data
from diffusiontools.data.coloured_mnist import MIN_DISTANCE, colour_digits, colours, save_npz
from diffusiontools.data.sources import load_dataset


@pytest.fixture(scope="module")
def coloured():
    return load_dataset("coloured_mnist")


def test_it_is_rgb_32x32_uint8_with_the_embedded_split_and_labels(coloured):
    gray = load_dataset("mnist_embedded")
    assert coloured.train_images.shape == (4000, 3, 32, 32)
    assert coloured.test_images.shape == (1000, 3, 32, 32)
    assert coloured.train_images.dtype == torch.uint8
    assert coloured.spec.shape == (3, 32, 32) and coloured.spec.class_names == tuple("0123456789")
    assert torch.equal(coloured.train_labels, gray.train_labels)
    assert torch.equal(coloured.test_labels, gray.test_labels)
    assert coloured.provenance.source == "coloured_mnist"
    assert coloured.provenance.details["colour_seed"] == 0


def test_the_same_seed_gives_the_same_images_and_another_seed_other_colours(coloured):
    again = load_dataset("coloured_mnist", seed=0)
    other = load_dataset("coloured_mnist", seed=1)
    assert again.fingerprint() == coloured.fingerprint()
    assert other.fingerprint() != coloured.fingerprint()
    assert torch.equal(other.train_labels, coloured.train_labels)


def test_the_border_is_the_background_and_full_ink_is_the_digit_colour():
    digits = np.zeros((3, 28, 28), dtype=np.uint8)
    digits[:, 10:18, 12:16] = 255  # a bar of full ink
    digits[2, 0, 0] = 128  # half ink at the corner of the original 28x28
    rgb = colour_digits(digits, seed=5)
    digit, background = colours(3, np.random.default_rng(5))
    assert rgb.shape == (3, 32, 32, 3) and rgb.dtype == np.uint8
    for i in range(3):
        assert (rgb[i, :2] == background[i]).all() and (rgb[i, :, -2:] == background[i]).all()
        assert (rgb[i, 12:20, 14:18] == digit[i]).all()  # the bar, shifted by the 2-pixel pad
    half = np.round(background[2] + 128 / 255 * (digit[2].astype(float) - background[2]))
    assert (rgb[2, 2, 2] == half).all()


def test_digit_and_background_colours_are_at_least_the_margin_apart():
    digit, background = colours(2000, np.random.default_rng(0))
    distance = np.linalg.norm(digit.astype(float) - background.astype(float), axis=1)
    assert MIN_DISTANCE == 128.0
    assert distance.min() >= 128.0


def test_the_npz_it_writes_is_read_by_the_npz_source(tmp_path, coloured):
    path = save_npz(tmp_path / "coloured", seed=0)
    assert path == tmp_path / "coloured"  # no ".npz" added behind the caller's back
    with np.load(path) as archive:
        assert archive["images"].shape == (5000, 32, 32, 3)
        assert archive["images"].dtype == np.uint8 and archive["labels"].dtype == np.int64
        expected = torch.cat([coloured.train_images, coloured.test_images])
        assert np.array_equal(archive["images"], expected.permute(0, 2, 3, 1).numpy())
    data = load_dataset("npz", path=path)
    assert data.spec.shape == (3, 32, 32) and data.spec.num_classes == 10
    assert len(data.train_images) + len(data.test_images) == 5000


def test_a_config_names_it_and_gets_the_same_data_set(coloured):
    data = load_data(DataConfig(dataset="coloured_mnist"))
    assert data.fingerprint() == coloured.fingerprint()
