"""Evaluation takes any data set's shape: gray or RGB, any size, scored with that data set's own
classifier and class metrics sized by its classes; frame statistics and total variance on
hand-built small and RGB images; a set of another shape than the data's is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from test_shapes import DIGITS8, blobs_npz
from tiny_runs import single_thread, tiny_config, train_tiny  # noqa: F401  (autouse: one thread)

import diffusiontools as dt
from diffusiontools.cli import main
from diffusiontools.config import DataConfig
from diffusiontools.data import load_data
from diffusiontools.errors import UserError
from diffusiontools.evaluation import total_variance
from diffusiontools.evaluation.classifier_store import train_for_dataset
from diffusiontools.evaluation.comparison import evaluate_sets
from diffusiontools.evaluation.frame_metrics import frame_means, frame_statistics
from diffusiontools.evaluation.reconstruction import by_class, markdown_table
from diffusiontools.evaluation.settings import EvaluationSettings
from diffusiontools.outputs import tables
from diffusiontools.outputs.samples_io import load_samples, save_samples
from diffusiontools.training.run_folder import read_metrics

SMALL = {"tsne_reference": 60, "test_reference": 60, "n_boot": 20, "n_boot_set": 4}
SET_FIGURES = ("samples_{}.png", "tsne_{}.png", "class_histogram_{}.png", "memorisation_{}.png")


# --- frame statistics and total variance on hand-built images ---------------------------------


def test_frame_statistics_of_8x8_gray_images():
    """On 8x8 the 3-pixel frame leaves the inner 2x2: 64 - 4 = 60 frame pixels."""
    a = np.zeros((8, 8), np.uint8)
    a[0, :] = 255  # 8 of the 60 frame pixels: frame mean 8 * 255 / 60 = 34
    b = np.zeros((8, 8), np.uint8)
    b[3:5, 3:5] = 100  # black frame; the inner 4 pixels mid-grey
    c = np.full((8, 8), 3, np.uint8)  # frame mean 3: not above 5
    images = np.stack([a, b, c])  # (3, 8, 8)
    assert frame_means(images).tolist() == [34.0, 0.0, 3.0]
    stats = frame_statistics(images[:, None])  # (3, 1, 8, 8): the same images
    assert stats["frame_mean"] == pytest.approx((34 + 0 + 3) / 3)
    assert stats["frame_above_5"] == pytest.approx(1 / 3)  # a only
    # a: its 8 white pixels are not mid-grey (255 >= 230); b: 4 of 64; c: none
    assert stats["mid_grey_fraction"] == pytest.approx(4 / 64 / 3)


def test_frame_statistics_of_3x16x16_rgb_images_on_their_channel_mean():
    """On 16x16 the frame holds 256 - 10 * 10 = 156 pixels; RGB is read as the channel mean."""
    red_top = np.zeros((3, 16, 16), np.uint8)
    red_top[0, 0, :] = 255  # 16 frame pixels of grey level 255 / 3 = 85, which is mid-grey
    green = np.zeros((3, 16, 16), np.uint8)
    green[1] = 60  # grey level 20 everywhere: frame mean 20, not mid-grey
    blue = np.zeros((3, 16, 16), np.uint8)
    blue[2] = 12  # grey level 4: frame mean 4, not above 5
    images = np.stack([red_top, green, blue])  # (3, 3, 16, 16)
    assert frame_means(images) == pytest.approx([16 * 85 / 156, 20.0, 4.0])
    stats = frame_statistics(images)
    assert stats["frame_mean"] == pytest.approx((16 * 85 / 156 + 20 + 4) / 3)
    assert stats["frame_above_5"] == pytest.approx(2 / 3)  # 8.72 and 20
    assert stats["mid_grey_fraction"] == pytest.approx(16 / 256 / 3)


def test_total_variance_of_rgb_images_against_its_closed_form():
    """x_i = s_i * v: per value the variance is v^2 var(s), so the total is var(s) * sum(v^2).
    s = (-0.3, -0.1, 0.1, 0.3): mean 0, var (ddof=1) (0.09 + 0.01 + 0.01 + 0.09) / 3 = 0.2 / 3;
    v: 1 in the red channel of every pixel, 0.5 in the green one of the first row, so
    sum(v^2) = 256 * 1 + 16 * 0.25 = 260."""
    v = np.zeros((3, 16, 16))
    v[0] = 1.0
    v[1, 0, :] = 0.5
    x = np.array([-0.3, -0.1, 0.1, 0.3])[:, None, None, None] * v  # (4, 3, 16, 16)
    assert total_variance(x) == pytest.approx(0.2 / 3 * 260)


def test_reconstruction_tables_take_the_data_sets_classes():
    values, labels = torch.tensor([1.0, 2.0, 4.0, 8.0]), torch.tensor([0, 2, 0, 2])
    rmse = by_class(values, labels, ("cat", "dog", "fish"))
    assert rmse == {"cat": 2.5, "dog": None, "fish": 5.0, "All": 3.75}
    assert by_class(values, None, ()) == {"All": 3.75}  # unlabelled: no classes
    result = {
        "samplers": [],
        "counts": {"cat": 2, "dog": 0, "fish": 2, "All": 4},
        "table": {"direct": {"rmse": rmse, "mse": rmse}},
    }
    table = markdown_table(result).splitlines()
    assert table[0] == "| class | n | direct RMSE | direct MSE |"
    assert table[2:] == [
        "| cat | 2 | 2.50000 | 2.50000 |",
        "| dog | 0 | – | – |",
        "| fish | 2 | 5.00000 | 5.00000 |",
        "| All | 4 | 3.75000 | 3.75000 |",
    ]


# --- end to end --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits8_cache(tmp_path_factory):
    """A user cache holding digits8's classifier, trained once for this module."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(cache))
        torch.set_num_threads(1)
        train_for_dataset(DataConfig(dataset="digits8"), epochs=1)
    return cache


