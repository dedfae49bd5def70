"""What ``diffusiontools evaluate`` computes: the counts, the seed and the sampling choices,
checked once, when they are built, and passed to every stage of the evaluation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import sklearn
import torch

from .. import __version__
from ..errors import UserError
from .report_metrics import GMM_COMPONENTS
from .scores import N_BOOT, N_BOOT_SET

MIN_SAMPLES = GMM_COMPONENTS  # the samples' mixture needs at least one point per component
# At most per set: the test set's size, which the metrics compare against; every set joins one
# t-SNE with the test images, so more would swell its fit past what a CPU does in minutes.
MAX_SAMPLES = 10_000
RUN_SAMPLES = 200  # samples drawn per model when n_samples is not given (the report's)
MAX_SEED = 2**32 - 1  # numpy's and sklearn's seeds (t-SNE, mixtures, resampling)
# What of a set the joint t-SNE embeds: its images (as shown), or its samples as drawn, which
# the report's t-SNE embedded (its sampler does not clamp).
TSNE_SAMPLES = ("images", "unclamped")


def whole(name: str, value) -> None:
    """Refuse a count that is not an int (a bool is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{name}={value!r} is not a whole number")


@dataclass(frozen=True)
class EvaluationSettings:
    """The settings of one evaluation; building one checks every bound that needs no data.

    n_samples: per set, MIN_SAMPLES..MAX_SAMPLES; None draws RUN_SAMPLES per model and takes
    every image of a file or array (at most MAX_SAMPLES);
    sampler, steps: how models are sampled (None: each model's own; checked against each model);
    seed: 0..2**32 - 1, for sampling, t-SNE, mixtures, Monte Carlo KL, KID subsets, resampling;
    tsne_reference: test images in the joint t-SNE (the report: all 10,000);
    test_reference: test images behind the classifier metrics and the memorisation baseline;
    both MIN_SAMPLES..the test images there are; None: every test image, at most MAX_SAMPLES
    (``for_test_images`` resolves them against the data in use);
    n_boot: bootstrap resamples of the per-sample means, >= 1; n_boot_set: half-samples of the
    set-level metrics (total variance, Fréchet distance, KID, precision/recall, class
    entropy), >= 2;
    tsne_samples: what of each set the joint t-SNE (and so every KL) embeds, one of
    ``TSNE_SAMPLES``: "images", the uint8 images as shown, or "unclamped", the samples as drawn,
    values beyond [-0.5, 0.5] included, as the report's t-SNE did (every set must hold them).
    Raises UserError naming the argument.
    """

    n_samples: int | None = None
    sampler: str | None = None
    steps: int | None = None
    seed: int = 0
    tsne_reference: int | None = None
    test_reference: int | None = None
    n_boot: int = N_BOOT
    n_boot_set: int = N_BOOT_SET
    tsne_samples: str = "images"

    def __post_init__(self) -> None:
        if self.tsne_samples not in TSNE_SAMPLES:
            raise UserError(
                f"tsne_samples={self.tsne_samples!r} must be one of {', '.join(TSNE_SAMPLES)}"
            )
        if self.n_samples is not None:
            check_sample_count(self.n_samples)
        whole("seed", self.seed)
        if not 0 <= self.seed <= MAX_SEED:
            raise UserError(f"seed={self.seed} must be between 0 and {MAX_SEED}")
        for name in ("tsne_reference", "test_reference"):
            k = getattr(self, name)
            if k is not None:
                whole(name, k)
                if k < MIN_SAMPLES:
                    raise UserError(
                        f"{name}={k} must be between {MIN_SAMPLES} and the number of test images"
                    )
        whole("n_boot", self.n_boot)
        whole("n_boot_set", self.n_boot_set)
        if self.n_boot < 1 or self.n_boot_set < 2:
            raise UserError(
                f"n_boot={self.n_boot} must be >= 1 and n_boot_set={self.n_boot_set} >= 2"
            )

    def samples_per_model(self) -> int:
        """Samples drawn from each model."""
        return RUN_SAMPLES if self.n_samples is None else self.n_samples

    def for_test_images(self, n_test: int) -> EvaluationSettings:
        """These settings with both reference sizes resolved against the ``n_test`` test images
        of the data in use: a size given is checked against them, None takes every one of
        them, at most MAX_SAMPLES (``check_test_count`` has refused fewer than MIN_SAMPLES)."""
        sizes = {}
        for name in ("tsne_reference", "test_reference"):
            k = getattr(self, name)
            if k is not None and k > n_test:
                raise UserError(
                    f"{name}={k} must be between {MIN_SAMPLES} and the {n_test} test images"
                )
            sizes[name] = min(n_test, MAX_SAMPLES) if k is None else k
        return dataclasses.replace(self, **sizes)

    def record(self, classifier: dict) -> dict:
        """What a reader needs to reproduce the numbers: seeds, reference sizes, networks
        (``classifier``: the record of the data set's classifier, ``classifier_store``),
        versions."""
        return {
            "seed": self.seed,
            "seeds_note": "one seed for sampling, t-SNE, mixtures, Monte Carlo KL, KID subsets "
            "and interval resampling",
            "n_samples": self.n_samples,
            "n_samples_note": "--n-samples as given; null: all images of each NPZ, "
            f"{RUN_SAMPLES} per run (each run's count is its n_samples)",
            "tsne_reference": self.tsne_reference,
            "tsne": "sklearn TSNE(n_components=2, perplexity=tsne_perplexity, "
            "random_state=seed), sklearn defaults otherwise",
            "tsne_samples": self.tsne_samples,
            "tsne_samples_note": "what of each set the t-SNE embeds: images, the uint8 images "
            "in [-0.5, 0.5]; unclamped, the samples as drawn (the report's)",
            "gmm": f"GaussianMixture({GMM_COMPONENTS}, full covariances, random_state=seed)",
            "test_reference": self.test_reference,
            "test_reference_note": "first test images, for the classifier metrics and the "
            "memorisation baseline",
            "classifier_sha256": classifier["weights_sha256"],
            # None: the shipped MNIST classifier's record holds no accuracy
            "classifier_test_accuracy": classifier.get("test_accuracy"),
            "classifier_n_test": classifier.get("n_test"),
            "classifier": classifier,
            "versions": {
                "diffusiontools": __version__,
                "torch": torch.__version__,
                "sklearn": sklearn.__version__,
            },
        }


def check_test_count(n_test: int, dataset: str) -> None:
    """Refuse data (``dataset``: its name) of fewer than MIN_SAMPLES test images: the test
    references need as many, and no reference size could help."""
    if n_test < MIN_SAMPLES:
        raise UserError(
            f"data.dataset = {dataset} has {n_test} test images; evaluate needs at least "
            f"{MIN_SAMPLES}: raise data.test_fraction or add images"
        )


def check_sample_count(n_samples: int) -> None:
    """Refuse a per-set sample count outside MIN_SAMPLES..MAX_SAMPLES."""
    whole("n_samples", n_samples)
    if n_samples < MIN_SAMPLES:
        raise UserError(
            f"n_samples={n_samples} is too few: the samples' Gaussian mixture has "
            f"{GMM_COMPONENTS} components, so give at least {MIN_SAMPLES}"
        )
    if n_samples > MAX_SAMPLES:
        raise UserError(
            f"n_samples={n_samples} is more than evaluate scores per set: give "
            f"{MIN_SAMPLES}..{MAX_SAMPLES} (every set joins one t-SNE with the test images)"
        )
