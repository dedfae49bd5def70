"""Training on images held in Python: ``dt.train(cfg, run, data=...)`` records where they came
from, a resume takes the same arrays only, and whatever would load them again from the config is
refused; the class to draw is ``label=`` (``digit=`` its alias); sample files name the data set."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from tiny_runs import single_thread, tiny_config  # noqa: F401  (autouse: one thread)

import diffusiontools as dt
from diffusiontools import cli
from diffusiontools.api import handed_over
from diffusiontools.config import DataConfig
from diffusiontools.data import load_data
from diffusiontools.data.memory import load_memory
from diffusiontools.data.sources import load_dataset
from diffusiontools.errors import UserError
from diffusiontools.training import checkpoint as ckpt_io
from diffusiontools.training.sample_files import sample_files, sample_to_files

# 64 images -> 58 train (6 held out as the test split) -> 46 train / 12 validation;
# batch 16 -> 2 steps per epoch.
TINY = ("model.num_classes=3", "training.epochs=2")
MEMORY_ONLY = (
    "data.dataset = memory: the run was trained on in-memory arrays, which no file holds; give "
    "the same images and labels again as data= to dt.train (resuming on), dt.evaluate or "
    "dt.train_classifier; for a cold start, save them with np.savez(PATH, images=..., "
    "labels=...) and train with data.dataset = npz, data.dir = PATH"
)


def rgb_arrays(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """64 uint8 RGB images (N, 16, 16, 3), channels last as NumPy users hold them, and labels
    0, 1, 2, 0, ..."""
    images = np.random.default_rng(seed).integers(0, 256, (64, 16, 16, 3), dtype=np.uint8)
    return images, np.arange(64) % 3


@pytest.fixture(scope="module")
def memory_run(tmp_path_factory):
    images, labels = rgb_arrays()
    run = tmp_path_factory.mktemp("memory") / "run"
    dt.train(tiny_config(*TINY), run, data=(images, labels))
    return run


def test_a_run_on_arrays_records_memory_and_the_fingerprint(memory_run):
    images, labels = rgb_arrays()
    fingerprint = load_memory(images, labels).fingerprint()
    model = dt.load(memory_run)
    assert model.shape == (3, 16, 16)
    assert model.config.data.dataset == "memory"
    assert model.data["source"] == "memory"
    assert model.data["dataset"]["fingerprint"] == fingerprint
    assert model.dataset() == {
        "name": "memory",
        "source": "memory",
        "fingerprint": fingerprint,
        "shape": [3, 16, 16],
        "class_names": ["class 0", "class 1", "class 2"],  # numbers, not digits
    }
    recorded = json.loads((memory_run / "data.json").read_text())
    assert recorded["source"] == "memory" and recorded["dataset"]["fingerprint"] == fingerprint
    assert "\ndataset = memory\n" in (memory_run / "config.ini").read_text()
    ckpt = ckpt_io.load_checkpoint(memory_run / "checkpoints" / "latest.pt", map_location="cpu")
    assert ckpt["config"]["data"]["dataset"] == "memory"
    assert ckpt["data"]["dataset"]["fingerprint"] == fingerprint
    assert f"trained on in-memory arrays (fingerprint {fingerprint[:16]})" in repr(model)
    assert "in-memory arrays" in model._repr_markdown_()


def test_a_run_on_arrays_samples_a_label(memory_run):
    model = dt.load(memory_run)
    x = model.sample(4, label=2)
    assert x.shape == (4, 3, 16, 16)
    assert torch.equal(x, model.sample(4, label=2))  # sample i depends on seed and i only


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"label": 3}, "label=3 is outside 0..2 (model.num_classes = 3)"),
        ({"label": -1}, "label=-1 is outside 0..2 (model.num_classes = 3)"),
        (
            {"digit": 2},  # classes given by number are not digits: digit= is refused
            "digit=2 names a digit; data.dataset = memory's classes are class 0, class 1, "
            "class 2: use label=2",
        ),
        (
            {"label": 1, "digit": 2},
            "label=1 and digit=2 differ; digit is an alias of label: give one",
        ),
        ({"label": 1.5}, "label=1.5 is not an int"),
    ],
)
def test_a_label_the_model_cannot_draw_is_refused(memory_run, request_, message):
    with pytest.raises(UserError) as e:
        dt.load(memory_run).sample(2, **request_)
    assert str(e.value) == message


def test_the_cli_takes_label_and_names_it_in_refusals(memory_run, tmp_path, capsys):
    npz = tmp_path / "x.npz"
    argv = ["sample", str(memory_run), "-n", "3", "--out", str(tmp_path / "grid.png")]
    assert cli.main([*argv, "--npz", str(npz), "--label", "1", "--device", "cpu"]) == 0
    with np.load(npz) as data:
        assert data["images"].shape == (3, 3, 16, 16)
    assert cli.main([*argv, "--label", "5", "--device", "cpu"]) == 2
    assert "--label 5 is outside 0..2 (model.num_classes = 3)" in capsys.readouterr().err
    assert cli.main([*argv, "--digit", "1", "--device", "cpu"]) == 2
    assert capsys.readouterr().err.endswith("class 2: use --label 1\n")


def test_a_sample_npz_names_the_data_set_and_the_class(memory_run):
    model = dt.load(memory_run)
    files = sample_to_files(model, sample_files(memory_run), 3, label=1)
    with np.load(files.npz) as data:
        images, meta = data["images"], json.loads(str(data["meta"]))
    assert images.shape == (3, 3, 16, 16)
    assert meta["dataset"] == model.dataset()
    assert meta["dataset"]["name"] == "memory" and meta["dataset"]["shape"] == [3, 16, 16]
    assert meta["digit"] == 1 and meta["class_name"] == "class 1"


def test_whatever_would_load_the_arrays_again_is_refused(memory_run, tmp_path):
    with pytest.raises(UserError) as e:
        dt.train(tiny_config(*TINY), memory_run, resume=True)  # no data=
    assert str(e.value) == MEMORY_ONLY
    with pytest.raises(UserError) as e:
        dt.train(memory_run / "config.ini", memory_run, resume=True)
    assert str(e.value) == MEMORY_ONLY
    with pytest.raises(UserError) as e:
        dt.evaluate({"a": memory_run}, n_samples=10, out=tmp_path / "eval")
    assert str(e.value) == (  # names what evaluate can score: the same arrays, given again
        "evaluate: data.dataset = memory (arrays handed to dt.train(..., data=)) is held by no "
        "file that evaluate could load its test images from; pass the same arrays again, from "
        "Python: dt.evaluate(sets, data=(images, labels))"
    )


def test_a_resume_takes_the_same_arrays_only(memory_run, tmp_path):
    images, labels = rgb_arrays(seed=1)
    with pytest.raises(UserError) as e:
        dt.train(tiny_config(*TINY), memory_run, data=(images, labels), resume=True)
    assert str(e.value).startswith(
        f"resume=True: the arrays given are not the ones the run in {memory_run} trained on "
        "(fingerprint "
    )
    assert str(e.value).endswith("pass the same images and labels as data=")


def test_a_resumed_run_on_arrays_is_the_uninterrupted_run(memory_run, tmp_path):
    """Stopped after 3 of 4 steps, then resumed with the same values given as tensors
    (channels first, int32 labels): the weights are those of the uninterrupted run."""
    images, labels = rgb_arrays()
    run = tmp_path / "run"
    dt.train(tiny_config(*TINY, "training.max_steps=3"), run, data=(images, labels))
    resumed = dt.train(tiny_config(*TINY), run, data=as_tensors(images, labels), resume=True)
    whole = dt.load(memory_run)
    assert resumed.step == whole.step == 4
    ours, theirs = resumed.net.state_dict(), whole.net.state_dict()
    assert ours.keys() == theirs.keys()
    for name in ours:  # within float32 rounding
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-6, atol=1e-6)


def as_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The arrays as torch tensors, the images channels first (N, C, H, W), the labels int32."""
    images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    return images, torch.from_numpy(labels).to(torch.int32)


