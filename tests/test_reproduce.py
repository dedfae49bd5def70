"""``reproduce``: the scales' settings, stage bookkeeping, and the smoke scale end to end."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
from tiny_runs import one_thread, single_thread  # noqa: F401  (autouse: one thread per test)

from diffusiontools.errors import UserError
from diffusiontools.reproduce.pipeline import reproduce
from diffusiontools.reproduce.scales import REPORT_MODELS, SCALES, get_scale
from diffusiontools.reproduce.study import Study, columns, run_names, study_config
from diffusiontools.training.run_config import load_config


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
    for published in ("56.7", "5.616", "0.372", "0.0735"):  # the report's numbers are shown
        assert published in page
    for name in expected:
        if name.startswith("figures/"):
            assert f"]({name})" in page, name


@pytest.mark.slow
def test_smoke_reproduction_metrics_are_finite(smoke_study):
    results = json.loads((smoke_study / "evaluation" / "metrics.json").read_text())
    assert list(results["runs"]) == [label for label, _, _ in columns()]
    for label, run in results["runs"].items():
        assert run["n_samples"] == 20
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
