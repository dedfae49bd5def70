"""Run folders and exports written by earlier versions sample, evaluate, resume and export with
today's code (issue 22). The fixtures, and the commit and command that made each, are in
tests/fixtures/old_runs (README there). They trained on the suite's own data (conftest.py's IDX
folder, found through DIFFUSIONTOOLS_DATA), so a resume finds the data they were trained on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_runs import single_thread  # noqa: F401 (autouse: one thread, exact losses)

import diffusiontools as dt
from diffusiontools import cli
from diffusiontools.config import config_from_dict
from diffusiontools.errors import UserError
from diffusiontools.training import checkpoint as ckpt_io
from diffusiontools.training.run_config import as_recorded, check_config, load_config, to_ini
from diffusiontools.training.run_folder import read_metrics

FIXTURES = Path(__file__).parent / "fixtures" / "old_runs"

# Each run's kind, and sampling.start and eta as its record stores them (None: no such key
# then). The Gaussian runs of 22fc0ad..e08d76e store start = test (the default then), and
# 5f319a7_gaussian also eta = 0.5 for the ancestral sampler: keys that took no effect, read as
# taking none (auto, 0.0). The improved cold sampler's start = test, refused now, reads as auto.
RUNS = {
    "9d1e346_gaussian": {"kind": "gaussian", "stored_start": None, "stored_eta": 0.0},
    "5f319a7_gaussian": {"kind": "gaussian", "stored_start": "test", "stored_eta": 0.5},
    "5f319a7_cold_improved": {"kind": "cold", "stored_start": "test", "stored_eta": 0.0},
    "6727f4f_gaussian": {"kind": "gaussian", "stored_start": "auto", "stored_eta": 0.0},
}
# (train, validation) loss of epoch 1 after resuming epoch 0 of the fixture: the very numbers
# the fixture's own version gives training 2 epochs straight (9d1e346 and 5f319a7, measured).
EPOCH_1_LOSSES = {
    "gaussian": (0.7797433733940125, 0.6690289974212646),
    "cold": (0.12438538918892543, 0.10361818969249725),
}
EXPORTS = {  # export folder -> (kind, step it records: None before a70e847)
    "6727f4f_gaussian/exports/safetensors": ("gaussian", 3),
    "1154fb5_cold_export": ("cold", None),
}


def copy_fixture(name: str, tmp_path: Path) -> Path:
    """A writable copy: no verb may change the fixture itself."""
    return shutil.copytree(FIXTURES / name, tmp_path / Path(name).name)


def expected_sampler_meta(name: str) -> dict:
    """The NPZ's record of what was done for each fixture's run (its config's sampler)."""
    if RUNS[name]["kind"] == "cold":
        return {"sampler": "improved", "cold_start": "test_consistent", "steps": 20}
    return {"sampler": "ancestral", "cold_start": None, "eta": None, "steps": 20}


def check_recorded(config, name: str) -> None:
    """The values every fixture's config is read as today: gaussian.ini or cold.ini, with
    sampling.start and eta as a run of now would hold them."""
    kind = RUNS[name]["kind"]
    assert (config.diffusion.kind, config.diffusion.T) == (kind, 20)
    assert (config.model.network, config.model.n_hidden) == ("cnn", (8, 8))
    assert (config.data.source, config.data.subset, config.data.dir) == ("mnist", 256, None)
    assert (config.sampling.start, config.sampling.eta) == ("auto", 0.0)
    assert config.sampling.sampler == ("improved" if kind == "cold" else "default")


@pytest.mark.parametrize("name", RUNS)
def test_an_old_checkpoint_is_read_as_the_run_it_describes(name):
    ckpt = ckpt_io.load_checkpoint(FIXTURES / name / "checkpoints" / "latest.pt")
    stored = ckpt["config"]
    check_recorded(as_recorded(config_from_dict(stored)), name)
    # The record itself says what the old version wrote (the fixtures are not edited).
    assert stored["sampling"].get("start") == RUNS[name]["stored_start"]
    assert stored["sampling"]["eta"] == RUNS[name]["stored_eta"]
    assert (ckpt["epoch"], ckpt["batch"], ckpt["step"]) == (1, 0, 3)
    assert ("data" in ckpt) == (not name.startswith("9d1e346"))  # provenance from 760857a on


def test_keys_of_another_network_or_process_stored_at_any_value_are_read_as_unused():
    """Earlier versions stored n_hidden on a UNet and the Gaussian schedule keys on a cold run at
    any value (an INI of beta1 = 1e-3 switched to cold by --set): they took no effect, are read
    as taking none, pass the checks, and config.ini writes them as unused comments."""
    stored = ckpt_io.load_checkpoint(
        FIXTURES / "5f319a7_cold_improved" / "checkpoints" / "latest.pt"
    )["config"]
    stored["model"].update(network="unet", n_hidden=[4, 4])
    stored["diffusion"].update(schedule="cosine", beta1=1e-3, beta2=0.2, prediction="v")
    config = check_config(as_recorded(config_from_dict(stored)))
    d = config.diffusion
    expected = ("cold", "linear", 1e-4, 0.02, "eps")
    assert (d.kind, d.schedule, d.beta1, d.beta2, d.prediction) == expected
    assert config.model.n_hidden == (16, 32, 32, 16)
    text = to_ini(config)
    assert "\n# n_hidden = 16, 32, 32, 16  (unused: applies to the cnn (model.network" in text
    assert "\n# beta1 = 0.0001  (unused: applies to the linear schedule (diffusion.kind" in text
    assert "\n# prediction = eps  (unused: applies to Gaussian processes" in text


@pytest.mark.parametrize("name", RUNS)
def test_sample_draws_from_an_old_run(name, tmp_path, capsys):
    run = copy_fixture(name, tmp_path)
    npz = tmp_path / "x.npz"
    argv = ["sample", str(run), "--epoch", "0", "-n", "3", "--out", str(tmp_path / "grid.png")]
    assert cli.main([*argv, "--npz", str(npz), "--device", "cpu"]) == 0
    with np.load(npz) as data:
        images, meta = data["images"], json.loads(str(data["meta"]))
    assert images.shape == (3, 28, 28) and images.dtype == np.uint8
    assert {key: meta[key] for key in expected_sampler_meta(name)} == expected_sampler_meta(name)
    assert meta["epoch"] == 0
    assert meta["dataset"]["name"] == "mnist" and meta["dataset"]["shape"] == [1, 28, 28]
    err = capsys.readouterr().err
    assert ("sampling.start=test for the improved sampler" in err) == (RUNS[name]["kind"] == "cold")


def evaluate_small(folder: Path, out: Path) -> Path:
    """``evaluate FOLDER`` at tiny settings, labelled "old": its 10 samples are written."""
    argv = ["evaluate", str(folder), "--label", "old", "--n-samples", "10", "--tsne-reference",
            "50", "--test-reference", "50", "--n-boot", "5", "--n-boot-set", "5", "--out",
            str(out), "--device", "cpu"]  # fmt: skip
    assert cli.main(argv) == 0
    assert np.load(out / "samples_old.npz")["images"].shape == (10, 28, 28)
    return out


@pytest.mark.parametrize("name", RUNS)
def test_evaluate_scores_an_old_run(name, tmp_path):
    run = copy_fixture(name, tmp_path)
    out = evaluate_small(run, tmp_path / "evaluation")
    scored = json.loads((out / "metrics.json").read_text())["runs"]["old"]
    assert scored["source"]["epoch"] == 0


@pytest.mark.parametrize("name", RUNS)
def test_an_old_run_resumes_with_its_own_config_ini(name, tmp_path):
    """The run's config.ini of then writes every key, those that could not take effect too:
    they are the run's record, not a choice made now, so the resume is not refused. It goes on
    exactly as the old version's own straight run, and writes config.ini in today's form."""
    run = copy_fixture(name, tmp_path)
    argv = ["train", str(run / "config.ini"), "--out", str(run), "--resume"]
    assert cli.main([*argv, "--set", "training.epochs=2", "--set", "training.device=cpu"]) == 0
    rows = read_metrics(run)
    assert [(r["epoch"], r["step"]) for r in rows] == [(0, 3), (1, 6)]
    kind = RUNS[name]["kind"]
    assert (rows[1]["train_loss"], rows[1]["val_loss"]) == pytest.approx(
        EPOCH_1_LOSSES[kind], rel=1e-5
    )
    ckpt = ckpt_io.load_checkpoint(ckpt_io.latest_path(run))
    assert (ckpt["epoch"], ckpt["step"], ckpt["config"]["training"]["epochs"]) == (2, 6, 2)
    assert ckpt["config"]["sampling"]["start"] == "auto"  # the record, as read (was test)
    assert ckpt["config"]["sampling"]["eta"] == 0.0
    check_recorded(ckpt_io.stored_config(ckpt), name)
    lines = (run / "config.ini").read_text().splitlines()
    if kind == "gaussian":
        assert "# start = auto  (unused: applies to cold models only)" in lines
        assert "# t_range = notebook  (unused: applies to cold processes" in "\n".join(lines)
    else:
        assert "start = auto" in lines and "sampler = improved" in lines
        text = "\n".join(lines)
        assert "# loss_weighting = none  (unused: applies to Gaussian processes" in text
        assert "# prediction = eps  (unused: applies to Gaussian processes" in text
        assert "# beta2 = 0.02  (unused: applies to the linear schedule" in text
    assert "# eta = 0.0  (unused: applies to the ddim sampler only)" in lines
    load_config(run / "config.ini")  # today's form: loads as a new config, nothing refused


def test_a_resume_refuses_other_values_other_data_and_an_old_ini_for_a_new_run(tmp_path, capsys):
    """Only the values the run recorded pass: a key that cannot take effect written with
    another value is refused as before, the old config.ini starts no new run, and the data
    must be the data the run trained on."""
    run = copy_fixture("5f319a7_gaussian", tmp_path)
    ini = str(run / "config.ini")
    resume = ["train", ini, "--out", str(run), "--resume", "--set", "training.device=cpu"]
    assert cli.main([*resume, "--set", "sampling.eta=0.3"]) == 2
    assert capsys.readouterr().err == (
        "error: sampling.eta=0.3 applies to the ddim sampler only; the ancestral sampler would "
        "ignore it: remove it, or unset it with an empty override: --set sampling.eta=\n"
    )
    assert cli.main(["train", ini, "--out", str(tmp_path / "new")]) == 2
    assert capsys.readouterr().err == (  # the first key of the table it writes unused
        "error: model.base_channels=32 applies to the UNets (model.network = unet or "
        "unet2d_diffusers) only; the cnn would ignore it: remove it, "
        "or unset it with an empty override: --set model.base_channels=\n"
    )
    assert not (tmp_path / "new").exists()
    assert cli.main([*resume, "--set", "data.source=embedded"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --resume: the data found now is not the data the run in {run}")
    assert "source 'mnist' -> 'embedded'" in err
    assert read_metrics(run) == read_metrics(FIXTURES / "5f319a7_gaussian")  # nothing changed


def test_a_checkpoint_without_provenance_is_checked_against_its_data_json(tmp_path, capsys):
    """9d1e346's checkpoints hold no data record; its data.json does: a resume on other data is
    refused, and data.json still names what epoch 0 trained on."""
    from conftest import write_idx_folder

    from diffusiontools.data.embedded import embedded_mnist

    run = copy_fixture("9d1e346_gaussian", tmp_path)
    assert ckpt_io.load_checkpoint(ckpt_io.latest_path(run)).get("data") is None
    train_images, train_labels, test_images, test_labels, _ = embedded_mnist()
    other = write_idx_folder(
        tmp_path / "other", [255 - train_images, train_labels, test_images, test_labels]
    )
    resume = ["train", str(run / "config.ini"), "--out", str(run), "--resume"]
    assert cli.main([*resume, "--set", f"data.dir={other}", "--set", "training.epochs=2"]) == 2
    warning, error = capsys.readouterr().err.splitlines()  # the files are uncompressed
    assert warning.startswith("warning: train-images-idx3-ubyte, train-labels-idx1-ubyte, ")
    assert error.startswith(f"error: --resume: the data found now is not the data the run in {run}")
    assert "train-images-idx3-ubyte" in error
    assert (run / "data.json").read_text() == (FIXTURES / "9d1e346_gaussian/data.json").read_text()


def test_a_cold_run_samples_only_from_its_own_data(tmp_path, monkeypatch):
    """A cold model's start is drawn from its data set's images: other data is refused, as
    evaluate and resume refuse it, not drawn from without a word."""
    from conftest import write_idx_folder

    from diffusiontools.data import mnist
    from diffusiontools.data.embedded import embedded_mnist

    run = copy_fixture("5f319a7_cold_improved", tmp_path)
    assert dt.load(run, device="cpu").sample(2).shape == (2, 1, 28, 28)  # the run's own data
    train_images, train_labels, test_images, test_labels, _ = embedded_mnist()
    other = [train_images, train_labels, 255 - test_images, test_labels]
    monkeypatch.setenv(mnist.ENV_VAR, str(write_idx_folder(tmp_path / "other", other)))
    with pytest.raises(UserError) as e:
        dt.load(run, device="cpu").sample(2)
    assert str(e.value).startswith(f"sample: the data found now is not the data the run in {run}")
    assert "t10k-images-idx3-ubyte" in str(e.value)


def test_dt_train_resumes_an_old_run_from_its_own_config_ini(tmp_path):
    """The Python API reads the run's record as the CLI does (here a finished run resumed with
    its own settings: nothing to train, and nothing refused)."""
    run = copy_fixture("5f319a7_gaussian", tmp_path)
    model = dt.train(run / "config.ini", run, resume=True)
    assert (model.epoch, model.step) == (0, 3)
    check_recorded(model.config, "5f319a7_gaussian")
    assert len(read_metrics(run)) == 1


def test_load_config_reads_only_the_recorded_values_as_the_record():
    """load_config(recorded=) is what a resume uses: the keys the old config.ini writes with the
    run's values read as the checkpoint does; the same INI without the record is refused."""
    ini = FIXTURES / "6727f4f_gaussian" / "config.ini"
    with pytest.raises(UserError, match=r"^model.base_channels=32 applies to the UNets"):
        load_config(ini)
    ckpt = ckpt_io.load_checkpoint(FIXTURES / "6727f4f_gaussian" / "checkpoints" / "latest.pt")
    resumed = load_config(ini, recorded=ckpt["config"])
    stored = ckpt_io.stored_config(ckpt)
    assert resumed.to_dict() == {**stored.to_dict(), "name": "config"}
    with pytest.raises(UserError, match=r"^diffusion.t_range=full applies to cold processes"):
        load_config(ini, ["diffusion.t_range=full"], recorded=ckpt["config"])


@pytest.mark.parametrize("name", RUNS)
def test_an_old_run_exports_and_the_export_loads_as_the_run(name, tmp_path):
    run = copy_fixture(name, tmp_path)
    assert cli.main(["export", str(run), "--format", "safetensors"]) == 0
    export = run / "exports" / "safetensors"
    about = json.loads((export / "diffusiontools.json").read_text())
    assert (about["epoch"], about["step"], about["weights"]) == (0, 3, "raw")
    model = dt.load(export, device="cpu")
    check_recorded(model.config, name)
    assert (model.epoch, model.step) == (0, 3)
    assert torch.equal(model.sample(3, seed=1), dt.load(run, device="cpu").sample(3, seed=1))


@pytest.mark.parametrize("folder", EXPORTS)
def test_an_old_export_loads_samples_and_evaluates(folder, tmp_path):
    export = copy_fixture(folder, tmp_path)
    kind, step = EXPORTS[folder]
    model = dt.load(export, device="cpu")
    assert (model.config.diffusion.kind, model.epoch, model.step) == (kind, 0, step)
    assert model.sample(3, seed=1).shape == (3, 1, 28, 28)
    if folder.startswith("6727f4f"):  # the run it came from is kept: the same samples
        run = dt.load(FIXTURES / "6727f4f_gaussian", device="cpu")
        assert torch.equal(model.sample(3, seed=1), run.sample(3, seed=1))
    npz = tmp_path / "x.npz"
    assert cli.main(["sample", str(export), "-n", "3", "--npz", str(npz), "--device", "cpu"]) == 0
    assert np.load(npz)["images"].shape == (3, 28, 28)
    evaluate_small(export, tmp_path / "evaluation")