def test_labels_of_another_integer_type_are_the_same_data():
    images, labels = rgb_arrays()
    int64 = load_memory(images, labels)
    int32 = load_memory(images, labels.astype(np.int32))
    assert int32.fingerprint() == int64.fingerprint()
    assert int32.provenance.details["labels_array"] == "int32 (64,)"


def test_test_fraction_splits_arrays_and_is_recorded(tmp_path):
    config = tiny_config(*TINY, "training.max_steps=1")
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, test_fraction=0.25))
    dt.train(config, tmp_path / "run", data=rgb_arrays())
    recorded = json.loads((tmp_path / "run" / "data.json").read_text())
    assert (recorded["n_train"], recorded["n_test"]) == (48, 16)
    assert recorded["dataset"]["provenance"]["details"]["test_fraction"] == 0.25
    assert "\ntest_fraction = 0.25\n" in (tmp_path / "run" / "config.ini").read_text()


def test_test_fraction_with_an_image_dataset_is_refused():
    with pytest.raises(UserError) as e:
        handed_over(load_dataset("digits8"), test_fraction=0.3)
    assert str(e.value) == (
        "data.test_fraction=0.3 splits arrays handed over as data=; an ImageDataset has its own "
        "test split, which would ignore it: remove it"
    )


def test_float_images_other_data_and_a_cold_process_are_refused(tmp_path):
    images, labels = rgb_arrays()
    with pytest.raises(UserError) as e:
        dt.train(tiny_config(*TINY), tmp_path / "run", data=(images / 255.0, labels))
    assert str(e.value) == "images has dtype float64; images must be uint8 in 0..255"
    with pytest.raises(UserError) as e:
        dt.train(tiny_config(*TINY), tmp_path / "run", data="images.npz")
    assert str(e.value) == ("data is a str; give (images, labels), images alone or an ImageDataset")
    with pytest.raises(UserError) as e:
        gray = images[..., 0], labels
        dt.train(tiny_config("diffusion.kind=cold"), tmp_path / "run", data=gray)
    assert str(e.value) == (
        "diffusion.kind = cold starts every sample from its data set's test images, which "
        "arrays handed over as data= cannot give back: use diffusion.kind = gaussian"
    )
    assert not (tmp_path / "run").exists()


