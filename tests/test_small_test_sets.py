"""Cold models on data sets with few test images: sampling, evaluation, figures and messages.

A cold model's ``test`` and ``test_consistent`` starts begin each sample from a test image; a data
set with fewer test images than samples asked for cycles through them, each sample with its own
random field, and says so in its record.
"""

from __future__ import annotations

import functools
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_shapes import blobs_npz
from tiny_runs import single_thread, tiny_config, train_tiny  # noqa: F401  (autouse: one thread)

import diffusiontools as dt
from diffusiontools import cli
from diffusiontools.data import load_data
from diffusiontools.diffusion.cold import (
    ColdDiffusion,
    cycled_test_indices,
    start_images_record,
)
from diffusiontools.diffusion.degradations import DEGRADATIONS, make_degradation
from diffusiontools.errors import UserError
from diffusiontools.outputs import degradation_figure as figure
from diffusiontools.outputs.samples_io import load_samples
from diffusiontools.sampling.generation import check_starts
from diffusiontools.sampling.plan import resolve_plan
from diffusiontools.training.run_config import load_config
from diffusiontools.training.sample_files import sample_files, sample_to_files

_scratch = Path(tempfile.mkdtemp(prefix="diffusiontools-small-test-"))


@functools.cache
def small_run_data() -> Path:
    """64 RGB 16 px discs in an NPZ file, of which 6 are test images."""
    data = _scratch / "blobs.npz"
    blobs_npz(data, n=64, size=16)
    return data


@functools.cache
def small_run() -> Path:
    """A one-epoch cold run (pixel swap: each field from its key) on :func:`small_run_data`."""
    data = small_run_data()
    return train_tiny(
        _scratch / "run",
        "diffusion.kind=cold",
        "data.dataset=npz",
        f"data.dir={data}",
        "data.subset=57",
        "training.epochs=1",
    )


def test_start_indices_cycle_only_past_the_end():
    assert cycled_test_indices(2, 3, 7) == slice(2, 5)
    assert cycled_test_indices(5, 4, 7).tolist() == [5, 6, 0, 1]
    assert start_images_record(7, 7) == "test images 0..6"
    assert start_images_record(9, 7) == (
        "test images 0..6, cycled: sample i starts from test image i % 7"
    )


@pytest.mark.parametrize("sampler", ["naive", "improved"])
def test_more_samples_than_test_images_cycle_them_and_say_so(tmp_path, sampler):
    model = dt.load(small_run())
    assert len(load_data(model.config.data).test_images) == 6
    where = sample_files(model.folder, tmp_path / "s.png")
    files = sample_to_files(model, where, 9, sampler=sampler)
    images, meta = load_samples(files.npz)
    assert meta["start_images"] == (
        "test images 0..5, cycled: sample i starts from test image i % 6"
    )
    assert images.shape == (9, 3, 16, 16)
    assert not (images[6:] == images[:3]).all(axis=(1, 2, 3)).any()  # own fields: new starts
    x = model.sample(9, sampler=sampler)
    assert torch.equal(x[:6], model.sample(6, sampler=sampler))  # the first 6 as before
    times, states = model.trajectory(8, sampler=sampler)  # as pages draws it: 8 rows
    assert times[0] == model.process.T and torch.equal(states[-1], x[:8])


def test_as_many_samples_as_test_images_record_them_uncycled(tmp_path):
    model = dt.load(small_run())
    files = sample_to_files(model, sample_files(model.folder, tmp_path / "s.png"), 6)
    assert load_samples(files.npz)[1]["start_images"] == "test images 0..5"


# --- the degradation figure ----------------------------------------------------------------------


def write_folder(root: Path, per_class: int, classes=("cats", "dogs")) -> Path:
    """``per_class`` 8x8 gray PNGs in a subfolder per class (the folder's labels)."""
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def figure_rows(monkeypatch, config, path: Path) -> list[str]:
    """The row labels ``degradation_figure`` draws for ``config``."""
    shown = {}

    def keep_labels(rows, labels, *args, **kwargs):
        shown["labels"] = labels
        shown["rows"] = len(rows)

    monkeypatch.setattr(figure, "save_image_rows", keep_labels)
    figure.degradation_figure(config, path)
    assert shown["rows"] == len(shown["labels"])
    return shown["labels"]


def test_the_figure_shows_the_test_images_a_small_folder_has(tmp_path, monkeypatch):
    data = write_folder(tmp_path / "pets", per_class=10)  # 20 images: 2 test images
    config = load_config(
        None, ["diffusion.kind=cold", "data.dataset=folder", f"data.dir={data}", "diffusion.T=10"]
    )
    assert len(load_data(config.data).test_images) == 2
    assert figure.degradation_figure(config, tmp_path / "drawn.png").is_file()
    labels = figure_rows(monkeypatch, config, tmp_path / "fig.png")
    assert len(labels) == 2 and all(label.startswith("test #") for label in labels)
    assert {label.split("\n")[1] for label in labels} <= {"class cats", "class dogs"}


