"""Does a set of samples look like MNIST pixel by pixel? Three cheap, readable frame statistics.

MNIST digits are centred in a 20x20 box inside the 28x28 image, so the outer 3-pixel frame is
almost always black, and most pixels are either black or near-white stroke. A sampler that
leaves noise or a grey haze (a young network, too few deterministic steps) fails both, even when
the classifier still reads the digit in the middle. All functions take uint8 images (N, 28, 28)
in 0..255; values in "/255 units" are plain pixel values.

MNIST's own values (all 10,000 test images): frame mean 0.86/255, 2.4% of images with a frame
mean above 5/255, 8.6% of pixels mid-grey (tests/test_quality_probe.py measures them).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import UserError

FRAME_WIDTH = 3  # pixels along each edge
FRAME_THRESHOLD = 5  # /255: a frame mean above this is visibly not black
MID_GREY = (25, 230)  # exclusive bounds of a "mid-grey" pixel value


def _checked(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise UserError(
            f"frame statistics take uint8 images (N, 28, 28), not {images.dtype} {images.shape}"
        )
    return images


def frame_means(images: np.ndarray) -> np.ndarray:
    """Mean pixel value (N,) float64, in /255 units, of each image's outer 3-pixel frame
    (the 28 * 28 - 22 * 22 = 300 pixels within 3 of an edge)."""
    x = _checked(images).astype(np.float64)
    w = FRAME_WIDTH
    inner = x[:, w:-w, w:-w].sum(axis=(1, 2))
    n_frame = 28 * 28 - (28 - 2 * w) ** 2
    return (x.sum(axis=(1, 2)) - inner) / n_frame


def mid_grey_fractions(images: np.ndarray) -> np.ndarray:
    """Fraction (N,) of each image's 784 pixels whose value lies strictly inside (25, 230)."""
    x = _checked(images)
    low, high = MID_GREY
    return ((x > low) & (x < high)).mean(axis=(1, 2))


def fraction_above_threshold(per_image_frame_means: np.ndarray) -> float:
    """Fraction of images whose frame mean (from :func:`frame_means`) is above 5/255."""
    return float((np.asarray(per_image_frame_means) > FRAME_THRESHOLD).mean())


# name -> (per-image values, the statistic over them): the set's statistic is a mean over
# images of a per-image quantity, so an interval resamples the images (``scores.frame_scores``).
FRAME_STATISTICS: dict[str, tuple[Callable, Callable]] = {
    "frame_mean": (frame_means, lambda v: float(np.mean(v))),
    "frame_above_5": (frame_means, fraction_above_threshold),
    "mid_grey_fraction": (mid_grey_fractions, lambda v: float(np.mean(v))),
}


def frame_statistics(images: np.ndarray) -> dict[str, float]:
    """``frame_mean`` (/255 units), ``frame_above_5`` (fraction of images) and
    ``mid_grey_fraction`` (fraction of all pixels) of uint8 images (N, 28, 28)."""
    return {name: stat(per_image(images)) for name, (per_image, stat) in FRAME_STATISTICS.items()}
