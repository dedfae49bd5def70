"""``reproduce``: the scales' settings, stage bookkeeping, and the smoke scale end to end."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil

import numpy as np
import pytest
import torch
from test_pretrained import EXPORT_FILES
from tiny_runs import one_thread, single_thread  # noqa: F401  (autouse: one thread per test)

from diffusiontools.config import RUN_CONFIG_HEADER
from diffusiontools.data.download import file_sha256
from diffusiontools.errors import UserError
from diffusiontools.reproduce.pipeline import reproduce
from diffusiontools.reproduce.scales import REPORT_MODELS, SCALES, get_scale
from diffusiontools.reproduce.study import Study, columns, run_names, study_config
from diffusiontools.training import pretrained, run_folder
from diffusiontools.training.run_config import load_config
from diffusiontools.training.trained_model import load


def test_full_scale_keeps_the_report_settings_and_analysed_checkpoints():
    full = get_scale("full")
    assert {m: full.analysed_epoch(m) for m in REPORT_MODELS} == {
        "model1": 120,
        "model2": 80,
        "custom1": 20,
        "custom2": 140,
    }
    for model in REPORT_MODELS:
        assert full.overrides(model) == []
    config = study_config("custom1", full)
    assert (config.diffusion.T, config.diffusion.loss, config.training.batch_size) == (
        100,
        "l1",
        64,
    )
    assert config.training.epochs == 80
    # Every analysed checkpoint is one the config keeps (save_every divides it).
    for model, epoch in REPORT_MODELS.items():
        assert epoch % study_config(model, full).training.save_every == 0


def test_cpu_scale_changes_only_data_and_epochs():
    cpu = get_scale("cpu")
    config = study_config("model1", cpu)
    assert (config.data.subset, config.training.epochs) == (12_000, 6)
    assert (config.diffusion.T, config.sampling.sampler, config.model.n_hidden) == (
        1000,
        "ancestral",
        (16, 32, 32, 16),
    )
    assert cpu.analysed_epoch("model1") == 5
    per_image = study_config("custom2_per_image", cpu)
    assert (per_image.name, per_image.diffusion.t_per) == ("custom2_per_image", "image")
    assert study_config("custom2", cpu).diffusion.t_per == "batch"


def test_smoke_scale_samples_gaussian_models_with_few_steps_only():
    smoke = get_scale("smoke")
    assert study_config("model2", smoke).sampling.sampler == "ddim"
    assert study_config("custom1", smoke).sampling.sampler == "naive"


def test_unknown_scale_names_the_allowed_ones():
    with pytest.raises(UserError, match="'huge'.*smoke, cpu, report, full"):
        get_scale("huge")


@pytest.mark.parametrize(
    "model, epochs", [("model1", 121), ("model2", 81), ("custom1", 21), ("custom2", 141)]
)
def test_the_report_scale_trains_each_model_to_the_epoch_the_report_analysed(model, epochs):
    """Epochs count from 0: epoch 120 is the 121st; save_every 10 keeps it; the quality curve
    every 10 epochs; the report's configs otherwise unchanged."""
    scale = get_scale("report")
    assert scale.analysed_epoch(model) == epochs - 1
    config, faithful = study_config(model, scale), load_config(model)
    assert config.training.epochs == epochs and config.training.eval_every == 10
    assert (epochs - 1) % config.training.save_every == 0
    assert config.data == faithful.data and config.model == faithful.model
    assert config.diffusion == faithful.diffusion and config.sampling == faithful.sampling
    full = study_config(model, get_scale("full"))
    assert full.training.epochs == faithful.training.epochs and full.training.eval_every == 0


def test_a_failing_stage_is_named_and_not_recorded(tmp_path):
    study = Study(tmp_path, SCALES["smoke"], torch.device("cpu"), 0)
    with pytest.raises(UserError, match="stage 'sample x' failed: ValueError: broken"):
        with study.stage("sample x"):
            raise ValueError("broken")
    with study.stage("done"):
        pass
    recorded = json.loads((tmp_path / "reproduce.json").read_text())
    assert list(recorded["stages"]) == ["done"]


