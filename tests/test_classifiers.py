"""Each data set's own classifier: ``classifier train`` stores it keyed by the data's
fingerprint, ``evaluate`` scores a data set's samples with it and with no other, and the class
metrics take their size from the classifier's classes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_data_seam import member_folder
from tiny_runs import single_thread, tiny_config, train_tiny  # noqa: F401  (autouse: one thread)

import diffusiontools as dt
from diffusiontools import cli
from diffusiontools.config import DataConfig
from diffusiontools.data import load_data
from diffusiontools.data.download import file_sha256
from diffusiontools.errors import UserError
from diffusiontools.evaluation import classifier
from diffusiontools.evaluation.class_metrics import class_histogram
from diffusiontools.evaluation.classifier_store import classifier_for, stored_paths
from diffusiontools.evaluation.scores import class_scores
from diffusiontools.training.run_folder import read_metrics
from diffusiontools.training.trained_model import load_model

SPEC = {
    "channels": 1,
    "height": 28,
    "width": 28,
    "num_classes": 10,
    "class_names": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"]
    + ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}


@pytest.fixture
def fashion(tmp_path, monkeypatch) -> DataConfig:
    """A tiny fashion_mnist (64 train, 16 test images) and an empty user cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = member_folder(tmp_path / "fashion", "fashion_mnist", monkeypatch)
    return DataConfig(dataset="fashion_mnist", dir=str(folder))


def train_cli(data: DataConfig, *flags: str) -> int:
    argv = ["classifier", "train", "--set", "data.dataset=fashion_mnist", "--data-dir", data.dir]
    return cli.main([*argv, "--epochs", "1", *flags])


def test_train_stores_the_classifier_under_the_data_fingerprint(fashion, tmp_path, capsys):
    assert train_cli(fashion) == 0
    fingerprint = load_data(fashion).fingerprint()
    folder = tmp_path / "cache" / "diffusiontools" / "classifiers"
    weights = folder / f"fashion_mnist-{fingerprint[:12]}.pt"
    assert sorted(p.name for p in folder.iterdir()) == [weights.stem + ".json", weights.name]
    record = json.loads(weights.with_suffix(".json").read_text())
    accuracy = record.pop("test_accuracy")
    assert 0.0 <= accuracy <= 1.0
    assert record == {
        "dataset": "fashion_mnist",
        "fingerprint": fingerprint,
        "spec": SPEC,
        "n_test": 16,
        "epochs": 1,
        "seed": 0,
        "weights": str(weights),
        "weights_sha256": file_sha256(weights),
    }
    assert capsys.readouterr().out.endswith(
        f"test accuracy {accuracy:.4f} on 16 test images; weights written to {weights}\n"
    )
    found = classifier_for(fashion, "cpu")
    assert found.record == {**record, "test_accuracy": accuracy}
    assert found.network.head[-1].out_features == 10


def test_a_fashion_run_is_evaluated_with_its_own_classifier(fashion, tmp_path):
    assert train_cli(fashion) == 0
    run = train_tiny(
        tmp_path / "run",
        "data.dataset=fashion_mnist",
        f"data.dir={fashion.dir}",
        "data.subset=40",
        "training.epochs=1",
        "training.batch_size=8",
    )
    model = load_model(run, None, torch.device("cpu"))
    result = dt.evaluate({"fashion": model}, n_samples=10, out=tmp_path / "eval", device="cpu")
    settings = json.loads((tmp_path / "eval" / "metrics.json").read_text())["settings"]
    weights, _ = stored_paths("fashion_mnist", load_data(fashion).fingerprint())
    assert settings["classifier"]["dataset"] == "fashion_mnist"
    assert settings["classifier"]["weights"] == str(weights)
    assert settings["classifier_sha256"] == file_sha256(weights)
    assert result.metrics["runs"]["fashion"]["metrics"]["class_entropy"]["value"] >= 0.0