@pytest.fixture(scope="module")
def digits8_run(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("digits8") / "run", *DIGITS8)


def test_digits8_is_scored_with_its_classifier_and_10_classes(
    digits8_cache, digits8_run, tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(digits8_cache))
    model = dt.load(digits8_run)
    test = load_data(DataConfig(dataset="digits8")).test_images
    real = test[-20:, 0].numpy()  # (20, 8, 8): gray given without its channel
    out = tmp_path / "eval"
    result = dt.evaluate({"tiny": model, "real": real}, n_samples=20, out=out, **SMALL)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["classifier"]["dataset"] == "digits8"
    assert metrics["settings"]["data"]["spec"]["class_names"] == list("0123456789")
    for label in ("tiny", "real"):
        run = metrics["runs"][label]
        assert len(run["class_histogram"]) == 10 and sum(run["class_histogram"]) == 20
        entropy = run["metrics"]["class_entropy"]["value"]
        assert 0.0 <= entropy <= np.log(10)
        for name in SET_FIGURES:
            assert (out / name.format(label)).is_file()
    assert (out / "tsne_test_labels.png").is_file()
    with np.load(out / "samples_real.npz") as saved:  # gray saved as ever: (N, H, W)
        assert np.array_equal(saved["images"], real)
    # The samples drawn name their data set, as the sample command's files do.
    _, meta = load_samples(out / "samples_tiny.npz")
    assert meta["dataset"]["name"] == "digits8" and meta["dataset"]["shape"] == [1, 8, 8]
    assert meta["dataset"]["class_names"] == list("0123456789")
    # A real digit's frame: digits8's images fill their 8x8 box, so frames are far from black.
    assert result.value("real", "frame_mean") == pytest.approx(frame_means(real).mean())


