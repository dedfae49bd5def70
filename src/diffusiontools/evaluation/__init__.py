"""Sample-quality metrics as pure functions, and the project's MNIST classifier.

``report_metrics`` reproduces the report's numbers exactly (flaws included); the other modules
are the principled metrics to set beside them. Orchestration (the ``evaluate`` command, figures)
lives elsewhere and calls these.
"""

from .bootstrap import bootstrap_ci, half_sample_ci
from .class_metrics import class_entropy, class_histogram, mean_confidence, recognisable_fraction
from .classifier import MnistClassifier, load_classifier
from .density_kl import grid_kl_normalised, monte_carlo_kl
from .feature_metrics import (
    classifier_features,
    frechet_distance,
    kernel_inception_distance,
    precision_recall,
)
from .memorisation import MemorisationSummary, memorisation_summary, nearest_neighbour_distances
from .report_metrics import fit_gmm, grid_kl_faithful, joint_tsne, total_variance

__all__ = [
    "MemorisationSummary",
    "MnistClassifier",
    "bootstrap_ci",
    "class_entropy",
    "class_histogram",
    "classifier_features",
    "fit_gmm",
    "frechet_distance",
    "grid_kl_faithful",
    "grid_kl_normalised",
    "half_sample_ci",
    "joint_tsne",
    "kernel_inception_distance",
    "load_classifier",
    "mean_confidence",
    "memorisation_summary",
    "monte_carlo_kl",
    "nearest_neighbour_distances",
    "precision_recall",
    "recognisable_fraction",
    "total_variance",
]
