"""What the scores of a set of images are computed from: the classifier's features and class
probabilities of each image, and each image's nearest training image. Computed in chunks with a
progress bar, for the test reference and for every sample set alike."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data import to_model
from . import classifier_features, nearest_neighbour_distances
from .sample_sets import SampleSet, inner_bar

CHUNK = 1000  # images per step of the feature and nearest-neighbour progress bars


@dataclass(frozen=True)
class MeasuredSet:
    """A set with what its scores are computed from: classifier features (N, D) and class
    probabilities (N, K) over the data set's K classes, and each sample's L2 distance (N,) to
    its nearest training image and that image's index (N,) in the training split. A data set
    without labels has no probabilities (None), and features only where a feature network can
    be had."""

    samples: SampleSet
    features: np.ndarray | None
    probabilities: np.ndarray | None
    distances: np.ndarray
    nearest: np.ndarray


def features_in_chunks(
    classifier, images: np.ndarray, device: torch.device, desc: str
) -> tuple[np.ndarray, np.ndarray]:
    """``classifier_features`` of uint8 images (N, C, H, W), with a progress bar: features
    (N, D) and class probabilities (N, K), K the classifier's classes, float64; None for what
    ``classifier`` cannot give (no network: neither; a feature network without a class head:
    no probabilities)."""
    if classifier is None:
        return None, None
    parts = [
        classifier_features(classifier, to_model(torch.from_numpy(images[i : i + CHUNK])), device)
        for i in inner_bar(range(0, len(images), CHUNK), desc)
    ]
    probabilities = None if parts[0][1] is None else np.concatenate([p for _, p in parts])
    return np.concatenate([f for f, _ in parts]), probabilities


def distances_in_chunks(
    images: np.ndarray, train: torch.Tensor, desc: str
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-training-image L2 distance (N,) and index (N,) of uint8 images (N, C, H, W);
    ``train``: float (M, C, H, W) in [-0.5, 0.5] on the device the distances are taken on."""
    parts = [
        nearest_neighbour_distances(
            to_model(torch.from_numpy(images[i : i + CHUNK])).to(train.device), train
        )
        for i in inner_bar(range(0, len(images), CHUNK), desc)
    ]
    return (
        torch.cat([d for d, _ in parts]).cpu().numpy(),
        torch.cat([i for _, i in parts]).cpu().numpy(),
    )
