"""A flat folder of images (no class labels): an unconditional model trains, samples and is
evaluated on it; what needs labels (a class-conditional model, digit=, the quality probe, the
class metrics) is refused or left out with a sentence saying so."""

from __future__ import annotations

import hashlib
import json
import sys
import types
from pathlib import Path

import pytest
import torch
from PIL import Image
from tiny_runs import single_thread, tiny_config, train_tiny  # noqa: F401  (autouse: one thread)
from torch import nn

import diffusiontools as dt
from diffusiontools.data.embedded import embedded_mnist
from diffusiontools.errors import UserError
from diffusiontools.evaluation import inception_features
from diffusiontools.evaluation.inception_features import unavailable

N_IMAGES = 120  # 108 train images (the first 100 used: 80 train split, 20 validation), 12 test


@pytest.fixture
def digits_folder(tmp_path) -> Path:
    """The first N_IMAGES embedded MNIST digits as a flat folder of 28x28 gray PNGs."""
    images = embedded_mnist()[0][:N_IMAGES]  # (N, 28, 28) uint8
    folder = tmp_path / "digits"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image, "L").save(folder / f"{i:03d}.png")
    return folder


def folder_keys(folder: Path) -> tuple[str, str]:
    return "data.dataset=folder", f"data.dir={folder}"


def test_an_unconditional_model_trains_and_samples_on_unlabelled_images(tmp_path, digits_folder):
    run = train_tiny(tmp_path / "run", *folder_keys(digits_folder), "data.subset=100")
    record = json.loads((run / "data.json").read_text())
    assert record["dataset"]["spec"]["num_classes"] == 0
    assert (record["n_train_split"], record["n_val_split"]) == (80, 20)
    model = dt.load(run, device="cpu")
    assert tuple(model.sample(4, seed=0).shape) == (4, 1, 28, 28)
    with pytest.raises(UserError) as e:
        model.sample(4, digit=3)
    assert str(e.value) == (
        "digit=3 needs a class-conditional model (model.num_classes > 0); this model is "
        "unconditional"
    )


def test_a_class_conditional_model_is_refused_on_unlabelled_images(tmp_path, digits_folder):
    with pytest.raises(UserError) as e:
        train_tiny(tmp_path / "run", *folder_keys(digits_folder), "model.num_classes=10")
    assert str(e.value) == (
        "model.num_classes = 10 needs class labels, and data.dataset = folder has none: give "
        "model.num_classes = 0 (unconditional)"
    )
    assert not (tmp_path / "run" / "data.json").exists()


def test_the_quality_probe_is_refused_on_unlabelled_images(tmp_path, digits_folder):
    with pytest.raises(UserError) as e:
        dt.train(tiny_config(*folder_keys(digits_folder), "training.eval_every=1"), tmp_path / "r")
    assert str(e.value) == (
        "training.eval_every=1: the quality probe scores with a classifier of the data set's "
        "classes, and data.dataset = folder has no class labels; set training.eval_every = 0 "
        "and score the run with `diffusiontools evaluate`"
    )
    assert not (tmp_path / "r").exists()


def evaluate_unlabelled(tmp_path: Path, digits_folder: Path) -> dict:
    """A tiny unconditional run on the folder, trained and evaluated (10 samples against the 12
    test images); the metrics.json dict."""
    run = train_tiny(tmp_path / "run", *folder_keys(digits_folder), "data.subset=100")
    model = dt.load(run, device="cpu")
    out = tmp_path / "eval"
    result = dt.evaluate({"tiny": model}, n_samples=10, out=out, device="cpu", n_boot=5)
    assert json.loads((out / "metrics.json").read_text()) == result.metrics
    return result.metrics


REPORT_METRICS = {"total_variance", "kl_faithful", "kl_grid_normalised", "kl_monte_carlo"}
PIXEL_METRICS = {"memorisation_ratio", "frame_mean", "frame_above_5", "mid_grey_fraction"}
FEATURE_METRICS = {"frechet_distance", "kid", "precision", "recall"}
CLASS_METRICS = {"class_entropy", "mean_confidence", "recognisable_fraction"}