def test_a_folder_of_another_scale_is_refused(tmp_path):
    with Study(tmp_path, SCALES["smoke"], torch.device("cpu"), 0).stage("y"):
        pass
    with pytest.raises(UserError, match="scale 'smoke'.*another --out"):
        Study(tmp_path, SCALES["cpu"], torch.device("cpu"), 0)


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    # A module fixture runs outside the per-test single_thread: one thread here too, set back
    # afterwards (it was left at 1 for every later test module, whatever conftest set).
    with one_thread():
        reproduce(get_scale("smoke"), out, torch.device("cpu"))
    return out


@pytest.mark.slow
def test_smoke_reproduction_writes_every_promised_file(smoke_study):
    out = smoke_study
    expected = ["reproduction.md", "reproduce.json", "evaluation/metrics.json"]
    expected += ["report/comparison.html", *(f"report/{r}.html" for r in run_names())]
    for run in run_names():
        expected += [f"figures/learning_curve_{run}.png", f"figures/epochs_{run}.png"]
        expected += [f"figures/trajectory_{run}.png", f"runs/{run}/checkpoints/latest.pt"]
        if run.startswith("custom"):
            expected += [f"reconstruction/{run}/reconstruction.json"]
            expected += [
                f"figures/triplets_{run}_naive.png",
                f"figures/triplets_{run}_improved.png",
            ]
    for label, _, _ in columns():
        stem = label.replace(" ", "_")
        expected += [f"samples/{stem}.npz", f"figures/tsne_{stem}.png"]
    expected += ["figures/tsne_test_labels.png", "figures/degradation_custom1.png"]
    expected += ["figures/degradation_custom2.png"]
    missing = [name for name in expected if not (out / name).is_file()]
    assert missing == []
    page = (out / "reproduction.md").read_text()
    # the report's numbers are shown: total variance, KL, Table 1 over all digits and per digit
    # (custom 1's 0s direct, custom 2's 8s diffusion), a validation loss
    for published in ("56.7", "5.616", "0.372", "0.21989", "0.3481", "0.0735"):
        assert published in page
    (ours,) = [line for line in page.splitlines() if line.startswith("| total variance: ours, u")]
    assert "–" not in ours and ours.count("[") == 4  # a value and interval for each model
    for name in expected:
        if name.startswith("figures/"):
            assert f"]({name})" in page, name


@pytest.mark.slow
def test_smoke_reproduction_metrics_are_finite(smoke_study):
    results = json.loads((smoke_study / "evaluation" / "metrics.json").read_text())
    assert list(results["runs"]) == [label for label, _, _ in columns()]
    for label, run in results["runs"].items():
        assert run["n_samples"] == 20
        assert "total_variance_unclamped" in run["metrics"]  # the report's, like for like
        for key, entry in run["metrics"].items():
            assert math.isfinite(entry["value"]), (label, key)
    for run in run_names()[2:]:
        table = json.loads(
            (smoke_study / "reconstruction" / run / "reconstruction.json").read_text()
        )
        for method in ("direct", "naive", "improved"):
            assert math.isfinite(table["table"][method]["rmse"]["All"])


@pytest.mark.slow
def test_smoke_reproduction_rerun_skips_finished_stages(smoke_study):
    state = json.loads((smoke_study / "reproduce.json").read_text())
    metrics_time = (smoke_study / "evaluation" / "metrics.json").stat().st_mtime_ns
    reproduce(get_scale("smoke"), smoke_study, torch.device("cpu"))
    again = json.loads((smoke_study / "reproduce.json").read_text())
    for stage in ("evaluate", "report", "reconstruct custom1", "sample model1"):
        assert again["stages"][stage] == state["stages"][stage]
    assert (smoke_study / "evaluation" / "metrics.json").stat().st_mtime_ns == metrics_time


