"""What the classifier says about a set of samples: which classes, how evenly, how clearly, and
whether as the classes they were asked to be.

All functions take class probabilities (N, K), rows summing to 1 (``classifier_features``), K the
data set's number of classes (10 for MNIST).
A generator that has collapsed onto a few classes (MNIST: digits) shows a low class entropy; one
that draws unreadable strokes shows a low mean confidence and a low recognisable fraction.
"""

import numpy as np

RECOGNISABLE_CONFIDENCE = 0.9


def class_histogram(probabilities: np.ndarray) -> np.ndarray:
    """Counts (K,) int of the predicted (argmax) class over the N samples."""
    return np.bincount(np.argmax(probabilities, axis=1), minlength=probabilities.shape[1])


def class_entropy(histogram: np.ndarray) -> float:
    """Entropy in nats of the normalised class histogram: 0 (one class) to ln K (uniform)."""
    p = np.asarray(histogram, dtype=np.float64) / np.sum(histogram)
    p = p[p > 0]  # 0 log 0 = 0
    return float(-(p * np.log(p)).sum()) + 0.0  # + 0.0: one class gives 0.0, not -0.0


def mean_confidence(probabilities: np.ndarray) -> float:
    """Mean over samples of the largest class probability, in [1/K, 1]."""
    return float(np.max(probabilities, axis=1).mean())


def recognisable_fraction(
    probabilities: np.ndarray, threshold: float = RECOGNISABLE_CONFIDENCE
) -> float:
    """Fraction of samples whose largest class probability is >= ``threshold``."""
    return float((np.max(probabilities, axis=1) >= threshold).mean())


def read_as_asked(probabilities: np.ndarray, asked: np.ndarray) -> np.ndarray:
    """Per sample, whether the predicted (argmax) class is the one it was asked to be: bool (N,)
    from probabilities (N, K) and asked classes (N,) int in 0..K-1. Its mean is the fraction
    of samples read as the class asked for (of real images asked as their labels: the
    classifier's accuracy)."""
    return np.argmax(probabilities, axis=1) == np.asarray(asked)
