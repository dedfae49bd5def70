"""Does a set of samples look like its data pixel by pixel? Three cheap, readable frame statistics.

MNIST digits are centred in a 20x20 box inside the 28x28 image, so the outer 3-pixel frame is
almost always black, and most pixels are either black or near-white stroke. A sampler that
leaves noise or a grey haze (a young network, too few deterministic steps) fails both, even when
the classifier still reads the digit in the middle. All functions take uint8 images
(N, C, H, W) with C 1 (gray) or 3 (RGB), or gray (N, H, W), of any size, in 0..255; values in
"/255 units" are plain pixel values. The frame is 3 pixels wide whatever the size (an image of
at most 6 pixels a side is all frame). RGB images are measured on their channel mean, the
pixel's grey level: a frame or a haze is judged by brightness, not by one colour.
The test images' own values (``scores.reference_values``) say what a data set's frames hold.

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


def grey_levels(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, C, H, W), C 1 or 3, or (N, H, W) -> float64 (N, H, W): the channel
    mean, in 0..255. Raises UserError for another dtype or shape."""
    images = np.asarray(images)
    gray = images.ndim == 3
    if images.dtype != np.uint8 or not (gray or (images.ndim == 4 and images.shape[1] in (1, 3))):
        raise UserError(
            "frame statistics take uint8 images (N, C, H, W) with C 1 or 3, or (N, H, W), not "
            f"{images.dtype} {images.shape}"
        )
    return images.astype(np.float64) if gray else images.astype(np.float64).mean(axis=1)


def frame_means(images: np.ndarray) -> np.ndarray:
    """Mean grey level (N,) float64, in /255 units, of each image's outer 3-pixel frame
    (e.g. MNIST's 28 * 28 - 22 * 22 = 300 pixels within 3 of an edge)."""
    x = grey_levels(images)
    h, w, f = x.shape[1], x.shape[2], FRAME_WIDTH
    inner = x[:, f : h - f, f : w - f]  # (N, H - 6, W - 6); empty for H or W <= 6
    n_frame = h * w - inner.shape[1] * inner.shape[2]
    return (x.sum(axis=(1, 2)) - inner.sum(axis=(1, 2))) / n_frame


def mid_grey_fractions(images: np.ndarray) -> np.ndarray:
    """Fraction (N,) of each image's H * W pixels whose grey level lies strictly inside
    (25, 230)."""
    x = grey_levels(images)
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
    ``mid_grey_fraction`` (fraction of all pixels) of uint8 images (N, C, H, W) or (N, H, W)."""
    return {name: stat(per_image(images)) for name, (per_image, stat) in FRAME_STATISTICS.items()}