def test_the_figure_names_unlabelled_rows_image(tmp_path, monkeypatch):
    data = tmp_path / "plain.npz"
    pixels = np.random.default_rng(0).integers(0, 256, (30, 8, 8), dtype=np.uint8)
    np.savez(data, images=pixels)  # no labels; 3 test images
    config = load_config(
        None, ["diffusion.kind=cold", "data.dataset=npz", f"data.dir={data}", "diffusion.T=10"]
    )
    assert figure_rows(monkeypatch, config, tmp_path / "fig.png") == [
        "test image #0",
        "test image #1",
        "test image #2",
    ]


def test_the_figure_keeps_mnists_four_digits(tmp_path, monkeypatch):
    config = load_config(None, ["diffusion.kind=cold", "diffusion.T=10"])
    labels = figure_rows(monkeypatch, config, tmp_path / "fig.png")  # the tests' embedded MNIST
    assert [label.split("\n")[0] for label in labels] == [
        "test #2",
        "test #1",
        "test #18",
        "test #4",
    ]
    assert all(re.fullmatch(r"class [0-9]", label.split("\n")[1]) for label in labels)


# --- the reconstruction study's n ----------------------------------------------------------------


def test_reconstruct_with_the_default_n_names_the_test_set_size(capsys):
    run = small_run()
    capsys.readouterr()  # the training's progress
    assert cli.main(["reconstruct", str(run)]) == 2  # -n not given: 200
    assert capsys.readouterr().err == (
        "error: the reconstruction study asks for 200 test images but the data set has 6: "
        "give -n 6 or fewer\n"
    )


def test_evaluate_reconstruction_names_its_own_flag(capsys, tmp_path):
    run = small_run()
    capsys.readouterr()  # the training's progress
    argv = ["evaluate", str(run), "--reconstruction", "--out", str(tmp_path / "ev")]
    assert cli.main(argv) == 2  # --n-samples not given: 200
    assert capsys.readouterr().err == (
        "error: the reconstruction study asks for 200 test images but the data set has 6: "
        "give --n-samples 6 or fewer\n"
    )


# --- a cold run whose data moved -----------------------------------------------------------------


