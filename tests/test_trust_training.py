"""Runs you can trust, the training side: a run folder never records what did not happen.

Each table row is one input that a user could give, with its expected outcome written here:
an --overwrite that fails a check deletes nothing; a resume with a changed key either applies
it (and it takes effect) or refuses with the key's old and new value; a max_steps stop inside an
epoch resumes into the uninterrupted run; a checkpoint from another device resumes.
All on the tiny config of tiny_runs: notebook CNN (8, 8), T = 20, 256 images, batch 16,
12 steps per epoch, 3 epochs.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from tiny_runs import (  # noqa: F401 (single_thread: autouse fixture)
    assert_same_final_weights,
    copy_run,
    losses,
    on_training_steps,
    reference_run,
    single_thread,
    tiny_config,
    train_tiny,
    write_ini,
)

from diffusiontools import cli
from diffusiontools.errors import UserError
from diffusiontools.training import checkpoint as ckpt_io
from diffusiontools.training import run_folder
from diffusiontools.training.checkpoint import reseeded
from diffusiontools.training.training_data import load_training_data


def folder_bytes(run: Path) -> dict[str, bytes]:
    """Every file of a run folder (lock aside), by relative path."""
    return {
        str(p.relative_to(run)): p.read_bytes()
        for p in sorted(run.rglob("*"))
        if p.is_file() and p.name != run_folder.LOCK_FILE
    }


def cli_error(argv: list[str], capsys) -> str:
    """Run the CLI, expect exit status 2, return its one error line."""
    capsys.readouterr()
    assert cli.main(argv) == 2
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error: ")]
    return line


def train_argv(tmp: Path, run: Path, *overrides: str, flag: str) -> list[str]:
    sets = [x for o in overrides for x in ("--set", o)]
    return ["train", str(write_ini(tmp)), "--out", str(run), flag, *sets]


# --- 1. --overwrite checks everything before it deletes anything --------------------------------


@dataclass
class Refused:
    name: str
    overrides: tuple[str, ...]
    fragments: tuple[str, ...]  # each must appear in the one error line


OVERWRITE_REFUSED = [
    Refused("batch larger than the data", ("training.batch_size=100000",), ("batch_size=100000",)),
    Refused("missing data folder", ("data.dir=/nonexistent",), ("data.dir=/nonexistent",)),
    Refused(
        "no validation images",
        ("data.subset=3", "data.val_fraction=0.2"),
        ("data.subset=3", "no validation images"),
    ),
    Refused("unknown device", ("training.device=tpu",), ("training.device='tpu'",)),
    Refused("bad config value", ("training.lr=0",), ("training.lr=0.0",)),
]


@pytest.mark.parametrize("row", OVERWRITE_REFUSED, ids=[r.name for r in OVERWRITE_REFUSED])
def test_an_overwrite_that_fails_a_check_deletes_nothing(row, tmp_path, capsys):
    run = copy_run(reference_run(), tmp_path / "run")
    (run / "samples").mkdir()
    (run / "samples" / "samples.npz").write_bytes(b"the old run's samples")
    before = folder_bytes(run)
    error = cli_error(train_argv(tmp_path, run, *row.overrides, flag="--overwrite"), capsys)
    for fragment in row.fragments:
        assert fragment in error
    assert folder_bytes(run) == before


# Advice that can be followed: data.subset only while it leaves images out, data.val_fraction
# only while its maximum (0.9) would hold out an image. (The embedded set: 4,000 training images.)
DATA_ADVICE = [
    (("data.subset=256", "training.batch_size=300"),
     "training.batch_size=300 is larger than the 205 training images; give at most 205 or "
     "raise data.subset"),
    (("data.source=embedded", "data.subset=none", "training.batch_size=3201"),
     "training.batch_size=3201 is larger than the 3200 training images; give at most 3200"),
    (("data.subset=3",),
     "data.subset=3 with data.val_fraction=0.2 leaves no validation images (of 3); raise "
     "data.subset or data.val_fraction"),
    (("data.subset=1", "data.val_fraction=0.9"),
     "data.subset=1 with data.val_fraction=0.9 leaves no validation images (of 1); raise "
     "data.subset"),
]  # fmt: skip


@pytest.mark.parametrize("overrides, message", DATA_ADVICE)
def test_data_refusals_advise_only_what_can_help(overrides, message):
    with pytest.raises(UserError) as refused:
        load_training_data(tiny_config(*overrides), torch.device("cpu"))
    assert str(refused.value) == message


def test_an_overwrite_leaves_nothing_of_the_old_run(tmp_path):
    run = copy_run(reference_run(), tmp_path / "run")
    for leftover in ("samples/sample_grid.png", "reconstruction/reconstruction.md"):
        (run / leftover).parent.mkdir(exist_ok=True)
        (run / leftover).write_text("from the old run")
    train_tiny(run, "training.epochs=1", overwrite=True)
    names = {str(p.relative_to(run)) for p in run.rglob("*") if p.name != run_folder.LOCK_FILE}
    assert names == {
        "config.ini",
        "data.json",
        "metrics.csv",
        "learning_curve.png",
        "checkpoints",
        "checkpoints/epoch_0000.pt",
        "checkpoints/latest.pt",
    }
    assert losses(run) == losses(reference_run())[:1]


def test_an_overwrite_that_dies_before_its_first_checkpoint_gives_the_old_run_back(
    tmp_path, monkeypatch
):
    run = copy_run(reference_run(), tmp_path / "run")
    before = folder_bytes(run)
    on_training_steps(monkeypatch, lambda step, loss: loss * float("nan") if step >= 3 else loss)
    with pytest.raises(UserError, match="non-finite at step 3"):
        train_tiny(run, overwrite=True)
    assert folder_bytes(run) == before


def test_an_overwrite_killed_before_its_first_checkpoint_is_undone_by_the_next_training(
    tmp_path,
):
    """What a SIGKILL leaves (the old run moved aside, the new run's first files beside it) is
    put back by the next training in the folder, before it looks at anything."""
    run = copy_run(reference_run(), tmp_path / "run")
    before = folder_bytes(run)
    run_folder.move_aside(run)
    (run / "config.ini").write_text("[training]\nlr = 1\n")  # the new run's first file
    train_tiny(run, resume=True)  # finds the old, finished run and has nothing to add
    assert folder_bytes(run) == before


# --- 2. resume with a changed config ------------------------------------------------------------


def run_at_epoch_0(tmp_path: Path) -> Path:
    """A copy of the reference run as it stood after epoch 0 (step 12)."""
    run = copy_run(reference_run(), tmp_path / "run")
    folder = run / ckpt_io.CHECKPOINT_DIR
    (folder / "latest.pt").write_bytes((folder / "epoch_0000.pt").read_bytes())
    for epoch in (1, 2):
        ckpt_io.epoch_path(run, epoch).unlink()
    return run


RESUME_REFUSED = [
    Refused("learning rate", ("training.lr=1e-5",), ("training.lr 0.002 -> 1e-05",)),
    Refused("T", ("diffusion.T=50",), ("diffusion.T 20 -> 50",)),
    Refused(
        "schedule", ("diffusion.schedule=cosine",), ("diffusion.schedule 'linear' -> 'cosine'",)
    ),
    Refused("prediction", ("diffusion.prediction=x0",), ("diffusion.prediction 'eps' -> 'x0'",)),
    Refused("batch", ("training.batch_size=8",), ("training.batch_size 16 -> 8",)),
    Refused("seed", ("training.seed=7",), ("training.seed 42 -> 7",)),
    Refused("EMA", ("training.ema_decay=0.5",), ("training.ema_decay 0.9 -> 0.5",)),
    Refused(
        "two keys at once",
        ("training.lr=1e-5", "data.subset=200"),
        ("data.subset 256 -> 200", "training.lr 0.002 -> 1e-05"),
    ),
    Refused(
        "kind of process",
        ("diffusion.kind=cold",),
        ("diffusion.kind 'gaussian' -> 'cold'", "may change on resume"),
    ),
]


@pytest.mark.parametrize("row", RESUME_REFUSED, ids=[r.name for r in RESUME_REFUSED])
def test_a_resume_that_changes_the_optimisation_is_refused_naming_old_and_new(
    row, tmp_path, capsys
):
    run = run_at_epoch_0(tmp_path)
    before = folder_bytes(run)
    error = cli_error(train_argv(tmp_path, run, *row.overrides, flag="--resume"), capsys)
    for fragment in row.fragments:
        assert fragment in error
    assert folder_bytes(run) == before


def ini_value(run: Path, key: str) -> str:
    parser = configparser.ConfigParser()
    parser.read(run / run_folder.CONFIG_FILE)
    section, _, option = key.partition(".")
    return parser[section][option]


def test_keys_that_may_change_on_resume_take_effect_and_are_recorded(tmp_path):
    run = run_at_epoch_0(tmp_path)
    changes = ("training.epochs=2", "training.save_every=5", "sampling.sampler=ddim")
    train_tiny(run, *changes, resume=True)
    assert [row[0] for row in losses(run)] == [12, 24]  # 2 epochs, not the INI's 3
    assert ckpt_io.list_epochs(run) == [0, 1]  # epoch 1 is the last: kept though save_every=5
    assert (ini_value(run, "training.epochs"), ini_value(run, "training.save_every")) == ("2", "5")
    assert ini_value(run, "sampling.sampler") == "ddim"
    stored = ckpt_io.load_checkpoint(ckpt_io.latest_path(run))["config"]
    assert (stored["training"]["epochs"], stored["sampling"]["sampler"]) == (2, "ddim")
    assert losses(run) == losses(reference_run())[:2]  # the optimisation itself is unchanged


def test_val_batches_changed_on_resume_changes_the_validation(tmp_path):
    run = run_at_epoch_0(tmp_path)
    train_tiny(run, "training.epochs=2", "training.val_batches=1", resume=True)
    (_, train_a, val_a), (_, train_b, val_b) = losses(run)[1], losses(reference_run())[1]
    assert train_a == train_b and val_a != val_b  # 1 validation batch instead of 2
    assert ini_value(run, "training.val_batches") == "1"


def test_a_resume_on_other_data_is_refused(tmp_path, capsys):
    run = run_at_epoch_0(tmp_path)
    argv = train_argv(tmp_path, run, "data.source=embedded", flag="--resume")
    error = cli_error(argv, capsys)
    assert "not the data the run" in error and "source 'mnist' -> 'embedded'" in error


# --- 3. a max_steps stop inside an epoch ----------------------------------------------------------


@pytest.mark.parametrize(
    "stops, end",
    [
        ((4, 8), (0, 8, 8)),  # A: 8 steps; B: 4, then --resume to 8 (both inside epoch 0)
        ((5, 17, 30), (2, 6, 30)),  # across two epoch ends
    ],
)
def test_max_steps_stops_then_resumes_equal_the_straight_run(tmp_path, stops, end):
    straight = train_tiny(tmp_path / "straight", f"training.max_steps={stops[-1]}")
    run = tmp_path / "stopped"
    for k, steps in enumerate(stops):
        train_tiny(run, f"training.max_steps={steps}", resume=k > 0)
    latest = ckpt_io.load_checkpoint(ckpt_io.latest_path(run))
    assert (latest["epoch"], latest["batch"], latest["step"]) == end
    assert_same_final_weights(run, straight)
    finished = end[0]  # epochs 0 .. end[0] - 1 finished: one metrics row each
    rows = losses(run) if finished else []
    assert rows == (losses(straight) if finished else []) and len(rows) == finished


# --- 4. a checkpoint whose noise generator comes from another device ----------------------------


def from_cuda(path: Path, with_device_name: bool) -> None:
    """Make the checkpoint look written on CUDA: a Philox generator's 16-byte state."""
    ckpt = torch.load(path, weights_only=True)
    ckpt["rng"]["step"] = torch.zeros(16, dtype=torch.uint8)
    if with_device_name:
        ckpt["rng"]["step_device"] = "cuda"
    else:  # a checkpoint from before the device was recorded
        del ckpt["rng"]["step_device"]
    torch.save(ckpt, path)


@pytest.mark.parametrize("with_device_name", [True, False])
def test_a_cuda_checkpoint_resumes_on_the_cpu_reseeded_from_the_step(
    tmp_path, caplog, with_device_name
):
    runs = []
    for name in ("a", "b"):
        run = copy_run(run_at_epoch_0(tmp_path / name), tmp_path / name / "copy")
        from_cuda(ckpt_io.latest_path(run), with_device_name)
        with caplog.at_level("WARNING", logger="diffusiontools"):
            train_tiny(run, resume=True)
        runs.append(run)
    (warning,) = {r.getMessage() for r in caplog.records if "re-seeded" in r.getMessage()}
    assert "re-seeded from step 12" in warning and "trains on cpu" in warning
    assert_same_final_weights(*runs)  # deterministic: twice the same
    assert losses(runs[0])[0] == losses(reference_run())[0]  # epoch 0 was before the move
    assert losses(runs[0])[1] != losses(reference_run())[1]  # then other noise, as warned
    assert reseeded(42, 12) == 43 * 1_000_003 + 12  # the documented seed: (seed + 1) * p + step


# --- found by trying the tool as a new user ------------------------------------------------------


def test_an_overwrite_never_touches_files_the_tool_did_not_write(tmp_path):
    """A project folder used as the run folder: the user's own files survive an overwrite."""
    run = tmp_path / "project"
    run.mkdir()
    (run / "analysis.py").write_text("the user's code")
    (run / "tiny.ini").write_text("the user's config")
    train_tiny(run, "training.epochs=1")
    train_tiny(run, "training.epochs=1", overwrite=True)
    assert (run / "analysis.py").read_text() == "the user's code"
    assert (run / "tiny.ini").read_text() == "the user's config"
    assert not (run / run_folder.PREVIOUS).exists()


def test_a_killed_overwrite_reads_as_the_old_run_until_a_training_runs(tmp_path):
    """After a SIGKILL before the new run's first checkpoint, loading the run gives the old run
    (it is put back), not "no checkpoint yet"."""
    run = copy_run(reference_run(), tmp_path / "run")
    before = folder_bytes(run)
    run_folder.move_aside(run)
    (run / "config.ini").write_text("[training]\nlr = 1\n")
    import diffusiontools as dt

    assert dt.load(run, device="cpu").epoch == 2
    assert folder_bytes(run) == before


RESUME_BELOW = [
    Refused("max_steps below the steps done", ("training.max_steps=3",), ("max_steps=3", "36")),
    Refused("epochs below the epochs done", ("training.epochs=1",), ("epochs=1", "3 epochs")),
    Refused("amp on the CPU", ("training.amp=bf16",), ("training.amp=bf16 applies on CUDA",)),
]


@pytest.mark.parametrize("row", RESUME_BELOW, ids=[r.name for r in RESUME_BELOW])
def test_a_resume_cannot_record_settings_the_run_did_not_use(row, tmp_path, capsys):
    run = copy_run(reference_run(), tmp_path / "run")
    before = folder_bytes(run)
    error = cli_error(train_argv(tmp_path, run, *row.overrides, flag="--resume"), capsys)
    for fragment in row.fragments:
        assert fragment in error
    assert folder_bytes(run) == before


def test_a_finished_run_resumed_with_new_sampling_settings_records_them_in_its_checkpoint(
    tmp_path,
):
    run = copy_run(reference_run(), tmp_path / "run")
    train_tiny(run, "sampling.sampler=ddim", "sampling.steps=5", resume=True)
    stored = ckpt_io.load_checkpoint(ckpt_io.latest_path(run))
    assert (stored["config"]["sampling"]["sampler"], stored["config"]["sampling"]["steps"]) == (
        "ddim",
        5,
    )
    assert stored["step"] == 36 and ini_value(run, "sampling.sampler") == "ddim"
    assert_same_final_weights(run, reference_run())  # nothing was trained


def test_amp_on_the_cpu_is_refused_not_recorded(tmp_path, capsys):
    error = cli_error(
        train_argv(tmp_path, tmp_path / "amp", "training.amp=bf16", flag="--overwrite"), capsys
    )
    assert "training.amp=bf16 applies on CUDA only; this run trains on cpu" in error
    assert not (tmp_path / "amp" / "config.ini").exists()


def test_evaluate_and_reconstruct_refuse_other_data_than_the_run_trained_on(tmp_path, capsys):
    run = copy_run(reference_run(), tmp_path / "run")
    ckpt = torch.load(ckpt_io.latest_path(run), weights_only=True)
    ckpt["data"]["md5"] = {k: "0" * 32 for k in ckpt["data"]["md5"]}  # trained on other files
    torch.save(ckpt, ckpt_io.latest_path(run))
    argv = ["evaluate", str(run), "--n-samples", "10", "--tsne-reference", "40"]
    argv += ["--test-reference", "40", "--out", str(tmp_path / "ev")]
    error = cli_error(argv, capsys)
    assert error.startswith(f"error: evaluate: the data found now is not the data the run in {run}")