def test_a_config_naming_memory_loads_no_images():
    with pytest.raises(UserError) as e:
        load_data(DataConfig(dataset="memory"))
    assert str(e.value) == MEMORY_ONLY


def test_a_data_set_handed_over_is_recorded_as_memory_with_its_origin():
    digits = load_dataset("digits8")
    given = handed_over(digits)
    assert given.provenance.source == "memory"
    assert given.provenance.details["origin"] == "digits8"
    assert given.fingerprint() == digits.fingerprint()
    arrays = load_memory(*rgb_arrays())
    assert handed_over(arrays) is arrays


def test_the_docstrings_float_recipe_and_class_names_call_work():
    recipe = "np.clip(np.round(x * 255), 0, 255).astype(np.uint8)"
    assert recipe in " ".join(dt.train.__doc__.split())
    x = np.array([0.0, 0.5, 1.0]).reshape(3, 1, 1, 1) * np.ones((3, 4, 4, 1))  # floats in [0, 1]
    images = np.clip(np.round(x * 255), 0, 255).astype(np.uint8)  # the recipe, as written
    assert images[:, 0, 0, 0].tolist() == [0, 128, 255]
    from diffusiontools.data import load_dataset as exported

    data = exported("memory", images=images, labels=np.array([0, 1, 0]), class_names=("a", "b"))
    assert data.spec.class_names == ("a", "b") and data.spec.shape == (1, 4, 4)


def test_digit_is_refused_on_classes_that_are_not_digits(tmp_path):
    """digit= names a digit: on named classes it is refused pointing at label=, which draws."""
    images, labels = rgb_arrays()
    pets = load_dataset("memory", images=images, labels=labels, class_names=["cat", "dog", "fish"])
    model = dt.train(tiny_config(*TINY), tmp_path / "run", data=pets)
    with pytest.raises(UserError) as e:
        model.sample(4, digit=1)
    assert str(e.value) == (
        "digit=1 names a digit; data.dataset = memory's classes are cat, dog, fish: use label=1"
    )
    assert model.sample(4, label=1).shape == (4, 3, 16, 16)


def test_an_evaluation_result_is_shown_in_one_short_line(tmp_path):
    entry = {"value": 1.0, "ci": None}
    runs = {label: {"metrics": {"kid": entry, "recall": entry}} for label in ("a", "b")}
    result = dt.EvaluationResult({"runs": runs, "settings": {}}, tmp_path / "eval")
    assert (
        repr(result)
        == f"EvaluationResult(sets ['a', 'b'], 2 metrics each, out {tmp_path / 'eval'})"
    )
    runs["b"]["metrics"]["read_as_asked"] = entry  # a conditional set has one more
    assert repr(result).startswith("EvaluationResult(sets ['a', 'b'], 2-3 metrics each, out ")
