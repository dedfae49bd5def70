"""What the numerical libraries behind the metrics need of their inputs, one rule per kind, checked
before the call so that a too-small or malformed input is refused in one sentence instead of
surfacing as numpy's NaN warnings, torch's index errors or LAPACK's convergence failures.

- a sample covariance or variance (ddof=1: Fréchet distance, total variance) needs >= 2 rows;
- a k-th nearest neighbour among N rows (precision/recall radii) needs 1 <= k < N;
- a linear-algebra call (``eigh`` in the Fréchet distance) needs finite (N, D) arrays whose
  feature dimensions agree; fewer rows than dimensions is allowed: the covariance is then
  singular, which the Fréchet distance's eigendecomposition handles exactly;
- a resampled statistic (bootstrap, half-sampling, Monte Carlo) needs at least one draw of at
  least one row.

t-SNE's perplexity and the 2-D mixtures' point counts are ``report_metrics``' own (it lowers the
perplexity for few points and says so; a mixture needs as many distinct points as components).
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError


def check_covariance_rows(what: str, *counts: int) -> None:
    """Refuse a set of fewer than 2 rows for ``what``, a sample covariance or variance."""
    if min(counts) < 2:
        raise UserError(
            f"{what} needs >= 2 rows per set (a sample covariance), got "
            f"{' and '.join(str(n) for n in counts)}."
        )


def check_neighbour_rank(what: str, k: int, *counts: int) -> None:
    """Refuse a k for which some set of ``counts`` rows has no k-th nearest other row."""
    if k < 1 or k >= min(counts):
        sizes = ", ".join(str(n) for n in counts)
        raise UserError(f"{what} k={k} must be >= 1 and below the set sizes ({sizes}).")


def check_feature_arrays(what: str, *arrays: np.ndarray) -> None:
    """Refuse feature arrays that are not finite (N, D) with one D, before linear algebra."""
    shapes = [a.shape for a in arrays]
    if any(len(s) != 2 for s in shapes) or len({s[1] for s in shapes}) != 1:
        raise UserError(f"{what} needs (N, D) feature arrays with one D, got shapes {shapes}.")
    if not all(np.isfinite(a).all() for a in arrays):
        raise UserError(f"{what} got features holding NaN or inf.")


def check_draws(what: str, n_draws: int, n_rows: int) -> None:
    """Refuse a resampled statistic with no draws or no rows to draw from."""
    if n_draws < 1 or n_rows < 1:
        raise UserError(f"{what} needs >= 1 draw of >= 1 row, got {n_draws} draws of {n_rows}.")
