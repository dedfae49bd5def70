"""Models shipped inside the package: loaded by name, offline, verified by checksum, and
sampled without writing into the package. A tiny export stands in for the report's models,
which ``reproduce --scale report`` trains (its shipped weights are checked the same way)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_runs import reference_run, single_thread  # noqa: F401 (single_thread: autouse)

import diffusiontools as dt
from diffusiontools import cli
from diffusiontools.data.download import file_sha256
from diffusiontools.errors import UserError
from diffusiontools.training import pretrained, run_folder


@pytest.fixture
def shipped(tmp_path, monkeypatch) -> Path:
    """The reference run exported as shipped model 'tiny'; the test runs in an empty folder."""
    root = tmp_path / "package" / "pretrained"
    folder = dt.load(reference_run(), device="cpu").export(root / "tiny")
    monkeypatch.setattr(run_folder, "pretrained_root", lambda: root)
    monkeypatch.setattr(pretrained, "SHA256", {"tiny": file_sha256(folder / "model.safetensors")})
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return folder


def test_a_shipped_model_loads_by_name_and_samples_as_its_export(shipped):
    model = dt.load("tiny", device="cpu")
    assert model.path == shipped / "model.safetensors" and model.epoch == 2 and model.step == 36
    same = dt.load(shipped, device="cpu")
    assert torch.equal(model.sample(4, seed=0), same.sample(4, seed=0))  # the same weights
    assert pretrained.pretrained_names() == ["tiny"]


def test_damaged_weights_are_refused_and_a_folder_of_the_name_wins(shipped, monkeypatch):
    monkeypatch.setitem(pretrained.SHA256, "tiny", "0" * 64)
    with pytest.raises(UserError) as e:
        dt.load("tiny", device="cpu")
    digest = file_sha256(shipped / "model.safetensors")
    assert str(e.value) == (
        f"the shipped model tiny's weights {shipped / 'model.safetensors'} have sha256 "
        f"{digest}, not the pinned {'0' * 64}: the install is damaged; reinstall diffusiontools"
    )
    Path("tiny").mkdir()  # the user's own run of that name, before its first checkpoint
    Path("tiny", "config.ini").write_text("[training]\n")
    with pytest.raises(UserError, match="holds no checkpoint yet"):  # theirs, not ours
        dt.load("tiny", device="cpu")


def test_sample_writes_beside_the_caller_never_into_the_package(shipped, capsys):
    before = sorted(p.name for p in shipped.iterdir())
    assert cli.main(["sample", "tiny", "-n", "4", "--device", "cpu"]) == 0
    assert (Path("tiny") / "samples" / "samples.npz").is_file()
    assert sorted(p.name for p in shipped.iterdir()) == before
    # ./tiny holds only those samples: the same command again still means the shipped model
    assert cli.main(["sample", "tiny", "-n", "4", "--device", "cpu"]) == 0
    assert cli.main(["sample", "nothing", "-n", "4"]) == 2
    assert capsys.readouterr().err.endswith(
        "error: run folder nothing does not exist, and no shipped model has that name "
        "(shipped: tiny)\n"
    )


def test_a_shipped_models_path_writes_beside_the_caller_as_its_name_does(shipped):
    """The package folder given as a path (the README names it) is never written into: its
    outputs go to ./NAME as for the name."""
    before = sorted(p.name for p in shipped.iterdir())
    assert cli.main(["sample", str(shipped), "-n", "4", "--device", "cpu"]) == 0
    assert (Path("tiny") / "samples" / "samples.npz").is_file()
    assert sorted(p.name for p in shipped.iterdir()) == before
    folder = run_folder.RunFolder(shipped)
    assert folder.is_shipped and folder.reconstruction == Path("tiny") / "reconstruction"
    assert not run_folder.RunFolder(Path("tiny")).is_shipped  # the caller's folder of its name


@pytest.mark.parametrize("argv", [["export", "tiny", "--format", "safetensors"], ["pages", "tiny"]])
def test_commands_that_need_a_run_folder_say_so_for_a_shipped_name(shipped, capsys, argv):
    assert cli.main([*argv, "--device", "cpu"] if argv[0] == "pages" else argv) == 2
    assert capsys.readouterr().err.endswith(
        "error: tiny is the name of a shipped model, an export that holds no checkpoints: this "
        "needs a run folder (sample, evaluate, reconstruct and diffusiontools.load take the "
        "name)\n"
    )


def test_epochs_of_a_shipped_model_are_refused_as_for_its_export(shipped, capsys):
    assert cli.main(["sample", "tiny", "--epochs", "1,2", "--device", "cpu"]) == 2
    assert capsys.readouterr().err == (
        f"error: --epochs applies to run folders; the export {shipped} holds the weights of one "
        "epoch\n"
    )
    assert not Path("tiny").exists()  # refused before anything is written


# The shipped models themselves (the tests above use a stand-in): each is the report's config
# trained to the epoch the report analysed, whole and verified.
EXPORT_FILES = {
    "model.safetensors",
    "diffusiontools.json",
    "config.ini",
    "data.json",
    "metrics.csv",
    "learning_curve.png",
}


@pytest.mark.parametrize("name", pretrained.pretrained_names())
def test_each_shipped_model_is_the_reports_config_at_its_analysed_epoch(name):
    from diffusiontools.reproduce.scales import REPORT_MODELS
    from diffusiontools.training.run_config import load_config, to_ini

    folder = pretrained.pretrained_folder(name)  # its sha256 checked against the pin
    assert {p.name for p in folder.iterdir()} == EXPORT_FILES
    model = dt.load(name, device="cpu")
    assert model.epoch == REPORT_MODELS[name] and model.config.data.dataset == "mnist"
    report = load_config(name)  # the packaged config: network, process and sampler unchanged
    assert (model.config.model, model.config.diffusion) == (report.model, report.diffusion)
    assert model.config.sampling == report.sampling
    # config.ini is the weights' config as this version writes it: no out-of-date notes
    # (model 1's said data.image_size applied to image folders only)
    assert (folder / "config.ini").read_text() == to_ini(model.config)


@pytest.mark.slow
def test_model1_samples_its_pinned_pixels():
    """dt.load("model1").sample(16, seed=0), as the README shows it. A relative change of 1e-6
    in every weight moves no pixel of these samples by more than one level (measured), so
    kernels of other CPUs stay within the tolerance of 3 levels."""
    from diffusiontools.data import to_uint8

    images = to_uint8(dt.load("model1", device="cpu").sample(16, seed=0)).int()  # (16, 28, 28)
    assert images.shape == (16, 28, 28)
    pinned = {(0, 10, 10): 212, (0, 11, 14): 255, (0, 12, 16): 148, (0, 16, 16): 104}
    pinned |= {(0, 13, 10): 1}
    for (i, row, col), value in pinned.items():
        assert abs(images[i, row, col].item() - value) <= 3, (i, row, col)
    assert images.float().mean().item() == pytest.approx(34.57, abs=0.05)


@pytest.mark.parametrize("run_dir", ["", 3])
def test_a_run_dir_that_names_no_folder_is_refused(run_dir):
    """ "" is no name: as a path it would be the working folder, whatever it holds."""
    with pytest.raises(UserError) as refused:
        dt.load(run_dir)
    assert str(refused.value) == (
        f"run_dir={run_dir!r} is not a folder: give a run or export folder's path, or a shipped "
        "model's name"
    )
