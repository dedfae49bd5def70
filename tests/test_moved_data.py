"""A run whose data moved since training: ``evaluate``, ``reconstruct`` and ``sample`` read them
where ``--data-dir`` (``data_dir=``) says they lie now, with the run's own [data] settings, and
accept them only where they are the run's data; a ``--data-dir`` that cannot take effect is
refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_every_source import image_folder
from tiny_runs import one_thread, single_thread, tiny_config  # noqa: F401  (autouse: one thread)

import diffusiontools as dt
from diffusiontools import cli
from diffusiontools.data.sources import load_dataset
from diffusiontools.errors import UserError
from diffusiontools.evaluation.classifier_store import train_for_dataset
from diffusiontools.evaluation.reconstruction import reconstruction_study
from diffusiontools.outputs.samples_io import save_samples
from diffusiontools.training.trainer import train

# Evaluation at its smallest: 10 samples against 10 test images.
SMALL = ["--n-samples", "10", "--tsne-reference", "10", "--test-reference", "10"]
SMALL += ["--n-boot", "5", "--n-boot-set", "2"]


@pytest.fixture(scope="module")
def moved(tmp_path_factory) -> tuple[Path, Path]:
    """A cold run trained on a folder of images, the folder then moved: (run, its new place)."""
    root = tmp_path_factory.mktemp("moved")
    data = image_folder(root / "shapes")
    config = tiny_config(
        "diffusion.kind=cold",
        "data.dataset=folder",
        *data,
        "training.max_steps=2",
        "training.batch_size=8",
    )
    with one_thread():
        run = train(config, root / "run")
        train_for_dataset(config.data, epochs=1)
    shutil.move(root / "shapes", root / "away")
    return run, root / "away"


def error_of(argv: list[str], capsys) -> str:
    assert cli.main(argv) == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_evaluate_reads_a_moved_run_data_from_data_dir(moved, tmp_path, capsys):
    run, away = moved
    assert error_of(["evaluate", str(run), "--out", str(tmp_path / "e"), *SMALL], capsys) == (
        f"error: data.dir={away.parent / 'shapes'} is not a folder; point it at a folder of "
        "images (runs are scored against their own data: where the runs' data lie elsewhere "
        "now, give --data-dir THEIR_PATH)"
    )
    argv = ["evaluate", str(run), "--data-dir", str(away), "--out", str(tmp_path / "e"), *SMALL]
    assert cli.main(argv) == 0
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["settings"]["data"]["settings"]["dir"] == str(away)
    small = {"n_samples": 10, "tsne_reference": 10, "test_reference": 10, "n_boot": 5}
    dt.evaluate({"run": run}, out=tmp_path / "folder", n_boot_set=2, data_dir=away, **small)
    with pytest.raises(UserError) as e:
        dt.evaluate({"run": dt.load(run)}, out=tmp_path / "x", data_dir=away, **small)
    assert str(e.value) == (
        f"data_dir={away} applies to run folders in sets, and none is given (a TrainedModel "
        "takes it from load(..., data_dir=))"
    )
    result = dt.evaluate(
        {"run": dt.load(run, data_dir=away)},
        out=tmp_path / "api",
        n_samples=10,
        tsne_reference=10,
        test_reference=10,
        n_boot=5,
        n_boot_set=2,
    )
    assert result.value("run", "class_entropy") >= 0.0


def test_data_dir_with_other_images_is_refused_in_one_sentence(moved, tmp_path, capsys):
    run, away = moved
    other = tmp_path / "other"
    shutil.copytree(away, other)
    (other / "dogs" / "0.png").unlink()
    Image.new("L", (12, 10), 255).save(other / "dogs" / "0.png")  # one image of 24 differs
    message = error_of(
        ["evaluate", str(run), "--data-dir", str(other), "--out", str(tmp_path / "e"), *SMALL],
        capsys,
    )
    assert message.startswith(
        f"error: evaluate: the data found now is not the data the run in {run} trained on ("
    )
    assert message.endswith("; give --data-dir THEIR_PATH, where the run's data lie now")
    message = error_of(["reconstruct", str(run), "-n", "4", "--data-dir", str(other)], capsys)
    assert message.startswith("error: reconstruct: the data found now is not the data the run")
    assert message.endswith("; give --data-dir THEIR_PATH, where the run's data lie now")


def test_set_beside_runs_names_only_the_keys_given(moved, tmp_path, capsys):
    run, away = moved
    argv = ["evaluate", str(run), "--data-dir", str(away), "--set", "data.dataset=mnist"]
    assert error_of([*argv, "--out", str(tmp_path / "e"), *SMALL], capsys) == (
        f"error: the given [data] settings data.dataset=mnist differ from those {run} was "
        "trained with (dataset = folder); runs are scored against their own data, so drop the "
        "given settings or make them the runs'"
    )
    # A key given equal to the run's is its own setting: accepted.
    argv = ["evaluate", str(run), "--data-dir", str(away), "--set", "data.dataset=folder"]
    assert cli.main([*argv, "--out", str(tmp_path / "e"), *SMALL]) == 0


def test_reconstruct_reads_a_moved_run_data_from_data_dir(moved, tmp_path, capsys):
    run, away = moved
    assert error_of(["reconstruct", str(run), "-n", "4"], capsys) == (
        f"error: data.dir={away.parent / 'shapes'} is not a folder; point it at a folder of "
        "images (the study degrades the run's test images: where the run's data lie elsewhere "
        "now, give --data-dir THEIR_PATH)"
    )
    out = tmp_path / "study"
    argv = ["reconstruct", str(run), "-n", "4", "--data-dir", str(away), "--out", str(out)]
    assert cli.main(argv) == 0
    assert (out / "reconstruction.json").is_file()
    result = reconstruction_study(run, n=4, out_dir=tmp_path / "api", data_dir=away)
    assert result["n"] == 4
    argv = ["evaluate", "--reconstruction", str(run), "--n-samples", "4", "--data-dir", str(away)]
    assert cli.main([*argv, "--out", str(tmp_path / "both")]) == 0


def test_sample_data_dir_of_a_cold_run_is_checked(moved, tmp_path, capsys):
    run, away = moved
    argv = ["sample", str(run), "-n", "2", "--out", str(tmp_path / "g.png")]
    assert cli.main([*argv, "--data-dir", str(away)]) == 0


def test_sample_refuses_data_dir_where_sampling_reads_no_data(tmp_path, capsys):
    with one_thread():
        run = train(tiny_config("training.max_steps=2", "data.subset=64"), tmp_path / "run")
    argv = ["sample", str(run), "-n", "2", "--data-dir", str(tmp_path / "nonexistent")]
    assert error_of(argv, capsys) == (
        f"error: --data-dir applies to cold models, which start from their data's images; {run} "
        "is a gaussian model, whose sampling reads no data"
    )


def test_data_dir_of_an_embedded_data_set_is_refused(tmp_path, capsys):
    config = tiny_config("data.dataset=digits8", "training.max_steps=2", "training.batch_size=8")
    with one_thread():
        run = train(config, tmp_path / "run")
    assert error_of(["sample", str(run), "-n", "2", "--data-dir", str(tmp_path)], capsys) == (
        f"error: --data-dir {tmp_path} does not apply: {run} was trained on data.dataset = "
        "digits8, a data set made from what installed packages ship (digits8, coloured_mnist), "
        "which no file holds"
    )


def test_an_npz_data_dir_naming_a_folder_says_so(tmp_path):
    with pytest.raises(UserError) as e:
        load_dataset("npz", path=tmp_path)
    assert str(e.value) == (
        f"{tmp_path} is a folder, not an .npz file; data.dir must name an .npz file"
    )


def test_an_npz_of_another_data_set_is_refused_before_any_classifier(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no classifier of digits8
    path = tmp_path / "folder_samples.npz"
    images = torch.from_numpy(np.zeros((12, 8, 8), np.uint8))
    save_samples(path, images, dataset={"name": "folder"})
    argv = ["evaluate", "--npz", str(path), "--set", "data.dataset=digits8"]
    assert error_of([*argv, "--out", str(tmp_path / "e"), *SMALL], capsys) == (
        f"error: set '{path.stem}' ({path}) holds samples of data.dataset = folder, but would be "
        "scored against data.dataset = digits8, from the given [data] settings (NPZ files "
        "only): score it against its own data with --set data.dataset=folder"
    )
