"""Scoring the sets of an evaluation: one joint t-SNE of the test reference and every set (with
the test images' mixture), then every score of each set (``scores.py``) with its interval."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from sklearn.mixture import GaussianMixture

from ..errors import UserError
from . import fit_gmm, joint_tsne
from .report_metrics import tsne_perplexity
from .sample_sets import SampleSet
from .scores import (
    HeldOutReference,
    asked_scores,
    class_scores,
    density_scores,
    feature_scores,
    frame_scores,
    memorisation_scores,
    pixel_scores,
)
from .set_measures import MeasuredSet
from .settings import EvaluationSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JointEmbedding:
    """One t-SNE of the test reference and every set: the test images' points (K, 2) and each
    set's (N_i, 2), in the sets' order; the perplexity used and the notes that say why it
    differs from sklearn's default; the 10-component mixture fitted to the test points."""

    test: np.ndarray
    sets: list[np.ndarray]
    perplexity: float
    notes: list[str]
    test_gmm: GaussianMixture


def as_model_range(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, C, H, W) as float64 in [-0.5, 0.5]."""
    return images.astype(np.float64) / 255 - 0.5


def check_embeddable(sets: list[SampleSet], tsne_samples: str) -> None:
    """Refuse a set the joint t-SNE cannot embed as ``tsne_samples`` says (EvaluationSettings):
    "unclamped" needs every set's samples as drawn."""
    if tsne_samples != "unclamped":
        return
    for s in sets:
        if s.unclamped is None:
            raise UserError(
                f"tsne_samples='unclamped' embeds every set's samples as drawn, but set "
                f"{s.label!r} has none ({s.clamped_only}): give tsne_samples='images'"
            )


def embedded(s: SampleSet, tsne_samples: str) -> np.ndarray:
    """What of set ``s`` the joint t-SNE embeds (``check_embeddable`` has passed): float64
    (N, C, H, W), its images in [-0.5, 0.5] or its samples as drawn."""
    if tsne_samples == "unclamped":
        return s.unclamped.astype(np.float64)
    return as_model_range(s.images)


def embed_jointly(
    sets: list[SampleSet], test_images: np.ndarray, seed: int, tsne_samples: str = "images"
) -> JointEmbedding:
    """One seeded t-SNE of the test images uint8 (K, C, H, W) and every set together (separate
    fits would not share coordinates), each set as ``tsne_samples`` says (:func:`embedded`),
    and the test points' mixture; a perplexity lowered for few points is logged and noted."""
    n_points = len(test_images) + sum(len(s.images) for s in sets)
    perplexity, note = tsne_perplexity(n_points)
    if note is not None:
        logger.warning(note)
    arrays = [as_model_range(test_images), *(embedded(s, tsne_samples) for s in sets)]
    test, *embeddings = joint_tsne(arrays, seed, perplexity)
    notes = [] if note is None else [note]
    return JointEmbedding(test, embeddings, perplexity, notes, fit_gmm(test, seed))


def set_scores(
    measured: MeasuredSet,
    embedding: np.ndarray,
    test_gmm: GaussianMixture,
    reference: HeldOutReference,
    settings: EvaluationSettings,
) -> dict[str, dict]:
    """Every score of one set, by metric name (``scores.py``); ``embedding``: its t-SNE points
    (N, 2), ``test_gmm`` the test points' mixture, ``reference`` the test reference. The
    fraction read as the class asked for only where the set's asked classes are known."""
    images, seed, asked = measured.samples.images, settings.seed, measured.samples.asked
    n_boot, n_boot_set = settings.n_boot, settings.n_boot_set
    features, probabilities = measured.features, measured.probabilities  # None: unlabelled data
    asked_known = probabilities is not None and asked is not None
    return {
        **pixel_scores(as_model_range(images), measured.samples.unclamped, seed, n_boot_set),
        **density_scores(embedding, test_gmm, seed),
        **({} if features is None else feature_scores(features, reference, seed, n_boot_set)),
        **({} if probabilities is None else class_scores(probabilities, seed, n_boot, n_boot_set)),
        **(asked_scores(probabilities, asked, seed, n_boot) if asked_known else {}),
        **frame_scores(images, seed, n_boot),
        **memorisation_scores(measured.distances, reference, seed, n_boot),
    }