def test_sample_finds_a_cold_runs_moved_data_with_data_dir(tmp_path, capsys):
    first = tmp_path / "first" / "blobs.npz"
    first.parent.mkdir()
    blobs_npz(first, n=40, size=16)
    run = train_tiny(
        tmp_path / "run",
        "diffusion.kind=cold",
        "data.dataset=npz",
        f"data.dir={first}",
        "training.epochs=1",
    )
    export = dt.load(run).export(tmp_path / "export")
    moved = first.rename(tmp_path / "moved.npz")
    capsys.readouterr()  # the training's progress
    argv = ["sample", str(run), "-n", "3", "--out", str(tmp_path / "s.png")]
    argv += ["--npz", str(tmp_path / "s.npz")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err  # the data loader's sentence, then how to point at the data
    assert (
        err.startswith("error: ")
        and str(first) in err
        and err.endswith(
            " (a cold model starts from its data set's images: where the run's data lie elsewhere "
            "now, give --data-dir THEIR_PATH)\n"
        )
    )
    assert cli.main([*argv, "--data-dir", str(moved)]) == 0
    assert load_samples(tmp_path / "s.npz")[0].shape == (3, 3, 16, 16)
    other = tmp_path / "other.npz"
    blobs_npz(other, n=48, size=16)
    assert cli.main([*argv, "--overwrite", "--data-dir", str(other)]) == 2
    assert "is not the data the run in" in capsys.readouterr().err
    exported = ["sample", str(export), "-n", "2", "--out", str(tmp_path / "e.png")]
    assert cli.main([*exported, "--data-dir", str(moved)]) == 0
    assert dt.load(run, data_dir=moved).sample(2).shape == (2, 3, 16, 16)  # the API's data_dir


def test_mnists_embedded_test_set_gives_1001_samples(tmp_path):
    run = train_tiny(tmp_path / "run", "diffusion.kind=cold", "training.epochs=1")
    model = dt.load(run)
    assert len(load_data(model.config.data).test_images) == 1000  # the tests' embedded MNIST
    where = sample_files(run, tmp_path / "s.png")
    files = sample_to_files(model, where, 1001, steps=1)
    images, meta = load_samples(files.npz)
    assert images.shape == (1001, 28, 28)
    assert meta["start_images"] == (
        "test images 0..999, cycled: sample i starts from test image i % 1000"
    )


def test_the_quality_probe_of_a_cold_run_draws_more_samples_than_test_images():
    from diffusiontools.evaluation.quality_probe import COLUMNS, QualityProbe
    from diffusiontools.models import make_network

    probe = ("training.eval_every=1", "training.eval_samples=1001")  # 1,000 test images
    config = tiny_config("diffusion.kind=cold", "diffusion.T=5", *probe)
    net = make_network(config.model, seed=0, shape=(1, 28, 28))
    row = QualityProbe(config)(net, torch.device("cpu"))
    assert set(row) == set(COLUMNS) and all(np.isfinite(v) for v in row.values())


# --- where cycled starts would repeat: refused ---------------------------------------------------


@pytest.mark.parametrize("name", sorted(DEGRADATIONS))
def test_random_field_says_whether_the_key_changes_the_image(name):
    degradation = make_degradation(name)
    x = torch.rand(1, 1, 16, 16) - 0.5
    level = torch.tensor([sum(degradation.default_levels) / 2], dtype=torch.float32)  # midway
    a, b = (degradation(x, level, torch.tensor([key])) for key in (1, 2))
    assert degradation.random_field == (not torch.equal(a, b))


def cold_on_small_data(*overrides: str):
    """A cold config on the small run's data (6 test images), and its process."""
    data = small_run_data()
    config = load_config(
        None, ["diffusion.kind=cold", "data.dataset=npz", f"data.dir={data}", *overrides]
    )
    return config, ColdDiffusion.from_config(config, (3, 16, 16))


REPEATS = [
    (
        ("diffusion.degradation=blur",),
        "7 samples would start from the 6 test images in turn and diffusion.degradation = blur "
        "draws no random field, so sample 6 would repeat sample 0: ask for at most 6 (sample -n, "
        "evaluate --n-samples, training.eval_samples) or start "
        "from sampling.start=gmm, which takes no test image",
    ),
    (
        ("diffusion.t_per=batch",),
        "7 samples would start from the 6 test images in turn and diffusion.t_per = batch gives "
        "each batch of 500 one random field, so sample 6 would repeat sample 0: ask for at most "
        "6 (sample -n, evaluate --n-samples, training.eval_samples) or start "
        "from sampling.start=gmm, which takes no test image",
    ),
]


@pytest.mark.parametrize("overrides, message", REPEATS)
def test_starts_that_would_repeat_are_refused_before_drawing(overrides, message):
    config, process = cold_on_small_data(*overrides)
    plan = resolve_plan(config)
    check_starts(process, config, plan, 6)  # one start per test image: nothing repeats
    with pytest.raises(UserError) as e:
        check_starts(process, config, plan, 7)
    assert str(e.value) == message
    check_starts(process, config, resolve_plan(config, start="gmm"), 7)  # no test images


def test_one_field_per_batch_repeats_nothing_in_batches_no_larger_than_the_test_set():
    config, process = cold_on_small_data("diffusion.t_per=batch")
    check_starts(process, config, resolve_plan(config), 13, batch_size=6)


def test_sample_refuses_repeating_starts_before_writing(tmp_path, capsys):
    run = train_tiny(
        tmp_path / "run",
        "diffusion.kind=cold",
        "diffusion.degradation=blur",
        "data.dataset=npz",
        f"data.dir={small_run_data()}",
        "training.epochs=1",
    )
    capsys.readouterr()  # the training's progress
    out = tmp_path / "out"
    assert cli.main(["sample", str(run), "-n", "7", "--out", str(out / "s.png")]) == 2
    assert capsys.readouterr().err == (
        "error: 7 samples would start from the 6 test images in turn and diffusion.degradation "
        "= blur draws no random field, so sample 6 would repeat sample 0: ask for at most 6 "
        "(sample -n, evaluate --n-samples, training.eval_samples) or start "
        "from sampling.start=gmm, which takes no test image\n"
    )
    argv = ["sample", str(run), "-n", "7", "--start", "test", "--out", str(out / "s.png")]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.endswith(
        "or start from --start gmm, which takes no test image\n"
    )
    assert not out.exists()


def test_a_probe_whose_starts_would_repeat_is_refused_before_training():
    from diffusiontools.evaluation.quality_probe import QualityProbe

    probe = ("training.eval_every=1", "training.eval_samples=1001")  # 1,000 test images
    config = tiny_config("diffusion.kind=cold", "diffusion.degradation=blur", *probe)
    with pytest.raises(UserError, match="^1001 samples would start from the 1000 test images"):
        QualityProbe(config)