@pytest.mark.slow
def test_a_sample_file_without_the_floats_as_drawn_is_drawn_again(smoke_study, tmp_path):
    """A reproduction folder of an older version: its NPZ files hold uint8 images only, which
    the report's (unclamped) total variance cannot be taken from."""
    from diffusiontools.outputs.samples_io import load_samples, load_unclamped, save_samples
    from diffusiontools.reproduce.pipeline import evaluate_all, sample_all

    study_dir = tmp_path / "study"
    shutil.copytree(smoke_study, study_dir)
    study = Study(study_dir, SCALES["smoke"], torch.device("cpu"), 0)
    old, kept = (study_dir / "samples" / f"{label.replace(' ', '_')}.npz" for label in
                 (columns()[0][0], columns()[1][0]))  # fmt: skip
    images, meta = load_samples(old)
    save_samples(old, torch.from_numpy(images), **meta)  # as an older version wrote it
    kept_bytes = kept.read_bytes()
    paths = sample_all(study)
    assert load_unclamped(old, load_samples(old)[0]) is not None
    assert np.array_equal(load_samples(old)[0], images)  # the same draw, now with its floats
    assert kept.read_bytes() == kept_bytes  # a current file is kept
    metrics = study_dir / "evaluation" / "metrics.json"
    results = json.loads(metrics.read_text())
    assert results["settings"]["tsne_samples"] == "unclamped"  # the report's t-SNE
    for run in results["runs"].values():  # an older version's evaluation
        del run["metrics"]["total_variance_unclamped"]
    del results["settings"]["tsne_samples"]
    metrics.write_text(json.dumps(results))
    again = evaluate_all(study, paths)
    assert all("total_variance_unclamped" in run["metrics"] for run in again["runs"].values())
    assert again["settings"]["tsne_samples"] == "unclamped"


def test_each_stage_records_its_time_and_machine_a_stopped_training_too(tmp_path):
    from diffusiontools.training.signals import TrainingStopped

    study = Study(tmp_path, SCALES["smoke"], torch.device("cpu"), 0)
    with pytest.raises(TrainingStopped):
        with study.stage("train m"):
            raise TrainingStopped(15, "stopped by SIGTERM")
    with study.stage("train m"):  # resumed: the times add up, the machine is listed once
        pass
    recorded = json.loads((tmp_path / "reproduce.json").read_text())
    assert list(recorded["stages"]) == ["train m"] and recorded["stages"]["train m"] >= 0
    (machine,) = recorded["machines"]["train m"]
    assert f"{os.cpu_count()} cores" in machine and f"torch {torch.__version__}" in machine


@pytest.mark.slow
def test_smoke_reproduction_exports_each_report_model_as_the_package_ships_it(smoke_study):
    for model in REPORT_MODELS:
        folder = smoke_study / "models" / model
        assert {p.name for p in folder.iterdir()} == EXPORT_FILES  # what the package ships
        shipped, run = load(folder), load(smoke_study / "runs" / model, epoch=1)
        assert shipped.epoch == get_scale("smoke").analysed_epoch(model) == 1
        weights = run.net.state_dict()
        assert all(torch.equal(v, weights[k]) for k, v in shipped.net.state_dict().items())


def test_a_run_killed_before_its_first_checkpoint_is_started_again(tmp_path):
    from diffusiontools.reproduce.study_runs import train_run
    from diffusiontools.training.run_folder import RunFolder, read_metrics

    run = RunFolder(tmp_path / "model1")
    run.path.mkdir()
    run.config.write_text(f"{RUN_CONFIG_HEADER} 'model1'\n")  # a run's first file
    run.metrics.write_text("epoch\n")  # the first row written, the kill before the checkpoint
    train_run(run.path, "model1", get_scale("smoke"))
    assert [row["epoch"] for row in read_metrics(run.path)] == [0.0, 1.0]
    assert run.latest.is_file()


def shipping(monkeypatch, models):
    """Make the package ship the models in ``models`` (a reproduction's models/ folder)."""
    monkeypatch.setattr(run_folder, "pretrained_root", lambda: models)
    sha = {m: file_sha256(models / m / "model.safetensors") for m in REPORT_MODELS}
    monkeypatch.setattr(pretrained, "SHA256", sha)


# The report scale with the smoke scale's evaluation sizes: what --skip-training runs, small.
SMALL_REPORT = dataclasses.replace(
    get_scale("report"),
    **{
        key: getattr(get_scale("smoke"), key)
        for key in ("n_samples", "tsne_reference", "test_reference", "n_boot", "n_boot_set")
    },
)


