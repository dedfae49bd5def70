"""The committed MNIST classifier: its checksum, its accuracy, and the training code path."""

from importlib import resources

import numpy as np
import pytest
import torch

from diffusiontools.data import DatasetSpec, ImageDataset, Provenance, load_mnist
from diffusiontools.data.download import file_sha256
from diffusiontools.errors import UserError
from diffusiontools.evaluation import classifier
from diffusiontools.evaluation.classifier import FEATURE_DIM, load_classifier
from diffusiontools.evaluation.classifier_training import accuracy, random_shift, train_classifier
from diffusiontools.evaluation.feature_metrics import classifier_features


def test_committed_weights_match_checksum():
    weights = resources.files("diffusiontools") / "assets" / classifier.WEIGHTS_FILE
    assert file_sha256(weights) == classifier.WEIGHTS_SHA256
    assert len(weights.read_bytes()) < 2_000_000


def test_wrong_checksum_is_a_user_error(monkeypatch):
    monkeypatch.setattr(classifier, "WEIGHTS_SHA256", "0" * 64)
    with pytest.raises(UserError, match="diffusiontools classifier train"):
        load_classifier("cpu")


def test_features_and_probabilities_shapes():
    model = load_classifier("cpu")
    images = torch.rand(7, 28, 28, generator=torch.Generator().manual_seed(0)) - 0.5
    features, probabilities = classifier_features(model, images, "cpu", batch_size=3)
    assert features.shape == (7, FEATURE_DIM) and probabilities.shape == (7, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)  # float32 softmax
    # (N, 1, 28, 28) input gives the same answer as (N, 28, 28).
    same, _ = classifier_features(model, images[:, None].numpy(), "cpu")
    np.testing.assert_allclose(same, features, rtol=1e-5, atol=1e-6)


def test_accuracy_on_first_2000_test_images(real_mnist):
    data = load_mnist(str(real_mnist), source="mnist", download=False)
    model = load_classifier("cpu")
    assert accuracy(model, data.test_images[:2000], data.test_labels[:2000], "cpu") >= 0.985


def test_random_shift_moves_a_pixel_at_most_two_places():
    images = torch.zeros(50, 28, 28, dtype=torch.uint8)
    images[:, 14, 10] = 255
    shifted = random_shift(images, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == (50, 28, 28) and shifted.dtype == torch.uint8
    rows, cols = (shifted == 255).nonzero()[:, 1:].T  # one lit pixel per image
    assert len(rows) == 50
    assert (rows - 14).abs().max() <= 2 and (cols - 10).abs().max() <= 2
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) > 10  # the shifts do vary


def test_training_runs_and_saves(tmp_path):
    gen = torch.Generator().manual_seed(0)
    fake = ImageDataset(
        train_images=torch.randint(0, 256, (130, 1, 28, 28), dtype=torch.uint8, generator=gen),
        train_labels=torch.randint(0, 10, (130,), generator=gen),
        test_images=torch.randint(0, 256, (20, 1, 28, 28), dtype=torch.uint8, generator=gen),
        test_labels=torch.randint(0, 10, (20,), generator=gen),
        spec=DatasetSpec(1, 28, 28, 10, tuple("0123456789")),
        provenance=Provenance("test", {}, 130, 20),
    )
    out = tmp_path / "sub" / "weights.pt"
    test_accuracy = train_classifier(fake, epochs=1, seed=0, device="cpu", out_path=out)
    assert 0.0 <= test_accuracy <= 1.0
    shipped = classifier.MnistClassifier(1, 28, 28, 10)  # MNIST's shape and classes
    assert set(torch.load(out, weights_only=True)) == set(shipped.state_dict())
    with pytest.raises(UserError, match="epochs=0 is not a number of passes: give at least 1"):
        train_classifier(fake, epochs=0, seed=0, device="cpu", out_path=out)
