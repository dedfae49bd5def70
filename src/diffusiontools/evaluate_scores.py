"""Every per-sample-set score of ``diffusiontools evaluate``, each with a bootstrap interval.

The metrics themselves live in ``evaluation/`` as pure functions; this module only feeds them
one sample set against fixed references (the test set's classifier features, its precision
radii, its nearest-training-image distances) and attaches a 95% percentile bootstrap interval
that resamples the samples only (``bootstrap_ci``). Each score is a dict
``{"value", "ci", "n", "n_boot", "note"}`` so that metrics.json says how it was obtained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .evaluation import (
    bootstrap_ci,
    class_entropy,
    class_histogram,
    fit_gmm,
    frechet_distance,
    grid_kl_faithful,
    grid_kl_normalised,
    kernel_inception_distance,
    mean_confidence,
    monte_carlo_kl,
    precision_recall,
    recognisable_fraction,
    total_variance,
)
from .evaluation.feature_metrics import fraction_inside, kth_neighbour_radii

N_BOOT = 1000  # cheap statistics (a mean, a variance sum) of a few hundred samples
N_BOOT_SET = 100  # set-level metrics that fit a covariance or search neighbours per resample
KID_SUBSETS = 100
KID_MAX_SUBSET = 1000
PR_K = 3  # Kynkäänniemi et al. 2019's default neighbourhood size
SET_NOTE = (
    "bootstrap over the samples with n_boot={n_boot}; a resample holds ~63% distinct rows, so "
    "the interval is biased like a smaller set's and shows the scale of the sampling noise"
)


def score(
    value: float,
    ci: tuple[float, float] | None,
    n: int,
    n_boot: int | None,
    note: str | None = None,
) -> dict:
    """One metric as stored in metrics.json; ``ci`` None says no interval could be computed."""
    return {
        "value": float(value),
        "ci": None if ci is None else [float(ci[0]), float(ci[1])],
        "n": int(n),
        "n_boot": n_boot,
        "note": note,
    }


@dataclass(frozen=True)
class HeldOutReference:
    """What every sample set is compared with, computed once per evaluation.

    features (K, 128) float64: classifier features of the first K test images;
    radii (K,): each test feature's distance to its PR_K-th nearest test feature;
    nn_distances (K,): each test image's L2 distance to its nearest training image.
    """

    features: np.ndarray
    radii: torch.Tensor
    nn_distances: np.ndarray

    @classmethod
    def build(cls, features: np.ndarray, nn_distances: np.ndarray) -> HeldOutReference:
        return cls(features, kth_neighbour_radii(features, PR_K), nn_distances)


def pixel_scores(x: np.ndarray, seed: int, n_boot: int = N_BOOT) -> dict[str, dict]:
    """Total variance of x (N, 28, 28) float in [-0.5, 0.5] (the report's diversity number)."""
    ci = bootstrap_ci(total_variance, x, n_boot, seed)
    note = "a resample repeats rows, so the interval sits ~(N-1)/N low"
    return {"total_variance": score(total_variance(x), ci, len(x), n_boot, note)}


def density_scores(embedding: np.ndarray, test_gmm, seed: int) -> dict[str, dict]:
    """The report's "KL" and the two principled estimates, from the samples' t-SNE points (N, 2).

    P is a 10-component mixture fitted to ``embedding``, Q (``test_gmm``) to the test set's part
    of the same joint t-SNE. No interval: a resample's KL needs its own joint t-SNE fit (minutes
    on 10,000 images), and re-fitting only the mixture would hide the t-SNE's own variance.
    """
    p_gmm, n = fit_gmm(embedding, seed), len(embedding)
    no_ci = "no bootstrap: each resample would need its own joint t-SNE fit"
    return {
        "kl_faithful": score(
            grid_kl_faithful(p_gmm, test_gmm),
            None,
            n,
            None,
            f"the report's unnormalised 201x201 grid sum; {no_ci}",
        ),
        "kl_grid_normalised": score(
            grid_kl_normalised(p_gmm, test_gmm),
            None,
            n,
            None,
            f"grid cell probabilities summing to 1; {no_ci}",
        ),
        "kl_monte_carlo": score(
            monte_carlo_kl(p_gmm, test_gmm, seed=seed),
            None,
            n,
            None,
            f"100,000 draws from P; {no_ci}",
        ),
    }


def feature_scores(
    features: np.ndarray, ref: HeldOutReference, seed: int, n_boot: int = N_BOOT_SET
) -> dict[str, dict]:
    """Fréchet distance, KID and precision/recall of sample features (N, 128) vs the test set."""
    n, note = len(features), SET_NOTE.format(n_boot=n_boot)
    subset = min(KID_MAX_SUBSET, n, len(ref.features))

    def kid(f: np.ndarray) -> float:
        return kernel_inception_distance(ref.features, f, subset, KID_SUBSETS, seed)[0]

    def precision(f: np.ndarray) -> float:
        return fraction_inside(f, ref.features, ref.radii)

    def recall(f: np.ndarray) -> float:
        # Duplicated rows in a resample shrink the sample radii, so this interval reads low.
        return fraction_inside(ref.features, f, kth_neighbour_radii(f, PR_K))

    kid_mean, kid_std = kernel_inception_distance(ref.features, features, subset, KID_SUBSETS, seed)
    prec, rec = precision_recall(ref.features, features, PR_K)
    boot = {
        name: bootstrap_ci(fn, features, n_boot, seed)
        for name, fn in [
            ("frechet", lambda f: frechet_distance(ref.features, f)),
            ("kid", kid),
            ("precision", precision),
            ("recall", recall),
        ]
    }
    kid_entry = score(
        kid_mean, boot["kid"], n, n_boot, f"mean over {KID_SUBSETS} subsets of {subset}; {note}"
    )
    kid_entry["std"] = kid_std  # spread over the KID subsets, as KID is usually quoted
    return {
        "frechet_distance": score(
            frechet_distance(ref.features, features), boot["frechet"], n, n_boot, note
        ),
        "kid": kid_entry,
        "precision": score(prec, boot["precision"], n, n_boot, f"k={PR_K}; {note}"),
        "recall": score(rec, boot["recall"], n, n_boot, f"k={PR_K}; {note}"),
    }


def class_scores(probabilities: np.ndarray, seed: int, n_boot: int = N_BOOT) -> dict[str, dict]:
    """Class entropy, mean confidence, recognisable fraction of class probabilities (N, 10)."""
    n = len(probabilities)
    stats = {
        "class_entropy": lambda p: class_entropy(class_histogram(p)),
        "mean_confidence": mean_confidence,
        "recognisable_fraction": recognisable_fraction,
    }
    return {
        name: score(fn(probabilities), bootstrap_ci(fn, probabilities, n_boot, seed), n, n_boot)
        for name, fn in stats.items()
    }


def memorisation_scores(
    sample_distances: np.ndarray, ref: HeldOutReference, seed: int, n_boot: int = N_BOOT
) -> dict[str, dict]:
    """Nearest-training-image distances of the samples (N,) against the test set's own (K,).

    The same statistics as ``evaluation.memorisation_summary``, taken from distances computed
    once for the test baseline (K x 60,000 distances are the expensive part), so that several
    runs share it; the test baseline is fixed and only the samples are resampled.
    """
    n, test_d = len(sample_distances), ref.nn_distances
    median_test, test_p1 = float(np.median(test_d)), float(np.percentile(test_d, 1))
    stats = {
        "memorisation_median_distance": np.median,
        "memorisation_ratio": lambda d: np.median(d) / median_test,
        "memorisation_below_test_p1": lambda d: np.mean(d < test_p1),
    }
    out = {
        name: score(
            fn(sample_distances), bootstrap_ci(fn, sample_distances, n_boot, seed), n, n_boot
        )
        for name, fn in stats.items()
    }
    out["memorisation_ratio"]["note"] = (
        f"median sample / median test ({median_test:.4f}, K={len(test_d)})"
    )
    out["memorisation_below_test_p1"]["note"] = f"test set's 1st percentile {test_p1:.4f}"
    return out