def test_npz_files_alone_are_scored_against_the_data_set_named(
    digits8_cache, tmp_path, monkeypatch, capsys
):
    """data= (a name or a dict of [data] keys) and --set data.KEY=VALUE: digits8, not MNIST."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(digits8_cache))
    test = load_data(DataConfig(dataset="digits8")).test_images
    npz = tmp_path / "real.npz"
    save_samples(npz, test[-20:])  # (20, 1, 8, 8), written as (20, 8, 8)
    small = ["--tsne-reference", "60", "--test-reference", "60", "--n-boot", "20"]
    outs = [tmp_path / "by_name", tmp_path / "by_keys", tmp_path / "cli"]
    dt.evaluate({"real": npz}, out=outs[0], data="digits8", **SMALL)
    dt.evaluate({"real": npz}, out=outs[1], data={"dataset": "digits8", "subset": 256}, **SMALL)
    args = ["evaluate", "--npz", str(npz), "--set", "data.dataset=digits8", *small]
    assert main([*args, "--n-boot-set", "4", "--out", str(outs[2])]) == 0, capsys.readouterr()
    for out, subset in zip(outs, (None, 256, None), strict=True):
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["settings"]["classifier"]["dataset"] == "digits8"
        assert metrics["settings"]["data"]["spec"]["height"] == 8
        assert metrics["settings"]["data"]["settings"]["subset"] == subset
        assert len(metrics["runs"]["real"]["class_histogram"]) == 10


def test_data_beside_runs_must_be_theirs(digits8_cache, digits8_run, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(digits8_cache))
    model = dt.load(digits8_run)
    with pytest.raises(UserError) as e:
        dt.evaluate({"tiny": model}, out=tmp_path / "eval", data="mnist")
    assert str(e.value) == (
        "the given [data] settings data.dataset=mnist, data.subset=None differ from those "
        f"{model.folder} was trained with (dataset = digits8, subset = 256); runs are scored "
        "against their own data, so drop the given settings or make them the runs'"
    )
    assert not (tmp_path / "eval").exists()
    with pytest.raises(UserError, match="data=8 is not a data setting; give a data set's name"):
        dt.evaluate({"tiny": model}, out=tmp_path / "eval", data=8)
    theirs = {"dataset": "digits8", "subset": 256}  # the run's own: accepted
    result = dt.evaluate({"tiny": model}, n_samples=10, out=tmp_path / "eval", data=theirs, **SMALL)
    assert result.metrics["settings"]["data"]["settings"]["subset"] == 256


def test_a_set_of_another_shape_is_refused_in_one_sentence(
    digits8_cache, digits8_run, tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(digits8_cache))
    mnist_like = np.zeros((20, 28, 28), np.uint8)
    with pytest.raises(UserError) as e:
        dt.evaluate({"tiny": digits8_run, "mnist": mnist_like}, out=tmp_path / "eval")
    assert str(e.value) == (
        "set 'mnist' holds 1x28x28 images, but data.dataset = digits8 gives 1x8x8 images: "
        "score a set against the data its images are of"
    )
    assert not (tmp_path / "eval").exists()


def test_the_quality_probe_of_a_digits8_run_scores_8x8_samples(
    digits8_cache, tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(digits8_cache))
    config = tiny_config(*DIGITS8, "training.eval_every=1", "training.eval_samples=10")
    dt.train(config, tmp_path / "run")
    (row,) = read_metrics(tmp_path / "run")  # epoch 0, the last
    assert 0.0 <= row["class_entropy"] <= np.log(10)
    assert 0.0 <= row["recognisable_fraction"] <= 1.0
    assert row["frechet_distance"] >= 0.0 and 0.0 <= row["frame_mean"] <= 255.0


def test_an_rgb_16x16_labelled_set_is_evaluated_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    blobs_npz(tmp_path / "blobs.npz", n=200, size=16)
    with np.load(tmp_path / "blobs.npz") as blobs:  # noise: no test image copies a training one
        noise = np.random.default_rng(1).integers(0, 40, blobs["images"].shape)
        noisy = np.clip(blobs["images"] + noise, 0, 255).astype(np.uint8)
        np.savez(tmp_path / "blobs.npz", images=noisy, labels=blobs["labels"])
    data = DataConfig(dataset="npz", dir=str(tmp_path / "blobs.npz"))
    train_for_dataset(data, epochs=1)
    dataset = load_data(data)
    assert dataset.spec.shape == (3, 16, 16) and dataset.spec.num_classes == 3
    images = dataset.train_images[:30].numpy()  # (30, 3, 16, 16): training images themselves
    settings = EvaluationSettings(n_boot=20, n_boot_set=4, test_reference=20, tsne_reference=20)
    out = tmp_path / "eval"
    metrics = evaluate_sets([("blobs", images)], out, settings, npz_data=data)
    run = metrics["runs"]["blobs"]
    assert len(run["class_histogram"]) == 3 and sum(run["class_histogram"]) == 30
    assert metrics["settings"]["data"]["spec"]["class_names"] == ["class 0", "class 1", "class 2"]
    assert 0.0 <= run["metrics"]["class_entropy"]["value"] <= np.log(3)
    # Images of the training split lie at distance 0 from it; test images do not.
    assert run["metrics"]["memorisation_median_distance"]["value"] == 0.0
    assert run["metrics"]["memorisation_ratio"]["value"] == 0.0
    x = images.astype(np.float64) / 255 - 0.5
    assert run["metrics"]["total_variance"]["value"] == pytest.approx(total_variance(x))
    for name in SET_FIGURES:
        assert (out / name.format("blobs")).is_file()
    with np.load(out / "samples_blobs.npz") as saved:
        assert np.array_equal(saved["images"], images)


# --- the data an NPZ records, and data too small or changed ------------------------------------


def test_an_npz_of_another_data_set_is_refused_naming_both(digits8_cache, tmp_path, monkeypatch):
    """An NPZ records its data set (``dataset``): scored against other data, it is refused in
    one sentence naming the file, both data sets and how to choose; a file without the record
    (an older one, a user's own) is scored as ever (test_npz_files_alone_...)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(digits8_cache))
    digits8 = load_data(DataConfig(dataset="digits8"))
    npz = tmp_path / "digits8.npz"
    recorded = {"name": "digits8", "fingerprint": digits8.fingerprint(), "shape": [1, 8, 8]}
    save_samples(npz, digits8.test_images[-20:], dataset=recorded)
    with pytest.raises(UserError) as e:
        evaluate_sets([("x", npz)], tmp_path / "eval", EvaluationSettings(), npz_argument="npz")
    assert str(e.value) == (
        f"set 'x' ({npz}) holds samples of data.dataset = digits8, but would be scored against "
        "data.dataset = mnist, from the default [data] settings (NPZ files only): score it "
        "against its own data with --set data.dataset=digits8"
    )
    with pytest.raises(UserError, match=r"score it against its own data with data='digits8'$"):
        dt.evaluate({"x": npz}, out=tmp_path / "eval")
    # The same name with another fingerprint: other images of digits8.
    other = tmp_path / "other.npz"
    save_samples(other, digits8.test_images[-20:], dataset={**recorded, "fingerprint": "ab" * 32})
    with pytest.raises(UserError) as e:
        dt.evaluate({"x": other}, out=tmp_path / "eval", data="digits8")
    assert str(e.value) == (
        f"set 'x' ({other}) holds samples of data.dataset = digits8 (fingerprint abababababab), "
        "but would be scored against data.dataset = digits8 (fingerprint "
        f"{digits8.fingerprint()[:12]}, other images), from the given [data] settings (NPZ "
        "files only): score it against its data's own [data] settings with data={KEY: VALUE}"
    )
    assert not (tmp_path / "eval").exists()
    # Its own data: scored.
    result = dt.evaluate({"x": npz}, out=tmp_path / "eval", data="digits8", **SMALL)
    assert result.metrics["runs"]["x"]["n_samples"] == 20


def gray_folder(folder, per_class: int, size: int = 8) -> None:
    """``per_class`` seeded random gray PNGs (size x size) in each of the class folders a/, b/."""
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
            Image.fromarray(pixels, "L").save(folder / name / f"{i:03d}.png")


def test_a_data_set_of_too_few_test_images_is_named_as_such(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no classifier is asked for
    gray_folder(tmp_path / "few", per_class=10)  # 20 images: 2 test images at test_fraction 0.1
    images = np.zeros((20, 1, 8, 8), np.uint8)
    with pytest.raises(UserError) as e:
        data = {"dataset": "folder", "dir": str(tmp_path / "few")}
        dt.evaluate({"x": images}, out=tmp_path / "eval", data=data)
    assert str(e.value) == (
        "data.dataset = folder has 2 test images; evaluate needs at least 10: raise "
        "data.test_fraction or add images"
    )


def test_changed_run_data_is_named_before_a_classifier_is_asked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no classifier stored
    gray_folder(tmp_path / "data", per_class=60)
    keys = ("data.dataset=folder", f"data.dir={tmp_path / 'data'}", "data.image_size=8")
    run = train_tiny(tmp_path / "run", *keys, "training.epochs=1")
    Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(tmp_path / "data" / "a" / "new.png")
    with pytest.raises(UserError) as e:
        dt.evaluate({"run": run}, out=tmp_path / "eval")
    assert str(e.value).startswith(
        f"evaluate: the data found now is not the data the run in {run} trained on "
        "(n_train_split 87 -> 88; files sha256 "
    )
    assert str(e.value).endswith("give data_dir=THEIR_PATH, where the run's data lie now")


# --- the classifier's quality and the data's classes in metrics.md ------------------------------


def test_metrics_md_names_the_data_sets_classes_and_its_classifiers_accuracy():
    """ln K and the class names of the data scored, and the classifier's test accuracy with its
    test-set size; below 0.9 the note says the metrics resting on it are weak."""
    entry = {"value": 1.0, "ci": None}
    run = {"n_samples": 10, "metrics": {"class_entropy": entry}, "class_histogram": [4, 6, 0]}
    spec = {"class_names": ["cat", "dog", "fish"]}
    record = {"dataset": "pets", "test_accuracy": 0.5}
    settings = {"data": {"spec": spec}, "classifier": record, "classifier_test_accuracy": 0.5}
    results = {"runs": {"a": run}, "settings": {**settings, "classifier_n_test": 2}}
    table, note = tables.markdown_table(results).split("\n\n")
    assert "| class entropy (nats, max 1.099) | 1.000 (no CI) |" in table.splitlines()
    assert "| class histogram (cat, dog, fish) | 4 6 0 |" in table.splitlines()
    assert note == (
        "Classifier: pets's own, test accuracy 0.5000 on 2 test images; below 0.9, so the "
        "metrics that rest on it (Fréchet distance, KID, precision, recall, class entropy, "
        "confidence, recognisable fraction, read as the class asked for) are weak.\n"
    )
    digits = {**settings, "data": {"spec": {"class_names": list("01234")}}}
    good = {"runs": {"a": run}, "settings": {**digits, "classifier_test_accuracy": 0.95}}
    table, note = tables.markdown_table(good).split("\n\n")
    assert "| class histogram (digits 0-4) | 4 6 0 |" in table.splitlines()
    assert note == "Classifier: pets's own, test accuracy 0.9500.\n"


def test_a_weak_classifier_is_shown_and_warned_of(digits8_cache, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(digits8_cache))
    record = json.loads(
        next((digits8_cache / "diffusiontools" / "classifiers").glob("*.json")).read_text()
    )
    test = load_data(DataConfig(dataset="digits8")).test_images
    result = dt.evaluate({"real": test[-20:]}, out=tmp_path / "eval", data="digits8", **SMALL)
    settings = result.metrics["settings"]
    assert settings["classifier_test_accuracy"] == record["test_accuracy"]
    assert settings["classifier_n_test"] == record["n_test"] == len(test)
    note = f"test accuracy {record['test_accuracy']:.4f} on {len(test)} test images"
    assert note in (tmp_path / "eval" / "metrics.md").read_text()
    weak = [r.getMessage() for r in caplog.records if "below 0.9" in r.getMessage()]
    assert len(weak) == (record["test_accuracy"] < 0.9)  # one epoch: usually weak


def test_the_quality_probe_warns_of_a_weak_classifier_as_evaluate_does(
    digits8_cache, monkeypatch, caplog
):
    """The warning is classifier_for's, so the probe built before training gives it too."""
    from diffusiontools.evaluation.quality_probe import QualityProbe

    monkeypatch.setenv("XDG_CACHE_HOME", str(digits8_cache))
    record = json.loads(
        next((digits8_cache / "diffusiontools" / "classifiers").glob("*.json")).read_text()
    )
    QualityProbe(tiny_config(*DIGITS8, "training.eval_every=1", "training.eval_samples=10"))
    weak = [r.getMessage() for r in caplog.records if "below 0.9" in r.getMessage()]
    assert len(weak) == (record["test_accuracy"] < 0.9)
    if weak:
        assert "the quality probe's columns" in weak[0] and "data.dataset = digits8" in weak[0]
