"""Distribution metrics on classifier features: Fréchet distance, KID, precision and recall.

The features come from the project's MNIST classifier (``classifier_features``), so the Fréchet
distance here is "FID with an MNIST network", not comparable to Inception-based FID numbers.
Every metric is a pure function of two feature arrays, real (N, D) and fake (M, D).
"""

import numpy as np
import torch
from torch import nn

from diffusiontools.errors import UserError
from diffusiontools.evaluation.preconditions import (
    check_covariance_rows,
    check_feature_arrays,
    check_neighbour_rank,
)


@torch.no_grad()
def classifier_features(
    classifier: nn.Module,
    images: torch.Tensor | np.ndarray,
    device: torch.device | str,
    batch_size: int = 500,
) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features (N, D) and class probabilities (N, K) of ``images``, as float64.

    images: float (N, C, H, W) in [-0.5, 0.5], or (N, H, W) for one channel. ``classifier``
    must have a ``features`` method and a ``head`` mapping features to logits (``MnistClassifier``);
    a feature network without a ``head`` (``InceptionFeatures``) gives probabilities None.
    """
    x = torch.as_tensor(images, dtype=torch.float32)
    if x.dim() == 3:
        x = x[:, None]  # (N, H, W) -> (N, 1, H, W)
    classifier.eval()
    features, probabilities = [], []
    for start in range(0, len(x), batch_size):
        f = classifier.features(x[start : start + batch_size].to(device))
        features.append(f.cpu().double())
        if hasattr(classifier, "head"):
            probabilities.append(torch.softmax(classifier.head(f), dim=1).cpu().double())
    return torch.cat(features).numpy(), torch.cat(probabilities).numpy() if probabilities else None


def psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """Symmetric square root (D, D) of a symmetric positive semidefinite matrix (D, D).

    Through its eigendecomposition; eigenvalues that rounding pushed below 0 count as 0.
    """
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T


def frechet_distance(feat_a: np.ndarray, feat_b: np.ndarray) -> float:
    """|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of Gaussians fitted to (N, D), (M, D).

    Heusel et al. 2017 (FID), covariances with ddof=1 as torchmetrics. Tr((S_a S_b)^(1/2)) is
    the sum of the square roots of the eigenvalues of the symmetric PSD matrix
    S_a^(1/2) S_b S_a^(1/2), which has the same eigenvalues as S_a S_b. Unlike ``sqrtm(S_a S_b)``
    this needs no inverse, so singular covariances (features that are 0 on every image, a set of
    identical images, fewer rows than dimensions) are exact and raise no "matrix is singular"
    warning. Raises UserError for fewer than 2 rows, different D, or NaN / inf features.
    """
    a, b = np.asarray(feat_a, np.float64), np.asarray(feat_b, np.float64)
    check_feature_arrays("The Fréchet distance", a, b)
    check_covariance_rows("The Fréchet distance", len(a), len(b))
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_a = psd_sqrt(cov_a)
    product = root_a @ cov_b @ root_a  # (D, D), symmetric PSD up to rounding
    eigenvalues = np.linalg.eigvalsh((product + product.T) / 2)
    trace_covmean = np.sqrt(np.clip(eigenvalues, 0.0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_covmean)


def polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of (m, D) and (m, D) with the kernel k(x, y) = (x.y / D + 1)^3.

    Bińkowski et al. 2018, eq. 2 (equal set sizes): diagonal terms k(x_i, x_i) are left out of
    the within-set means.
    """
    m, d = x.shape
    k_xx = (x @ x.T / d + 1) ** 3
    k_yy = (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.mean())


def kernel_inception_distance(
    feat_a: np.ndarray,
    feat_b: np.ndarray,
    subset_size: int = 1000,
    n_subsets: int = 100,
    seed: int = 0,
) -> tuple[float, float]:
    """KID: mean and (population) std of ``polynomial_mmd2`` over random equal-size subsets.

    Each subset draws ``subset_size`` rows of each set without replacement, as torchmetrics'
    ``KernelInceptionDistance`` does. Unbiased, so it can be slightly negative for equal sets.
    """
    a, b = np.asarray(feat_a, np.float64), np.asarray(feat_b, np.float64)
    if not 2 <= subset_size <= min(len(a), len(b)):
        raise UserError(
            f"KID subset_size {subset_size} must be between 2 and the smaller set size "
            f"{min(len(a), len(b))}."
        )
    rng = np.random.default_rng(seed)
    scores = [
        polynomial_mmd2(
            a[rng.choice(len(a), subset_size, replace=False)],
            b[rng.choice(len(b), subset_size, replace=False)],
        )
        for _ in range(n_subsets)
    ]
    return float(np.mean(scores)), float(np.std(scores))


def kth_neighbour_radii(feats: np.ndarray, k: int, chunk: int = 2048) -> torch.Tensor:
    """Distance from each row of (N, D) to its k-th nearest other row, (N,); 1 <= k < N."""
    check_neighbour_rank("kth_neighbour_radii", k, len(feats))
    x = torch.as_tensor(feats, dtype=torch.float64)
    # k + 1 smallest distances include the row itself at distance 0.
    return torch.cat(
        [
            torch.cdist(x[i : i + chunk], x).topk(k + 1, largest=False).values[:, k]
            for i in range(0, len(x), chunk)
        ]
    )


def fraction_inside(
    queries: np.ndarray, centres: np.ndarray, radii: torch.Tensor, chunk: int = 2048
) -> float:
    """Fraction of query rows that lie within radius r_j of at least one centre row j."""
    q = torch.as_tensor(queries, dtype=torch.float64)
    c = torch.as_tensor(centres, dtype=torch.float64)
    inside = [
        (torch.cdist(q[i : i + chunk], c) <= radii[None, :]).any(dim=1)
        for i in range(0, len(q), chunk)
    ]
    return float(torch.cat(inside).double().mean())


def precision_recall(
    real_feats: np.ndarray, fake_feats: np.ndarray, k: int = 3
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of (N, D) real vs (M, D) fake.

    The real manifold is the union of balls around each real point with radius its distance to
    its k-th nearest real neighbour; precision = fraction of fake points inside it (quality).
    Recall swaps the roles (coverage): a collapsed generator has high precision, low recall.
    """
    check_neighbour_rank("precision_recall", k, len(real_feats), len(fake_feats))
    precision = fraction_inside(fake_feats, real_feats, kth_neighbour_radii(real_feats, k))
    recall = fraction_inside(real_feats, fake_feats, kth_neighbour_radii(fake_feats, k))
    return precision, recall
