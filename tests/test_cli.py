"""The command line end to end: train a tiny run, then sample grids, trajectories and epochs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from PIL import Image
from tiny_runs import single_thread, write_ini  # noqa: F401 (single_thread: autouse fixture)

from diffusiontools import cli
from diffusiontools.training.run_folder import read_metrics


def assert_png(path) -> None:
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG" and image.width > 50 and image.height > 50


def test_train_then_sample_end_to_end(tmp_path, capsys):
    ini = write_ini(tmp_path)
    run = tmp_path / "run"
    smaller = [
        "data.subset=96",
        "training.epochs=2",
        "sampling.sample_every=1",
        "sampling.n_samples=4",
    ]
    argv = ["train", str(ini), "--out", str(run)]
    assert cli.main([*argv, *(x for o in smaller for x in ("--set", o))]) == 0
    assert f"run folder: {run}" in capsys.readouterr().out
    assert [r["epoch"] for r in read_metrics(run)] == [0, 1]
    for name in (
        "config.ini",
        "data.json",
        "learning_curve.png",
        "samples/epoch_0001.png",
        "checkpoints/epoch_0000.pt",
        "checkpoints/epoch_0001.pt",
        "checkpoints/latest.pt",
    ):
        assert (run / name).is_file(), name

    argv = ["sample", str(run), "-n", "4", "--trajectory", "--epochs", "0,1", "--device", "cpu"]
    assert cli.main(argv) == 0
    for name in ("sample_grid.png", "trajectory.png", "epochs.png"):
        assert_png(run / "samples" / name)
    with np.load(run / "samples" / "samples.npz") as npz:
        assert npz["images"].dtype == np.uint8 and npz["images"].shape == (4, 28, 28)


def test_python_dash_m_runs_the_cli():
    result = subprocess.run(
        [sys.executable, "-m", "diffusiontools", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0
    assert "train" in result.stdout and "sample" in result.stdout
