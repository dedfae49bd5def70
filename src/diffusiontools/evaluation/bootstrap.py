"""Confidence intervals for metrics of a sample set: the bootstrap for per-sample means, half-
sampling (resampling without replacement) for set-level metrics.

The report gives each metric as one number from 200 samples; an interval says how much of a
difference between models is sampling noise.
"""

from collections.abc import Callable

import numpy as np
from scipy.stats import norm

from diffusiontools.errors import UserError
from diffusiontools.evaluation.preconditions import check_draws


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    values: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of ``statistic`` over ``n_boot`` resamples of the rows of ``values``.

    values: (N, ...) — one row per sample; each resample draws N rows with replacement. Meant for
    per-sample quantities (confidences (N,), distances (N,)) whose statistic is a mean, a
    fraction or a median: a repeated row is just another draw of the same quantity. Not for
    set-level metrics (Fréchet distance, recall, total variance, ...): a resample holds only
    ~63% distinct rows and a duplicated row changes such a metric like a smaller set would, so
    the interval shifts away from the value (``half_sample_ci`` is for those).
    """
    values = np.asarray(values)
    check_draws("bootstrap_ci", n_boot, len(values))
    rng = np.random.default_rng(seed)
    stats = [statistic(values[rng.integers(0, len(values), len(values))]) for _ in range(n_boot)]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return float(low), float(high)


def half_sample_ci(
    statistic: Callable[[np.ndarray], float],
    values: np.ndarray,
    n_half: int = 100,
    seed: int = 0,
    level: float = 0.95,
    bounds: tuple[float, float] = (-np.inf, np.inf),
) -> tuple[float, tuple[float, float]]:
    """A set-level metric's value on all N rows and its normal interval ``value ± z sd``, with
    sd estimated from ``n_half`` half-samples; returns (value, (low, high)).

    values: (N, ...) one row per sample; statistic maps any (m, ...) subset to the metric (e.g.
    ``lambda f: frechet_distance(test_feats, f)``, the reference held fixed).

    1. Draw ``n_half`` random subsets of m = N // 2 distinct rows (without replacement, so no
       row is ever duplicated) and compute the statistic on each.
    2. sd^2 = m / (N - m) * var(subset statistics): the delete-d jackknife with d = N - m
       (Shao & Wu 1989), which is exact for a mean (a subset of m of N rows has variance
       s^2/m * (N - m)/N, so the factor turns it into s^2/N) and consistent for non-smooth
       statistics such as precision/recall when d grows with N; for m = N/2 the factor is 1.
    3. Centre the interval on the full-set value, so it always contains it; the subsets' own
       mean is not used (a half-size set has a different bias, e.g. a larger Fréchet distance),
       only their spread. Clip to ``bounds``, the metric's range.
    """
    values = np.asarray(values)
    n = len(values)
    m = n // 2
    if n_half < 2 or m < 1:
        raise UserError(f"half-sampling needs n_half >= 2 and N >= 2, got {n_half} and {n}")
    rng = np.random.default_rng(seed)
    stats = [statistic(values[rng.choice(n, m, replace=False)]) for _ in range(n_half)]
    sd = np.sqrt(m / (n - m) * np.var(stats, ddof=1))
    value = statistic(values)
    half_width = norm.ppf(0.5 + level / 2) * sd
    low, high = max(value - half_width, bounds[0]), min(value + half_width, bounds[1])
    return float(value), (float(low), float(high))
