"""An unconditional start x_T for cold diffusion: a Gaussian mixture over fully degraded images.

A Gaussian process starts from N(0, I), but the distribution of D(x0, level_T) is intractable.
The report therefore started from test images degraded at t = T - 1, which makes sampling
conditional on those images. For generation, Bansal et al. (2022) instead fit a Gaussian mixture
to fully degraded training images (for blur: to their channel means) and draw x_T from it. We do
the same, in a PCA-reduced space so that full covariances stay cheap:

  1. degrade the first ``n_fit`` images of the training split at t = T, one random field each;
  2. project them on their first ``n_pca`` principal components (C * H * W -> n_pca; MNIST's
     784);
  3. fit a ``n_components`` full-covariance GaussianMixture there (sklearn, seeded);
  4. to sample: pick a component k ~ weights, draw mean_k + L_k eps with L_k L_k^T = Sigma_k,
     map back to pixels and clamp to [-0.5, 0.5], the range every built-in degradation keeps.

Step 4 uses the caller's ``torch.Generator``, so a sampling seed gives the same x_T on every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits
from torch import Tensor

from ..errors import UserError
from .degradations.base import KEY_RANGE
from .noise import Generators, choice, randn

if TYPE_CHECKING:  # an annotation only: cold.py imports this module
    from .cold import ColdDiffusion

N_FIT = 5000  # degraded training images the mixture is fitted to
N_PCA = 50  # principal components kept
N_COMPONENTS = 10  # mixture components, one per digit class as in the report's density estimate


@dataclass(frozen=True)
class DegradedGMM:
    """A Gaussian mixture over PCA coefficients of degraded images, as torch tensors (CPU)."""

    pixel_mean: Tensor  # (C*H*W,) mean image of the fitted set
    components: Tensor  # (n_pca, C*H*W) orthonormal principal axes
    weights: Tensor  # (K,) mixture weights, summing to 1
    means: Tensor  # (K, n_pca)
    cholesky: Tensor  # (K, n_pca, n_pca) lower-triangular L_k, L_k L_k^T = Sigma_k
    shape: tuple[int, int, int]  # (C, H, W) of the fitted images

    def sample(self, n: int, generator: Generators, device: torch.device) -> Tensor:
        """n draws of x_T, (n, *shape) in [-0.5, 0.5], on ``device`` (the generator's)."""
        weights, means, cholesky = (a.to(device) for a in (self.weights, self.means, self.cholesky))
        k = choice(weights, n, generator)  # (n,)
        eps = randn((n, means.shape[1], 1), generator, device)
        coeffs = means[k] + (cholesky[k] @ eps).squeeze(-1)  # (n, n_pca)
        pixels = self.pixel_mean.to(device) + coeffs @ self.components.to(device)  # (n, C*H*W)
        return pixels.clamp(-0.5, 0.5).reshape(n, *self.shape)


def fit_degraded_gmm(
    process: ColdDiffusion,
    x0: Tensor,
    seed: int,
    n_pca: int = N_PCA,
    n_components: int = N_COMPONENTS,
) -> DegradedGMM:
    """Steps 1-3 of the module doc. x0: (N, C, H, W) clean images in [-0.5, 0.5], on the CPU,
    N >= ``n_components`` (else UserError); the PCA keeps at most N - 1 components, as it must.
    """
    if len(x0) < n_components:
        raise UserError(
            f"sampling.start=gmm fits a {n_components}-component mixture to degraded training "
            f"images and needs at least {n_components}, but the training split holds {len(x0)}; "
            "train on more images (data.subset) or use sampling.start=test_consistent"
        )
    # PCA needs n_components <= min(n_samples, n_features); N centred images span at most N - 1
    # directions, so fewer images keep fewer components (the components' shape says how many).
    n_pca = min(n_pca, len(x0) - 1, x0[0].numel())
    generator = torch.Generator().manual_seed(seed)
    process = process.to(torch.device("cpu"))
    keys = torch.randint(0, KEY_RANGE, (len(x0),), generator=generator)
    t = torch.full((len(x0),), process.T, dtype=torch.long)
    x_T = torch.cat(
        [
            process.degrade(x0[i : i + 1000], t[i : i + 1000], keys[i : i + 1000])
            for i in range(0, len(x0), 1000)
        ]
    )  # chunks bound the swap index arrays
    flat = x_T.reshape(len(x0), -1).double().numpy()  # (N, C*H*W)
    # One BLAS thread: these matrices are small, and on a busy machine OpenBLAS's threads fight
    # each other (measured: a 5000-image fit went from minutes to seconds).
    with threadpool_limits(1):
        pca = PCA(n_components=n_pca, svd_solver="randomized", random_state=seed).fit(flat)
        gmm = GaussianMixture(n_components, covariance_type="full", random_state=seed)
        gmm.fit(pca.transform(flat))
    return DegradedGMM(
        pixel_mean=torch.from_numpy(pca.mean_).float(),
        components=torch.from_numpy(pca.components_).float(),
        weights=torch.from_numpy(gmm.weights_).float(),
        means=torch.from_numpy(gmm.means_).float(),
        # positive definite: sklearn adds reg_covar to each and factors them itself to fit
        cholesky=torch.from_numpy(np.linalg.cholesky(gmm.covariances_)).float(),
        shape=tuple(x0.shape[1:]),
    )
