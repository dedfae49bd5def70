"""Hand-computed and closed-form checks of the evaluation metrics (fast: no MNIST, no network)."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from diffusiontools.errors import UserError
from diffusiontools.evaluation.bootstrap import bootstrap_ci
from diffusiontools.evaluation.class_metrics import (
    class_entropy,
    class_histogram,
    mean_confidence,
    recognisable_fraction,
)
from diffusiontools.evaluation.density_kl import grid_kl_normalised, monte_carlo_kl
from diffusiontools.evaluation.feature_metrics import (
    frechet_distance,
    kernel_inception_distance,
    kth_neighbour_radii,
    precision_recall,
)
from diffusiontools.evaluation.memorisation import (
    memorisation_summary,
    nearest_neighbour_distances,
)
from diffusiontools.evaluation.report_metrics import (
    fit_gmm,
    grid_kl_faithful,
    joint_tsne,
    total_variance,
    tsne_perplexity,
)


def make_gmm(weights: list[float], means: list[list[float]], covs: list) -> GaussianMixture:
    """A 'fitted' full-covariance GaussianMixture with exactly these parameters."""
    gmm = GaussianMixture(n_components=len(weights), covariance_type="full")
    gmm.weights_ = np.asarray(weights, dtype=np.float64)
    gmm.means_ = np.asarray(means, dtype=np.float64)
    gmm.covariances_ = np.asarray(covs, dtype=np.float64)
    gmm.precisions_cholesky_ = _compute_precision_cholesky(gmm.covariances_, "full")
    return gmm


def gaussian_kl(m1, s1, m2, s2) -> float:
    """Closed-form KL(N(m1, s1) || N(m2, s2))."""
    s2_inv = np.linalg.inv(s2)
    diff = np.asarray(m2) - np.asarray(m1)
    return 0.5 * (
        np.trace(s2_inv @ s1)
        + diff @ s2_inv @ diff
        - len(m1)
        + np.log(np.linalg.det(s2) / np.linalg.det(s1))
    )


MIXTURE = make_gmm(
    [0.5, 0.3, 0.2],
    [[-20.0, 0.0], [15.0, 10.0], [0.0, -30.0]],
    [[[40.0, 5.0], [5.0, 30.0]], [[25.0, 0.0], [0.0, 25.0]], [[60.0, -10.0], [-10.0, 20.0]]],
)


# --- report_metrics -------------------------------------------------------------------------


def test_total_variance_by_hand():
    # Three 2x2 "images": pixel (0,0) takes 0, 0.3, -0.3 (mean 0, ddof=1 variance 0.18/2 = 0.09),
    # pixel (0,1) takes 0.5, 0.1, 0.3 (mean 0.3, variance (0.04+0.04+0)/2 = 0.04), others constant.
    x = np.zeros((3, 2, 2))
    x[:, 0, 0] = [0.0, 0.3, -0.3]
    x[:, 0, 1] = [0.5, 0.1, 0.3]
    x[:, 1, :] = -0.5
    assert total_variance(x) == pytest.approx(0.13)
    assert total_variance(x[:, None]) == pytest.approx(0.13)  # (N, 1, H, W) alike


def test_total_variance_of_identical_images_is_zero():
    image = np.random.default_rng(0).uniform(-0.5, 0.5, (28, 28))
    assert total_variance(np.stack([image] * 5)) == pytest.approx(0.0, abs=1e-20)


def test_joint_tsne_splits_back_in_order():
    rng = np.random.default_rng(0)
    a = rng.uniform(-0.5, 0.5, (40, 28, 28))
    b = rng.uniform(-0.5, 0.5, (20, 1, 28, 28)) + 3.0  # far away: its own cluster
    emb_a, emb_b = joint_tsne([a, b], seed=0)
    assert emb_a.shape == (40, 2) and emb_b.shape == (20, 2)
    # b's points are separated from a's: b's centroid is far from every a point.
    centre_b = emb_b.mean(axis=0)
    assert (
        np.linalg.norm(emb_a - centre_b, axis=1).min()
        > np.linalg.norm(emb_b - centre_b, axis=1).max()
    )


def test_fit_gmm_has_ten_components():
    points = np.random.default_rng(0).normal(size=(500, 2))
    gmm = fit_gmm(points, seed=0)
    assert gmm.n_components == 10 and gmm.covariance_type == "full"


def test_faithful_grid_kl_matches_direct_sum():
    p = make_gmm([1.0], [[0.0, 0.0]], [[[100.0, 0.0], [0.0, 50.0]]])
    q = make_gmm([1.0], [[5.0, -5.0]], [[[80.0, 10.0], [10.0, 120.0]]])
    axis = np.linspace(-100, 100, 201)
    grid = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
    pd = multivariate_normal([0.0, 0.0], [[100.0, 0.0], [0.0, 50.0]]).pdf(grid)
    qd = multivariate_normal([5.0, -5.0], [[80.0, 10.0], [10.0, 120.0]]).pdf(grid)
    # rel_entr(p, q) = p log(p/q), summed over raw densities (no cell area).
    expected = np.sum(pd * np.log(pd / qd))
    assert grid_kl_faithful(p, q) == pytest.approx(expected, rel=1e-9)


def test_grid_kls_stay_finite_and_exact_where_q_underflows():
    # Two unit-spaced Gaussians 120 apart, sd 3: q is below 1e-308 wherever p has mass, so the
    # literal rel_entr sum is +inf; the exact KL is |mu_p - mu_q|^2 / (2 sd^2) = 800.
    p = make_gmm([1.0], [[-60.0, 0.0]], [[[9.0, 0.0], [0.0, 9.0]]])
    q = make_gmm([1.0], [[60.0, 0.0]], [[[9.0, 0.0], [0.0, 9.0]]])
    assert grid_kl_faithful(p, q) == pytest.approx(800.0, rel=1e-3)
    assert grid_kl_normalised(p, q) == pytest.approx(800.0, rel=1e-3)


# --- density_kl -------------------------------------------------------------------------------


def test_kl_of_mixture_with_itself_is_zero():
    assert grid_kl_faithful(MIXTURE, MIXTURE) == 0.0
    assert grid_kl_normalised(MIXTURE, MIXTURE) == pytest.approx(0.0, abs=1e-12)
    assert monte_carlo_kl(MIXTURE, MIXTURE, n=1000, seed=0) == pytest.approx(0.0, abs=1e-12)


def test_principled_kl_matches_gaussian_closed_form():
    m1, s1 = [0.0, 0.0], np.array([[100.0, 20.0], [20.0, 50.0]])
    m2, s2 = [10.0, -5.0], np.array([[80.0, 0.0], [0.0, 120.0]])
    p, q = make_gmm([1.0], [m1], [s1]), make_gmm([1.0], [m2], [s2])
    exact = gaussian_kl(m1, s1, m2, s2)  # about 0.83
    assert grid_kl_normalised(p, q) == pytest.approx(exact, rel=1e-3)
    assert monte_carlo_kl(p, q, n=100_000, seed=0) == pytest.approx(exact, abs=0.02)


def test_monte_carlo_kl_is_seeded():
    p = make_gmm([1.0], [[0.0, 0.0]], [np.eye(2) * 10])
    assert monte_carlo_kl(p, MIXTURE, n=2000, seed=3) == monte_carlo_kl(p, MIXTURE, n=2000, seed=3)


# --- feature_metrics --------------------------------------------------------------------------


class IdentityFeatures(nn.Module):
    """Lets torchmetrics compute FID / KID on features we already have."""

    num_features = 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_frechet_and_kid_agree_with_torchmetrics():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 8))
    b = rng.normal(size=(300, 8)) @ rng.normal(size=(8, 8)) * 0.5 + 0.3
    fid = FrechetInceptionDistance(feature=IdentityFeatures())
    kid = KernelInceptionDistance(feature=IdentityFeatures(), subsets=1, subset_size=300)
    for metric in (fid, kid):
        metric.update(torch.from_numpy(a), real=True)
        metric.update(torch.from_numpy(b), real=False)
    assert frechet_distance(a, b) == pytest.approx(float(fid.compute()), rel=1e-6)
    # One subset of the whole set: MMD is invariant to the order the rows are drawn in.
    kid_mean, kid_std = kernel_inception_distance(a, b, subset_size=300, n_subsets=1)
    assert kid_mean == pytest.approx(float(kid.compute()[0]), rel=1e-6)
    assert kid_std == 0.0


def test_identical_feature_sets():
    f = np.random.default_rng(1).normal(size=(2000, 16))
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-8)
    kid_mean, _ = kernel_inception_distance(f, f, subset_size=200, n_subsets=50, seed=0)
    kid_shifted, _ = kernel_inception_distance(f, f + 0.5, subset_size=200, n_subsets=50, seed=0)
    assert abs(kid_mean) < 0.01 < 0.5 < kid_shifted
    assert precision_recall(f, f, k=3) == (1.0, 1.0)


def test_frechet_of_shifted_gaussians_is_squared_shift():
    rng = np.random.default_rng(2)
    mu = np.array([1.0, -1.0, 0.5, 0.0, 1.5, 0.0, 0.0, 0.5])  # |mu|^2 = 4.75
    a = rng.normal(size=(20_000, 8))
    b = rng.normal(size=(20_000, 8)) + mu
    assert frechet_distance(a, b) == pytest.approx(4.75, abs=0.1)


def test_collapsed_fake_set_has_low_recall():
    rng = np.random.default_rng(3)
    centres = rng.normal(scale=10.0, size=(10, 4))
    real = (centres[:, None] + rng.normal(size=(10, 100, 4))).reshape(-1, 4)  # ten clusters
    fake = centres[0] + rng.normal(size=(1000, 4))  # everything in cluster 0
    precision, recall = precision_recall(real, fake, k=3)
    assert precision > 0.9
    assert recall < 0.2


def test_feature_metric_input_errors():
    f = np.zeros((5, 3))
    with pytest.raises(UserError, match="subset_size 10"):
        kernel_inception_distance(f, f, subset_size=10)
    with pytest.raises(UserError, match="k=5"):
        precision_recall(f, f, k=5)


# --- class_metrics ----------------------------------------------------------------------------


def test_collapsed_predictions():
    probabilities = np.tile(np.eye(10)[7] * 0.9 + 0.01, (50, 1))  # all class 7, confidence 0.91
    histogram = class_histogram(probabilities)
    assert histogram.tolist() == [0] * 7 + [50] + [0] * 2
    assert class_entropy(histogram) == 0.0
    assert mean_confidence(probabilities) == pytest.approx(0.91)
    assert recognisable_fraction(probabilities) == 1.0


def test_uniform_histogram_has_entropy_ln10():
    assert class_entropy(np.full(10, 20)) == pytest.approx(math.log(10))


def test_confidence_by_hand():
    probabilities = np.array([[0.95] + [0.05 / 9] * 9, [0.5, 0.5] + [0.0] * 8, [0.1] * 10])
    assert class_histogram(probabilities).tolist() == [3] + [0] * 9  # ties go to the first class
    assert mean_confidence(probabilities) == pytest.approx((0.95 + 0.5 + 0.1) / 3)
    assert recognisable_fraction(probabilities) == pytest.approx(1 / 3)


# --- memorisation -----------------------------------------------------------------------------


def test_nearest_neighbours_by_hand():
    reference = torch.tensor([[0.0, 0.0], [3.0, 4.0], [10.0, 0.0]])
    queries = torch.tensor([[3.0, 4.0], [0.0, 1.0], [7.0, 0.0]])
    distances, indices = nearest_neighbour_distances(queries, reference, batch=2)
    assert torch.allclose(distances, torch.tensor([0.0, 1.0, 3.0]))
    assert indices.tolist() == [1, 0, 2]


def test_copied_training_image_is_found():
    gen = torch.Generator().manual_seed(0)
    train = torch.rand(300, 28, 28, generator=gen) - 0.5
    test = torch.rand(100, 28, 28, generator=gen) - 0.5
    # Black-and-white samples are farther from uniform-noise training images than uniform test
    # images are (per pixel E(u - v)^2 = 1/3 vs 1/6), so only the copy is unusually close.
    samples = (torch.rand(20, 1, 28, 28, generator=gen) > 0.5).float() - 0.5
    samples[5, 0] = train[123]  # a memorised sample
    summary = memorisation_summary(samples, train, test, n_pairs=3, batch=7)
    assert summary.closest_samples[0] == 5 and summary.closest_train[0] == 123
    distances, indices = nearest_neighbour_distances(samples, train)
    assert distances[5] == 0.0 and indices[5] == 123
    assert summary.fraction_below_test_p1 == pytest.approx(1 / 20)
    assert summary.ratio == pytest.approx(2**0.5, abs=0.05)


# --- bootstrap --------------------------------------------------------------------------------


def test_bootstrap_interval_contains_statistic_and_narrows():
    values = np.random.default_rng(4).exponential(size=2000)
    low_small, high_small = bootstrap_ci(np.mean, values[:50], n_boot=500, seed=0)
    low_big, high_big = bootstrap_ci(np.mean, values, n_boot=500, seed=0)
    assert low_small < values[:50].mean() < high_small
    assert low_big < values.mean() < high_big
    assert high_big - low_big < (high_small - low_small) / 3  # width ~ 1/sqrt(n)


def test_bootstrap_of_set_level_metric_resamples_rows():
    rng = np.random.default_rng(5)
    reference, samples = rng.normal(size=(500, 3)), rng.normal(size=(200, 3)) + 1.0
    low, high = bootstrap_ci(lambda f: frechet_distance(reference, f), samples, n_boot=100)
    assert low < frechet_distance(reference, samples) < high


# --- the libraries' preconditions: too-small input is refused in one sentence, or adapted ------

ROWS = np.random.default_rng(0).normal(size=(12, 4))
PRECONDITIONS = [
    ("t-SNE perplexity", lambda: joint_tsne([np.zeros((3, 28, 28))], seed=0),
     "t-SNE perplexity 30.0 must be above 0 and below the 3 points"),
    ("mixture", lambda: fit_gmm(np.zeros((20, 2)), seed=0),
     "a 10-component mixture needs at least 10 distinct points, got 1 of 20"),
    ("covariance rows", lambda: frechet_distance(ROWS, ROWS[:1]),
     "The Fréchet distance needs >= 2 rows per set (a sample covariance), got 12 and 1."),
    ("feature dimensions", lambda: frechet_distance(ROWS, ROWS[:, :3]),
     "The Fréchet distance needs (N, D) feature arrays with one D, got shapes [(12, 4), (12, 3)]."),
    ("finite features", lambda: frechet_distance(ROWS, np.full((12, 4), np.nan)),
     "The Fréchet distance got features holding NaN or inf."),
    ("variance rows", lambda: total_variance(np.zeros((1, 28, 28))),
     "total_variance needs >= 2 rows per set (a sample covariance), got 1."),
    ("neighbour rank", lambda: kth_neighbour_radii(ROWS[:3], k=3),
     "kth_neighbour_radii k=3 must be >= 1 and below the set sizes (3)."),
    ("neighbour rank of both sets", lambda: precision_recall(ROWS, ROWS[:3], k=3),
     "precision_recall k=3 must be >= 1 and below the set sizes (12, 3)."),
    ("bootstrap draws", lambda: bootstrap_ci(np.mean, ROWS, n_boot=0),
     "bootstrap_ci needs >= 1 draw of >= 1 row, got 0 draws of 12."),
    ("nearest of no image", lambda: nearest_neighbour_distances(torch.zeros(2, 784),
                                                                torch.zeros(0, 784)),
     "nearest_neighbour_distances needs >= 1 reference image, got 0."),
]  # fmt: skip


@pytest.mark.parametrize(
    "call, message", [p[1:] for p in PRECONDITIONS], ids=[p[0] for p in PRECONDITIONS]
)
def test_a_broken_precondition_is_one_sentence(call, message):
    with pytest.raises(UserError) as refused:
        call()
    assert str(refused.value) == message


def test_a_small_t_sne_lowers_its_perplexity_and_says_so():
    assert tsne_perplexity(91) == (30.0, None)
    assert tsne_perplexity(10) == (
        3.0,
        "t-SNE perplexity lowered from 30 to (points - 1) / 3 = 3.00, as sklearn needs it below "
        "the 10 points",
    )
