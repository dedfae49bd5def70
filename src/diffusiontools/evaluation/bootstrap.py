"""Percentile bootstrap confidence intervals for metrics of a sample set.

The report gives each metric as one number from 200 samples; an interval says how much of a
difference between models is sampling noise.
"""

from collections.abc import Callable

import numpy as np


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    values: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of ``statistic`` over ``n_boot`` resamples of the rows of ``values``.

    values: (N, ...) — one row per sample; each resample draws N rows with replacement and passes
    the (N, ...) array to ``statistic``. For a per-sample quantity (e.g. confidences (N,)) the
    statistic is a mean or median; for a set-level metric pass the sample set itself (e.g. the
    features (N, D)) and a statistic that computes the metric against a fixed reference, e.g.
    ``lambda f: frechet_distance(test_feats, f)``: only the samples are resampled, so the interval
    reflects the finite sample set, not the reference. A resample holds about 63% distinct rows,
    so a set-level metric on it is biased (a Fréchet distance reads high, as for a smaller set):
    read such an interval as the scale of the sampling noise, not as exact coverage.
    """
    values = np.asarray(values)
    rng = np.random.default_rng(seed)
    stats = [statistic(values[rng.integers(0, len(values), len(values))]) for _ in range(n_boot)]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return float(low), float(high)
