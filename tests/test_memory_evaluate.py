"""Evaluating a run trained on arrays: ``dt.train_classifier(data=...)`` trains the arrays'
classifier into the user cache, ``dt.evaluate(..., data=...)`` converts and splits the arrays as
``dt.train`` did and scores against them; other arrays, and none, are refused in one sentence."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from test_memory_api import TINY, rgb_arrays
from test_shapes import DIGITS8
from tiny_runs import single_thread, tiny_config, train_tiny  # noqa: F401  (autouse: one thread)

import diffusiontools as dt
from diffusiontools.api import handed_over
from diffusiontools.data import load_dataset
from diffusiontools.errors import UserError
from diffusiontools.evaluation.classifier_store import classifier_for, train_command

# 64 images, a quarter held out: 16 test images, enough for evaluate's references (at least 10).
SPLIT = 0.25
SMALL = {"n_samples": 10, "n_boot": 20, "n_boot_set": 4}


def quarter_config():
    config = tiny_config(*TINY)
    return dataclasses.replace(config, data=dataclasses.replace(config.data, test_fraction=SPLIT))


@pytest.fixture(scope="module")
def arrays_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("arrays") / "run"
    dt.train(quarter_config(), run, data=rgb_arrays())
    return run


@pytest.fixture(scope="module")
def arrays_cache(tmp_path_factory):
    """A user cache holding the arrays' classifier, trained once for this module."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(cache))
        torch.set_num_threads(1)
        record = dt.train_classifier(data=rgb_arrays(), epochs=1, test_fraction=SPLIT)
    return cache, record


def test_the_classifier_of_arrays_is_stored_under_their_fingerprint(arrays_run, arrays_cache):
    _, record = arrays_cache
    fingerprint = dt.load(arrays_run).data["dataset"]["fingerprint"]
    assert record["dataset"] == "memory"
    assert record["fingerprint"] == fingerprint
    assert record["spec"]["class_names"] == ["class 0", "class 1", "class 2"]
    assert record["n_test"] == 16 and record["epochs"] == 1


def test_a_run_on_arrays_is_evaluated_against_the_same_arrays(
    arrays_run, arrays_cache, tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(arrays_cache[0]))
    model = dt.load(arrays_run)
    out = tmp_path / "eval"
    result = dt.evaluate({"mine": model}, out=out, data=rgb_arrays(), **SMALL)
    metrics = json.loads((out / "metrics.json").read_text())
    assert result.metrics == metrics
    classifier = metrics["settings"]["classifier"]
    assert classifier["dataset"] == "memory"
    assert classifier["fingerprint"] == model.data["dataset"]["fingerprint"]
    data = metrics["settings"]["data"]
    assert data["source"] == "memory"
    assert (data["n_train"], data["n_test"]) == (48, 16)
    assert data["spec"]["class_names"] == ["class 0", "class 1", "class 2"]
    assert data["settings"]["dataset"] == "memory"
    assert data["settings"]["test_fraction"] == SPLIT
    run = metrics["runs"]["mine"]
    assert len(run["class_histogram"]) == 3 and sum(run["class_histogram"]) == 10
    # An ImageDataset of the same values (channels first, a tensor) is the same data.
    images, labels = rgb_arrays()
    given = load_dataset(
        "memory",
        images=torch.from_numpy(images).permute(0, 3, 1, 2),
        labels=labels,
        test_fraction=SPLIT,
    )
    again = dt.evaluate({"mine": model}, out=tmp_path / "again", data=given, **SMALL)
    assert again.metrics["settings"]["classifier"] == classifier


def test_other_arrays_are_refused(arrays_run, arrays_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(arrays_cache[0]))
    with pytest.raises(UserError) as e:
        dt.evaluate({"mine": arrays_run}, out=tmp_path / "eval", data=rgb_arrays(seed=1), **SMALL)
    assert str(e.value).startswith(
        f"evaluate: the arrays given are not the ones the run in {arrays_run} trained on "
        "(fingerprint "
    )
    assert str(e.value).endswith("pass the same images and labels as data=")
    assert not (tmp_path / "eval").exists()


def test_a_run_on_arrays_without_data_is_refused(arrays_run, tmp_path):
    with pytest.raises(UserError) as e:
        dt.evaluate({"mine": arrays_run}, out=tmp_path / "eval", **SMALL)
    assert str(e.value) == (
        "evaluate: data.dataset = memory (arrays handed to dt.train(..., data=)) is held by no "
        "file that evaluate could load its test images from; pass the same arrays again, from "
        "Python: dt.evaluate(sets, data=(images, labels))"
    )


def test_arrays_without_their_classifier_say_how_to_train_it(arrays_run, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty"))
    with pytest.raises(UserError) as e:
        dt.evaluate({"mine": arrays_run}, out=tmp_path / "eval", data=rgb_arrays(), **SMALL)
    assert str(e.value).endswith(
        "train one with `dt.train_classifier(data=(images, labels), test_fraction=0.25)`"
    )
    assert not (tmp_path / "eval").exists()


def test_arrays_beside_a_run_on_files_are_refused(tmp_path):
    run = train_tiny(tmp_path / "run", *DIGITS8, "training.max_steps=1")
    with pytest.raises(UserError) as e:
        dt.evaluate({"files": run}, out=tmp_path / "eval", data=rgb_arrays(), **SMALL)
    assert str(e.value) == (
        f"data= gives images, and {run} was trained on data.dataset = digits8, which evaluate "
        "loads itself: drop data="
    )


def test_the_python_call_to_train_a_classifier_keeps_the_split():
    images, labels = rgb_arrays()
    assert train_command(handed_over((images, labels))) == (
        "dt.train_classifier(data=(images, labels))"
    )
    assert train_command(handed_over((images, labels), 0.25), epochs="N") == (
        "dt.train_classifier(data=(images, labels), test_fraction=0.25, epochs=N)"
    )


def test_the_classifier_store_takes_an_image_dataset(arrays_cache, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(arrays_cache[0]))
    found = classifier_for(handed_over(rgb_arrays(), SPLIT), "cpu")
    assert found.record == arrays_cache[1]
    assert found.network.training is False


def test_images_alone_are_scored_against_arrays_given(arrays_cache, tmp_path, monkeypatch):
    """No run: the arrays given are the data (an ImageDataset keeps its own split)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(arrays_cache[0]))
    data = load_dataset(
        "memory", images=rgb_arrays()[0], labels=rgb_arrays()[1], test_fraction=SPLIT
    )
    real = data.test_images[:10].numpy()  # (10, 3, 16, 16)
    result = dt.evaluate({"real": real}, out=tmp_path / "eval", data=data, **SMALL)
    settings = result.metrics["settings"]
    assert settings["classifier"]["fingerprint"] == arrays_cache[1]["fingerprint"]
    assert settings["data"]["settings"]["from"] == "images given as data= (no runs)"
    assert len(result.metrics["runs"]["real"]["class_histogram"]) == 3