@pytest.mark.slow
def test_skip_training_evaluates_the_shipped_models_without_training(
    smoke_study, tmp_path, monkeypatch, caplog
):
    shipping(monkeypatch, smoke_study / "models")
    out = tmp_path / "shipped"
    with one_thread(), caplog.at_level(logging.INFO, logger="diffusiontools"):
        path = reproduce(SMALL_REPORT, out, torch.device("cpu"), skip_training=True)
    # its first line announced the scale's hours of training, which do not happen here
    assert "hours" not in caplog.messages[0] and "nothing is trained" in caplog.messages[0]
    assert not (out / "runs").exists() and not (out / "report").exists()  # nothing trained
    results = json.loads((out / "evaluation" / "metrics.json").read_text())
    assert list(results["runs"]) == [
        "model1",
        "model2",
        "custom1",
        "custom2",
        "custom1 improved",
        "custom2 improved",
    ]
    for run in ("custom1", "custom2"):
        assert (out / "reconstruction" / run / "reconstruction.json").is_file()
    page = path.read_text()
    assert "--skip-training`" in page and "shipped in the package" in page
    assert "figures/learning_curve_model1.png" in page  # from the shipped metrics
    stages = json.loads((out / "reproduce.json").read_text())
    assert stages["shipped"] is True and not any(s.startswith("train") for s in stages["stages"])


def test_skip_training_takes_the_report_scale_only(tmp_path):
    with pytest.raises(UserError, match="trained at scale report; use scale=report, not 'cpu'"):
        reproduce(get_scale("cpu"), tmp_path, torch.device("cpu"), skip_training=True)
    assert not tmp_path.joinpath("reproduce.json").exists()


def test_a_folder_of_trained_models_is_not_reused_for_the_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "SHA256", dict.fromkeys(REPORT_MODELS, "0" * 64))
    with Study(tmp_path, SCALES["report"], torch.device("cpu"), 0).stage("y"):
        pass
    with pytest.raises(UserError, match="trains its models; use another --out for skip_training"):
        Study(tmp_path, SCALES["report"], torch.device("cpu"), 0, shipped=True)
    other = tmp_path / "other"
    with Study(other, SCALES["report"], torch.device("cpu"), 0, shipped=True).stage("y"):
        pass
    with pytest.raises(UserError, match="of the shipped models .skip_training=True.; use another"):
        Study(other, SCALES["report"], torch.device("cpu"), 0)


def test_skip_training_refuses_an_install_that_ships_no_models(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "SHA256", {"model1": "0" * 64})
    with pytest.raises(
        UserError, match="does not ship model2, custom1, custom2 .shipped: model1.; train them"
    ):
        reproduce(SMALL_REPORT, tmp_path / "out", torch.device("cpu"), skip_training=True)
    assert not (tmp_path / "out").exists()


def test_skip_training_names_the_flag_to_leave_out_on_the_command_line(
    tmp_path, capsys, monkeypatch
):
    from diffusiontools.cli import main

    monkeypatch.setattr(pretrained, "SHA256", {"model1": "0" * 64})  # one of the four shipped
    out = str(tmp_path / "out")
    assert main(["reproduce", "--scale", "report", "--skip-training", "--out", out]) == 2
    assert capsys.readouterr().err.endswith("train them instead (leave out --skip-training)\n")


def test_the_quality_curve_is_set_beside_what_the_report_says_of_those_epochs(tmp_path):
    from diffusiontools.reproduce.summary import quality_section
    from diffusiontools.training.run_folder import write_metrics

    study = Study(tmp_path, SCALES["report"], torch.device("cpu"), 0)
    run = tmp_path / "runs" / "model1"
    run.mkdir(parents=True)
    scored = dict(class_entropy=2.25, recognisable_fraction=0.5)
    write_metrics(
        run,
        [
            {"epoch": 39, "step": 1, "train_loss": 0.1, "val_loss": 0.1},
            {
                "epoch": 40,
                "step": 2,
                "train_loss": 0.1,
                "val_loss": 0.1,
                "frechet_distance": 205.04,
                **scored,
            },
            {
                "epoch": 50,
                "step": 3,
                "train_loss": 0.1,
                "val_loss": 0.1,
                "frechet_distance": 210.0,
                **scored,
            },
        ],
    )
    text = quality_section(study)
    assert "| model 1 | 40 | symbols, not recognisable digits | 205.0 | 2.250 | 0.50 |" in text
    assert "| model 1 | 50 | – | 210.0 | 2.250 | 0.50 |" in text
    assert "| model 1 | 39 |" not in text  # an epoch the probe did not score
    assert "| model 1 | 60 | the first that resemble digits | not scored at this scale |" in text
    assert "| model 1 | best | – | epoch 40 |" in text
    assert "| model 2 | 80 | the highest quality; analysed | not scored at this scale |" in text
