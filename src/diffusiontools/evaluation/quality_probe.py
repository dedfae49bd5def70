"""The quality curve during training: what ``training.eval_every`` measures.

After epochs 0, N, 2N, ... and the last (N = ``training.eval_every``), the trainer calls the probe
built here with the network it validates (the EMA weights where the run keeps them). The probe

  1. draws ``training.eval_samples`` samples with seed 0, sample i from its own generator
     (``generation.generate``), with the sampler of :func:`probe_config`;
  2. rounds them to uint8 pixels, as every saved sample is;
  3. scores them with the project's classifier against the test set, with the functions
     ``evaluate`` uses: Fréchet distance (classifier features), class entropy, recognisable
     fraction, and the frame statistics (``frame_metrics``);
  4. returns them with its own wall time (``eval_seconds``): columns of that epoch's metrics.csv
     row, drawn beside the loss in learning_curve.png.

Seed 0 and 200 samples are ``evaluate``'s defaults (the Fréchet distance is biased upwards at
small n, so only values at the same n compare): where the probe draws with the run's own sampling
settings, its last row equals ``diffusiontools evaluate RUN`` on the same test set.

The test set's features are computed once per process, on the CPU, and kept in memory keyed by
the test images' sha256 and the classifier weights' (``_TEST_REFERENCE``): a run computes them
once, and a notebook training several runs on the same data computes them once. No cache file:
10,000 images take a few seconds, once, which a file would save only across processes, at the
price of a cache to keep consistent with the data and the classifier.

Why a probe object passed into the trainer (docs/design.md): training sits below evaluation, so
the trainer cannot import the classifier; it only decides when the probe runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from ..config import Config
from ..data import load_data, to_model, to_uint8
from ..diffusion import make_process
from ..errors import UserError
from ..sampling.generation import check_starts, generate
from ..sampling.plan import resolve_plan
from . import (
    class_entropy,
    class_histogram,
    classifier_features,
    frechet_distance,
    recognisable_fraction,
)
from .classifier_store import classifier_for
from .frame_metrics import frame_statistics
from .scores import reference_values

logger = logging.getLogger(__name__)

PROBE_SEED = 0  # the default seed of `sample` and `evaluate`
FAST_STEPS = 100  # a run's own sampler is used when it takes at most this many steps
# Otherwise (the 1000-step ancestral sampler of model 1, or a DDIM without `steps`) a run is
# probed with its own sampler on FAST_STEPS steps: the ancestral one respaced (it keeps the fresh
# noise that corrects a young network's errors; on model 1 at epoch 60 the deterministic fast
# samplers scored 2x the ancestral sampler's Fréchet distance, docs/benchmarks.md), DDIM on a
# coarser grid, a cold sampler on a strided grid.
# Its cost: docs/benchmarks.md#quality-curve-during-training.
COLUMNS = (
    "frechet_distance",
    "class_entropy",
    "recognisable_fraction",
    "frame_mean",
    "frame_above_5",
    "mid_grey_fraction",
    "eval_seconds",
)

_TEST_REFERENCE: dict[str, tuple[np.ndarray, dict[str, float]]] = {}


def probe_config(config: Config) -> Config:
    """``config`` with the ``[sampling]`` the probe draws with.

    The run's own settings when their sampler takes at most ``FAST_STEPS`` steps (the
    quickstart's DDIM-50 with guidance, model 2's 100-step ancestral sampler, every cold run's
    own sampler and start, as ``evaluate`` samples them); otherwise the same sampler and
    settings on ``FAST_STEPS`` steps (a respaced ancestral grid, a coarser DDIM grid, a strided
    cold grid).
    """
    if resolve_plan(config).steps <= FAST_STEPS:
        return config
    return dataclasses.replace(
        config, sampling=dataclasses.replace(config.sampling, steps=FAST_STEPS)
    )


def cached_reference(classifier: nn.Module, weights_sha256: str, test_images: np.ndarray):
    """Classifier features (K, 128) of uint8 test images (K, C, H, W) and their own values of
    the probe's other metrics (``reference_values``); cached by the images' sha256 and
    ``weights_sha256``, the classifier's (a data set's classifier may be trained again)."""
    images = hashlib.sha256(np.ascontiguousarray(test_images).tobytes()).hexdigest()
    key = f"{images} {weights_sha256}"
    if key not in _TEST_REFERENCE:
        x = to_model(torch.from_numpy(test_images))
        features, probabilities = classifier_features(classifier, x, "cpu")
        _TEST_REFERENCE[key] = (features, reference_values(test_images, probabilities))
    return _TEST_REFERENCE[key]


class QualityProbe:
    """Scores a network's samples against the test set of ``config.data`` (see the module
    docstring); ``probe(net, device) -> {column: value}``. ``reference``: the test images' own
    frame statistics and class metrics, drawn beside the curve."""

    def __init__(self, config: Config):
        self.config = probe_config(config)
        self.settings = resolve_plan(self.config)  # what is drawn, every choice resolved
        self.n = config.training.eval_samples
        data = load_data(config.data)
        if not data.spec.num_classes:  # its columns are a classifier's: no labels, none
            raise UserError(
                f"training.eval_every={config.training.eval_every}: the quality probe scores "
                f"with a classifier of the data set's classes, and data.dataset = "
                f"{config.data.dataset} has no class labels; set training.eval_every = 0 and "
                "score the run with `diffusiontools evaluate`"
            )
        found = classifier_for(
            config.data,
            "cpu",
            f"training.eval_every={config.training.eval_every}",
            ", or set training.eval_every = 0 to train without the quality probe",
        )
        self.classifier = found.network
        self.shape = data.spec.shape  # (C, H, W): what the network draws and the data holds
        test = data.test_images.numpy()  # (K, C, H, W)
        self.n_test = len(test)
        check_starts(make_process(self.config), self.config, self.settings, self.n)
        self.test_features, self.reference = cached_reference(
            self.classifier, found.record["weights_sha256"], test
        )

    def describe(self) -> str:
        """What each probe draws and scores, for the trainer to log once the run's every check
        has passed (never before: a refused run must not announce a probe)."""
        s = self.settings
        guidance = f", guidance {s.guidance:g}" if s.guidance not in (None, 1.0) else ""
        clipped = ", x0 clipped" if s.clip_x0 else ""
        return (
            f"{self.n} samples (seed {PROBE_SEED}), {s.sampler} with {s.steps} steps{guidance}"
            f"{clipped}, against {self.n_test} test images"
        )

    def __call__(self, net: nn.Module, device: torch.device) -> dict[str, float]:
        """Draw and score ``n`` samples of ``net`` (on ``device``); one metrics row's columns."""
        started = time.perf_counter()
        process = make_process(self.config).to(device)
        draw = (net, process, self.config, self.n, PROBE_SEED, device)
        x = generate(*draw, plan=self.settings, shape=self.shape)
        images = to_uint8(x).reshape(x.shape).cpu().numpy()  # (n, C, H, W), as a saved sample
        features, probabilities = classifier_features(
            self.classifier, to_model(torch.from_numpy(images)), "cpu"
        )
        # One BLAS thread: 128x128 eigen-decompositions gain nothing from more, and right after
        # torch's ops OpenBLAS threads fight its spinning OpenMP threads (measured 20x slower).
        with threadpool_limits(1):
            row = {
                "frechet_distance": frechet_distance(self.test_features, features),
                "class_entropy": class_entropy(class_histogram(probabilities)),
                "recognisable_fraction": recognisable_fraction(probabilities),
                **frame_statistics(images),
            }
        row["eval_seconds"] = time.perf_counter() - started
        logger.info(
            "quality: Fréchet %.1f, class entropy %.3f, recognisable %.3f, frame %.2f/255, "
            "%.1f%% of frames above 5/255, %.1f%% mid-grey (%.1f s)",
            row["frechet_distance"],
            row["class_entropy"],
            row["recognisable_fraction"],
            row["frame_mean"],
            100 * row["frame_above_5"],
            100 * row["mid_grey_fraction"],
            row["eval_seconds"],
        )
        return row


def quality_probe(config: Config) -> QualityProbe | None:
    """The probe ``training.eval_every`` asks for, None when it is 0 (off): what ``dt.train``,
    ``diffusiontools train`` and ``reproduce`` pass to the trainer."""
    return QualityProbe(config) if config.training.eval_every else None