def test_unlabelled_samples_are_evaluated_without_a_feature_network(
    tmp_path, digits_folder, monkeypatch
):
    """Where Inception features cannot be had, the feature and class metrics are left out and
    metrics.json says so; the report's metrics and pixel-space memorisation are computed."""
    reason = unavailable("its weights are not in the torch hub cache (/nowhere)")
    monkeypatch.setattr(inception_features, "feature_network", lambda device: (None, reason))
    metrics = evaluate_unlabelled(tmp_path, digits_folder)
    scores = metrics["runs"]["tiny"]["metrics"]
    assert REPORT_METRICS | PIXEL_METRICS <= set(scores)
    assert not (FEATURE_METRICS | CLASS_METRICS) & set(scores)
    assert scores["total_variance"]["value"] > 0
    assert metrics["runs"]["tiny"]["class_histogram"] is None
    assert metrics["settings"]["classifier"] == {
        "dataset": "folder",
        "feature_network": None,
        "weights": None,
        "weights_sha256": None,
        "unavailable": "Inception features are not available offline: its weights are not in "
        "the torch hub cache (/nowhere)",
        "omitted": "data.dataset = folder has no class labels: class metrics (class entropy, "
        "mean confidence, recognisable fraction, read as the class asked for, class histograms) "
        "omitted; Inception features "
        "are not available offline: its weights are not in the torch hub cache (/nowhere): "
        "feature metrics (Fréchet distance, KID, precision, recall) omitted; pixel-space "
        "memorisation, t-SNE KL and total variance computed",
    }
    assert not (tmp_path / "eval" / "class_histogram_tiny.png").exists()
    assert not (tmp_path / "eval" / "tsne_test_labels.png").exists()
    assert "class histogram" in (tmp_path / "eval" / "metrics.md").read_text()


class PooledPixels(nn.Module):
    """torch-fidelity's extractor's interface (uint8 (N, 3, H, W) in, a tuple of features
    out) with 16 pooled pixels for features: the Inception path without its weights."""

    def __init__(self, name, features_list, feature_extractor_weights_path):
        super().__init__()
        assert (name, features_list) == ("inception-v3-compat", ["2048"])
        self.weights = feature_extractor_weights_path

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        assert x.dtype == torch.uint8 and x.shape[1] == 3
        return (nn.functional.adaptive_avg_pool2d(x[:, :1].float(), 4).flatten(1),)


@pytest.fixture
def fidelity(tmp_path, monkeypatch) -> Path:
    """A stand-in torch_fidelity package and an empty torch hub cache; the weights' path."""
    package = types.ModuleType("torch_fidelity")
    package.__version__ = "0.0-test"
    module = types.ModuleType("torch_fidelity.feature_extractor_inceptionv3")
    module.FeatureExtractorInceptionV3 = PooledPixels
    monkeypatch.setitem(sys.modules, "torch_fidelity", package)
    monkeypatch.setitem(sys.modules, "torch_fidelity.feature_extractor_inceptionv3", module)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints" / inception_features.WEIGHTS_FILE


def test_inception_features_say_why_they_are_not_available(fidelity, monkeypatch):
    assert inception_features.feature_network("cpu") == (
        None,
        unavailable(f"its weights are not in the torch hub cache ({fidelity})"),
    )
    fidelity.parent.mkdir(parents=True)
    fidelity.write_bytes(b"not weights")
    digest = hashlib.sha256(b"not weights").hexdigest()[:12]
    assert inception_features.feature_network("cpu")[1]["unavailable"] == (
        "Inception features are not available offline: the file "
        f"{fidelity} is not torch-fidelity's (sha256 {digest})"
    )
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # not installed
    assert inception_features.feature_network("cpu")[1]["unavailable"].startswith(
        "Inception features are not available offline: torch-fidelity's InceptionV3 cannot be "
        "imported ("
    )


def test_unlabelled_samples_are_scored_on_inception_features_where_they_can_be_had(
    tmp_path, digits_folder, fidelity, monkeypatch
):
    fidelity.parent.mkdir(parents=True)
    fidelity.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    monkeypatch.setattr(inception_features, "WEIGHTS_SHA256_PREFIX", digest[:8])
    metrics = evaluate_unlabelled(tmp_path, digits_folder)
    scores = metrics["runs"]["tiny"]["metrics"]
    assert REPORT_METRICS | PIXEL_METRICS | FEATURE_METRICS <= set(scores)
    assert not CLASS_METRICS & set(scores)
    assert scores["frechet_distance"]["value"] > 0
    assert metrics["settings"]["classifier"] == {
        "dataset": "folder",
        "feature_network": "InceptionV3 pool features, 2048-d (torch-fidelity 0.0-test)",
        "weights": str(fidelity),
        "weights_sha256": digest,
        "omitted": "data.dataset = folder has no class labels: class metrics (class entropy, "
        "mean confidence, recognisable fraction, read as the class asked for, class histograms) "
        "omitted",
    }
