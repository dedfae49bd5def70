"""Does a model copy its training images? Nearest-neighbour distances in pixel space.

A sample's L2 distance to its nearest training image means little alone, so it is compared with
the same distance for held-out test images, which the model never saw: a generator that
memorises has samples much closer to the training set than test images are (ratio << 1, and
many samples below the test set's 1st percentile).
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from diffusiontools.errors import UserError


@dataclass(frozen=True)
class MemorisationSummary:
    """Sample-to-train vs test-to-train nearest-neighbour distances (L2, [-0.5, 0.5] units).

    closest_samples: indices into the samples of the ``n_pairs`` smallest distances, ascending;
    closest_train: the matching training image indices, for drawing the pairs side by side.
    """

    median_sample_distance: float
    median_test_distance: float
    ratio: float  # median sample / median test
    fraction_below_test_p1: float  # samples closer than the test set's 1st percentile
    closest_samples: np.ndarray
    closest_train: np.ndarray


def nearest_neighbour_distances(
    queries: torch.Tensor, reference: torch.Tensor, batch: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query, the L2 distance to its nearest reference image and that image's index.

    queries (N, ...) and reference (M, ...): float images in [-0.5, 0.5] of one shape, e.g.
    (N, C, H, W); compared flattened, in float32 on their own device.
    Returns distances (N,) float and indices (N,) int64. Chunked so memory is batch x M.
    Raises UserError for an empty reference, which has no nearest image.
    """
    if len(reference) == 0:
        raise UserError("nearest_neighbour_distances needs >= 1 reference image, got 0.")
    q = queries.reshape(len(queries), -1).float()  # (N, C * H * W)
    r = reference.reshape(len(reference), -1).float().to(q.device)  # (M, C * H * W)
    # cdist's fast matrix-product form loses ~1e-3 to cancellation near 0, so it only picks the
    # neighbour; the distance to it is recomputed directly, making an exact copy read 0.
    indices = torch.cat(
        [torch.cdist(q[i : i + batch], r).argmin(dim=1) for i in range(0, len(q), batch)]
    )
    return (q - r[indices]).norm(dim=1), indices


def memorisation_statistics(test_distances: np.ndarray) -> dict[str, Callable]:
    """The statistics of sample distances d (N,) to their nearest training image, measured
    against the test images' own distances (K,): median, median / test median, and the fraction
    below the test set's 1st percentile. Functions of d, so a caller can resample the samples."""
    median_test = float(np.median(test_distances))
    test_p1 = float(np.percentile(test_distances, 1))
    return {
        "median_distance": np.median,
        "ratio": lambda d: np.median(d) / median_test,
        "below_test_p1": lambda d: np.mean(d < test_p1),
    }


def memorisation_summary(
    samples: torch.Tensor,
    train: torch.Tensor,
    test: torch.Tensor,
    n_pairs: int = 8,
    batch: int = 512,
) -> MemorisationSummary:
    """Compare samples' and test images' nearest-training-image distances.

    samples (N, ...), train (M, ...), test (K, ...): float images in [-0.5, 0.5] of one shape,
    e.g. (N, C, H, W). Cost is (N + K) x M distances; a few thousand test images give a stable
    baseline.
    """
    sample_d, sample_i = nearest_neighbour_distances(samples, train, batch)
    test_d, _ = nearest_neighbour_distances(test, train, batch)
    sample_d, sample_i, test_d = (
        sample_d.cpu().numpy(),
        sample_i.cpu().numpy(),
        test_d.cpu().numpy(),
    )
    stats = memorisation_statistics(test_d)
    closest = np.argsort(sample_d, kind="stable")[:n_pairs]
    return MemorisationSummary(
        median_sample_distance=float(stats["median_distance"](sample_d)),
        median_test_distance=float(np.median(test_d)),
        ratio=float(stats["ratio"](sample_d)),
        fraction_below_test_p1=float(stats["below_test_p1"](sample_d)),
        closest_samples=closest,
        closest_train=sample_i[closest],
    )