def test_another_data_set_is_not_scored_by_this_classifier(fashion, tmp_path, monkeypatch):
    """kmnist files holding the very same pixels: the classifier is fashion_mnist's, not theirs."""
    assert train_cli(fashion) == 0
    folder = member_folder(tmp_path / "kmnist", "kmnist", monkeypatch)
    kmnist = DataConfig(dataset="kmnist", dir=str(folder))
    with pytest.raises(UserError) as e:
        classifier_for(kmnist, "cpu")
    assert str(e.value).endswith(
        f"train one with `diffusiontools classifier train --set data.dataset=kmnist --set "
        f"data.dir={folder}`"
    )


def test_a_record_of_another_data_set_is_refused(fashion):
    assert train_cli(fashion) == 0
    fingerprint = load_data(fashion).fingerprint()
    _, record_path = stored_paths("fashion_mnist", fingerprint)
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "dataset": "kmnist"}))
    with pytest.raises(UserError) as e:
        classifier_for(fashion, "cpu")
    assert str(e.value) == (
        f"the classifier record {record_path} is of data set kmnist (fingerprint "
        f"{fingerprint[:12]}), not of fashion_mnist (fingerprint {fingerprint[:12]}); delete it "
        "and train again"
    )


def test_out_and_other_sections_are_refused_for_a_stored_classifier(fashion, capsys):
    assert train_cli(fashion, "--out", "x.pt") == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            "error: --out names the file of MNIST's shipped weights; the classifier of "
            "fashion_mnist is stored in the user cache, where evaluate finds it: drop --out"
        )
    )
    assert train_cli(fashion, "--set", "training.epochs=1") == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            "error: --set training.epochs=1 is not a [data] key; classifier train reads data.* only"
        )
    )


def test_mnist_is_scored_by_the_shipped_classifier():
    found = classifier_for(DataConfig(), "cpu")
    assert found.record == {
        "dataset": "mnist",
        "weights": "diffusiontools/assets/mnist_classifier.pt",
        "weights_sha256": classifier.WEIGHTS_SHA256,
    }
    shipped = classifier.load_classifier("cpu").state_dict()
    assert all(torch.equal(v, shipped[k]) for k, v in found.network.state_dict().items())


def test_class_metrics_take_their_size_from_the_probabilities():
    probabilities = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1]])
    assert class_histogram(probabilities).tolist() == [1, 2, 0]
    entropy = class_scores(probabilities, seed=0, n_boot=2, n_boot_set=2)["class_entropy"]
    assert entropy["value"] == pytest.approx(-(1 / 3) * np.log(1 / 3) - (2 / 3) * np.log(2 / 3))


def test_the_quality_probe_of_a_fashion_run_uses_its_classifier(fashion, tmp_path):
    assert train_cli(fashion) == 0
    config = tiny_config(
        "data.dataset=fashion_mnist",
        f"data.dir={fashion.dir}",
        "data.subset=40",
        "training.epochs=1",
        "training.batch_size=8",
        "training.eval_every=1",
        "training.eval_samples=10",
    )
    dt.train(config, tmp_path / "run")
    rows = read_metrics(tmp_path / "run")
    assert len(rows) == 1  # epoch 0, the last
    assert all(0.0 <= row["recognisable_fraction"] <= 1.0 for row in rows)
    assert all(0.0 <= row["class_entropy"] <= np.log(10) for row in rows)


def test_the_default_training_length_is_a_number_of_steps_not_of_passes():
    """MNIST's 3 passes are 1,407 steps of 128; a small data set gets as many steps (the 1,437
    8x8 digits' 12 steps a pass: 117 passes), never fewer than 3 passes; an explicit count wins."""
    from diffusiontools.evaluation.classifier_training import resolved_epochs

    assert resolved_epochs(None, 60_000) == 3  # ceil(1400 / 469) = 3
    assert resolved_epochs(None, 1_437) == 117  # ceil(1400 / 12)
    assert resolved_epochs(None, 4_000) == 44  # ceil(1400 / 32)
    assert resolved_epochs(None, 1_000_000) == 3
    assert resolved_epochs(5, 1_437) == 5
