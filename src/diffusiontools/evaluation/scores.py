"""Every per-sample-set score of ``diffusiontools evaluate``, each with a 95% interval.

The metrics themselves live in ``evaluation/`` as pure functions; this module only feeds them
one sample set against fixed references (the test set's classifier features, its precision
radii, its nearest-training-image distances) and attaches an interval that resamples the
samples only. Two kinds of interval (``evaluation/bootstrap.py``):

- set-level metrics (total variance, Fréchet distance, KID, precision, recall, class entropy)
  are functions of the whole set, which a duplicated row distorts: ``half_sample_ci``, subsets
  of N/2 distinct samples, value ± 1.96 sd around the full-set value;
- per-sample means and medians (confidence, recognisable fraction, read as the class asked
  for, the frame statistics, the memorisation distances): the ordinary percentile bootstrap
  ``bootstrap_ci``.

Each score is a dict ``{"value", "ci", "n", "n_boot", "interval", "note"}`` so that metrics.json
says how it was obtained; ``value`` None says the score could not be computed, and ``note`` why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UserError
from . import (
    bootstrap_ci,
    class_entropy,
    class_histogram,
    fit_gmm,
    frechet_distance,
    grid_kl_faithful,
    grid_kl_normalised,
    half_sample_ci,
    kernel_inception_distance,
    mean_confidence,
    monte_carlo_kl,
    recognisable_fraction,
    total_variance,
)
from .class_metrics import read_as_asked
from .feature_metrics import fraction_inside, kth_neighbour_radii
from .frame_metrics import FRAME_STATISTICS, frame_statistics
from .memorisation import memorisation_statistics

N_BOOT = 1000  # bootstrap resamples of a per-sample mean of a few hundred samples
N_BOOT_SET = 100  # half-samples of a set-level metric (fits a covariance or searches neighbours)
KID_SUBSETS = 100
KID_MAX_SUBSET = 1000
PR_K = 3  # Kynkäänniemi et al. 2019's default neighbourhood size
HALF = "half_sample"
BOOT = "bootstrap"
TV_UNCLAMPED = "total_variance_unclamped"
HALF_NOTE = "interval: value ± 1.96 sd, sd from {n_boot} subsets of N/2 distinct samples"


def score(
    value: float | None,
    ci: tuple[float, float] | None,
    n: int,
    n_boot: int | None,
    note: str | None = None,
    interval: str | None = None,
) -> dict:
    """One metric as stored in metrics.json; ``ci`` None says no interval could be computed,
    ``value`` None that the metric itself could not (``note`` says why); ``interval`` names the
    resampling behind ``ci`` ("half_sample" or "bootstrap"). A ``ci`` of zero width is stored
    as None with a note: resamples that did not vary (too few of them, or a set without
    spread) show no 95% interval, and [v, v] would claim certainty."""
    if ci is not None and ci[0] == ci[1]:
        ci, flat = None, f"no interval: the {n_boot} resamples all gave {ci[0]:.6g}"
        note = flat if note is None else f"{note}; {flat}"
    return {
        "value": None if value is None else float(value) + 0.0,  # + 0.0: no -0.0
        "ci": None if ci is None else [float(ci[0]), float(ci[1])],
        "n": int(n),
        "n_boot": n_boot,
        "interval": interval,
        "note": note,
    }


def half_sampled(
    statistic, values: np.ndarray, seed: int, n_boot: int, bounds=(-np.inf, np.inf), note=None
) -> dict:
    """A set-level score with its half-sampling interval (``half_sample_ci``)."""
    value, ci = half_sample_ci(statistic, values, n_boot, seed, bounds=bounds)
    text = HALF_NOTE.format(n_boot=n_boot)
    return score(value, ci, len(values), n_boot, text if note is None else f"{note}; {text}", HALF)


def bootstrapped(statistic, values: np.ndarray, seed: int, n_boot: int) -> dict:
    """A per-sample mean or median with its percentile bootstrap interval (``bootstrap_ci``)."""
    ci = bootstrap_ci(statistic, values, n_boot, seed)
    return score(statistic(values), ci, len(values), n_boot, None, BOOT)


@dataclass(frozen=True)
class HeldOutReference:
    """What every sample set is compared with, computed once per evaluation.

    features (K, 128) float64: classifier features of the first K test images;
    radii (K,): each test feature's distance to its PR_K-th nearest test feature;
    (both None where there is no feature network: unlabelled data without Inception features)
    nn_distances (K,): each test image's L2 distance to its nearest training image.
    """

    features: np.ndarray | None
    radii: torch.Tensor | None
    nn_distances: np.ndarray

    @classmethod
    def build(cls, features: np.ndarray | None, nn_distances: np.ndarray) -> HeldOutReference:
        radii = None if features is None else kth_neighbour_radii(features, PR_K)
        return cls(features, radii, nn_distances)


def pixel_scores(
    x: np.ndarray, unclamped: np.ndarray | None, seed: int, n_boot: int = N_BOOT_SET
) -> dict[str, dict]:
    """Total variance (the report's diversity number) of images x (N, C, H, W) float in
    [-0.5, 0.5], and where there are any, of the ``unclamped`` samples they were drawn as
    (N, C, H, W) float (``TV_UNCLAMPED``): the report's, whose sampler does not clamp
    (REFERENCE.md), so that values beyond the range count at their full size."""
    scores = {"total_variance": half_sampled(total_variance, x, seed, n_boot, bounds=(0, np.inf))}
    if unclamped is not None:
        scores[TV_UNCLAMPED] = half_sampled(
            total_variance, unclamped, seed, n_boot, bounds=(0, np.inf)
        )
    return scores


def frame_scores(images: np.ndarray, seed: int, n_boot: int = N_BOOT) -> dict[str, dict]:
    """Frame mean (/255), fraction of frames above 5/255 and mid-grey pixel fraction of uint8
    images (N, C, H, W) (``frame_metrics``): means over images, so the ordinary bootstrap."""
    return {
        name: bootstrapped(statistic, per_image(images), seed, n_boot)
        for name, (per_image, statistic) in FRAME_STATISTICS.items()
    }


def reference_values(
    images: np.ndarray, probabilities: np.ndarray | None, labels: np.ndarray | None = None
) -> dict[str, float]:
    """What real images score on the metrics that need no reference set: the frame statistics
    of uint8 images (K, C, H, W) and the class metrics of their probabilities (K, classes),
    where there are any (None: unlabelled data), and with their ``labels`` (K,) taken as the
    classes asked for, the fraction read as them (the classifier's accuracy on them). For the
    test images, it is the value a perfect generator would reach, shown beside the samples'."""
    if probabilities is None:
        return frame_statistics(images)
    values = {
        **frame_statistics(images),
        "class_entropy": class_entropy(class_histogram(probabilities)),
        "mean_confidence": mean_confidence(probabilities),
        "recognisable_fraction": recognisable_fraction(probabilities),
    }
    if labels is not None:
        values["read_as_asked"] = float(read_as_asked(probabilities, labels).mean())
    return values


def density_scores(embedding: np.ndarray, test_gmm, seed: int) -> dict[str, dict]:
    """The report's "KL" and the two principled estimates, from the samples' t-SNE points (N, 2).

    P is a 10-component mixture fitted to ``embedding``, Q (``test_gmm``) to the test set's part
    of the same joint t-SNE. No interval: a resample's KL needs its own joint t-SNE fit (minutes
    on 10,000 images), and re-fitting only the mixture would hide the t-SNE's own variance.
    A degenerate set (e.g. copies of one image, which t-SNE places on a few points) has no density
    a mixture can describe: its KLs are None with the reason in the note.
    """
    n = len(embedding)
    no_ci = "no interval: each resample would need its own joint t-SNE fit"
    kinds = {
        "kl_faithful": (grid_kl_faithful, "the report's unnormalised 201x201 grid sum"),
        "kl_grid_normalised": (grid_kl_normalised, "grid cell probabilities summing to 1"),
        "kl_monte_carlo": (
            lambda p, q: monte_carlo_kl(p, q, seed=seed),
            "100,000 draws from P",
        ),
    }
    try:
        p_gmm = fit_gmm(embedding, seed)
    except (UserError, ValueError) as error:  # ValueError: sklearn's ill-defined covariance
        reason = f"not computed: the samples' t-SNE points admit no mixture fit ({error})"
        return {
            key: score(None, None, n, None, f"{what}; {reason}") for key, (_, what) in kinds.items()
        }
    return {
        key: score(kl(p_gmm, test_gmm), None, n, None, f"{what}; {no_ci}")
        for key, (kl, what) in kinds.items()
    }


def feature_scores(
    features: np.ndarray, ref: HeldOutReference, seed: int, n_boot: int = N_BOOT_SET
) -> dict[str, dict]:
    """Fréchet distance, KID and precision/recall of sample features (N, 128) vs the test set.

    Intervals by half-sampling: on a subset of N/2 samples KID uses subsets of min(1000, N/2)
    and recall the subset's own k-NN radii, as a set of that size would.
    """

    def kid(f: np.ndarray) -> float:
        subset = min(KID_MAX_SUBSET, len(f), len(ref.features))
        return kernel_inception_distance(ref.features, f, subset, KID_SUBSETS, seed)[0]

    def precision(f: np.ndarray) -> float:
        return fraction_inside(f, ref.features, ref.radii)

    def recall(f: np.ndarray) -> float:
        return fraction_inside(ref.features, f, kth_neighbour_radii(f, PR_K))

    subset = min(KID_MAX_SUBSET, len(features), len(ref.features))
    kid_entry = half_sampled(
        kid, features, seed, n_boot, note=f"mean over {KID_SUBSETS} subsets of {subset}"
    )
    # spread over the KID subsets, as KID is usually quoted
    kid_entry["std"] = kernel_inception_distance(ref.features, features, subset, KID_SUBSETS, seed)[
        1
    ]
    return {
        "frechet_distance": half_sampled(
            lambda f: frechet_distance(ref.features, f), features, seed, n_boot, (0, np.inf)
        ),
        "kid": kid_entry,
        "precision": half_sampled(precision, features, seed, n_boot, (0, 1), f"k={PR_K}"),
        "recall": half_sampled(recall, features, seed, n_boot, (0, 1), f"k={PR_K}"),
    }


def class_scores(
    probabilities: np.ndarray, seed: int, n_boot: int = N_BOOT, n_boot_set: int = N_BOOT_SET
) -> dict[str, dict]:
    """Class entropy (set-level: half-sampled), mean confidence and recognisable fraction
    (per-sample means: bootstrapped) of class probabilities (N, K), K classes."""
    return {
        "class_entropy": half_sampled(
            lambda p: class_entropy(class_histogram(p)),
            probabilities,
            seed,
            n_boot_set,
            (0, np.log(probabilities.shape[1])),
        ),
        "mean_confidence": bootstrapped(mean_confidence, probabilities, seed, n_boot),
        "recognisable_fraction": bootstrapped(recognisable_fraction, probabilities, seed, n_boot),
    }


def asked_scores(
    probabilities: np.ndarray, asked: np.ndarray, seed: int, n_boot: int = N_BOOT
) -> dict[str, dict]:
    """The fraction of samples the classifier reads as the class they were asked to be, from
    probabilities (N, K) and asked classes (N,): a per-sample mean, so bootstrapped."""
    correct = read_as_asked(probabilities, asked).astype(np.float64)  # (N,) 0 or 1
    return {"read_as_asked": bootstrapped(np.mean, correct, seed, n_boot)}


def memorisation_scores(
    sample_distances: np.ndarray, ref: HeldOutReference, seed: int, n_boot: int = N_BOOT
) -> dict[str, dict]:
    """Nearest-training-image distances of the samples (N,) against the test set's own (K,).

    The same statistics as ``evaluation.memorisation_summary``, taken from distances computed
    once for the test baseline (K x 48,000 distances to the training split are the expensive
    part), so that several runs share it; the test baseline is fixed and only the samples are
    resampled (a per-sample statistic: the ordinary bootstrap).
    """
    test_d = ref.nn_distances
    median_test, test_p1 = float(np.median(test_d)), float(np.percentile(test_d, 1))
    stats = memorisation_statistics(test_d)
    out = {
        f"memorisation_{name}": bootstrapped(fn, sample_distances, seed, n_boot)
        for name, fn in stats.items()
    }
    notes = {
        "memorisation_ratio": f"median sample / median test ({median_test:.4f}, K={len(test_d)})",
        "memorisation_below_test_p1": f"test set's 1st percentile {test_p1:.4f}",
    }
    for key, note in notes.items():  # before the note score() may have given (no interval)
        out[key]["note"] = "; ".join(filter(None, (note, out[key]["note"])))
    return out
