"""training.log = tensorboard: the event files, read back with TensorBoard's own reader, hold the
tags at the expected steps, each step once after a resume (a killed session's steps past its
checkpoint never show, even when a session with the log off came between); without the package
the option is refused before anything is written, and the csv default needs no tensorboard."""

from __future__ import annotations

import shutil

import pytest
from matplotlib.image import imread
from tiny_runs import (
    STEPS_PER_EPOCH,
    run_python,
    single_thread,  # noqa: F401 (an autouse fixture)
    train_tiny,
    write_ini,
)

from diffusiontools.config import Config, TrainingConfig
from diffusiontools.training import checkpoint as ckpt_io
from diffusiontools.training import tensorboard_log
from diffusiontools.training.run_folder import PREVIOUS, move_aside, read_metrics, recover

SCALARS = [
    "epoch/images_per_s",
    "epoch/train_loss",
    "epoch/val_loss",
    "train/images_per_s",
    "train/loss",
    "train/lr",
]


def read_events(run_dir):
    """Every event of the run's TensorBoard folder, as TensorBoard shows them (0: keep all),
    read by TensorBoard's own reader (an EventAccumulator)."""
    reader = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = reader.EventAccumulator(
        str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0}
    )
    return events.Reload()


def steps(events, tag: str) -> list[int]:
    kind = events.Images if tag in events.Tags()["images"] else events.Scalars
    return [event.step for event in kind(tag)]


def test_a_tiny_run_logs_losses_speed_lr_and_figures_at_their_steps(tmp_path):
    pytest.importorskip("tensorboard")
    run = train_tiny(
        tmp_path / "run",
        "training.log=tensorboard",
        "training.epochs=2",
        "sampling.sample_every=1",
        "sampling.n_samples=4",
    )
    events = read_events(run)
    assert sorted(events.Tags()["scalars"]) == SCALARS
    assert sorted(events.Tags()["images"]) == ["learning_curve", "samples"]
    epoch_ends = [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]  # 12 steps per epoch: no 20-step point
    assert steps(events, "train/loss") == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    for tag in ("train/lr", "train/images_per_s", "epoch/train_loss", "epoch/val_loss"):
        assert steps(events, tag) == epoch_ends, tag
    assert steps(events, "learning_curve") == epoch_ends  # save_every = 1: every epoch is kept
    assert steps(events, "samples") == epoch_ends

    rows = read_metrics(run)  # the same numbers as metrics.csv (TensorBoard keeps float32)
    step_losses = [event.value for event in events.Scalars("train/loss")]
    for e, row in enumerate(rows):
        this_epoch = step_losses[e * STEPS_PER_EPOCH : (e + 1) * STEPS_PER_EPOCH]
        assert sum(this_epoch) / STEPS_PER_EPOCH == pytest.approx(row["train_loss"], rel=1e-5)
        assert events.Scalars("epoch/val_loss")[e].value == pytest.approx(row["val_loss"], rel=1e-6)
        assert events.Scalars("epoch/train_loss")[e].value == pytest.approx(
            row["train_loss"], rel=1e-6
        )
    assert [event.value for event in events.Scalars("train/lr")] == pytest.approx([2e-3, 2e-3])
    # The figures are the PNG files' pictures: 4 samples -> a 2 x 2 mosaic of 28-pixel digits
    # with 2-pixel gaps; the last learning curve has the size of learning_curve.png.
    grid = events.Images("samples")[-1]
    assert (grid.height, grid.width) == (2 * 30 + 2, 2 * 30 + 2)
    curve = events.Images("learning_curve")[-1]
    assert (curve.height, curve.width) == imread(run / "learning_curve.png").shape[:2]


def test_a_resume_after_a_kill_past_the_checkpoint_shows_each_step_once(tmp_path):
    """The run is trained to step 18 with csv only, then resumed with TensorBoard to step 30; its
    step-18 checkpoint is put back, as if it had been killed after logging step 30 but before
    checkpointing it. Resuming to 36 logs steps 19 to 30 again: each is shown once."""
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    train_tiny(run, "training.max_steps=18")
    killed_at_18 = tmp_path / "latest_18.pt"
    shutil.copy(ckpt_io.latest_path(run), killed_at_18)
    train_tiny(run, "training.max_steps=30", "training.log=tensorboard", resume=True)
    assert steps(read_events(run), "train/loss") == list(range(19, 31))
    shutil.copy(killed_at_18, ckpt_io.latest_path(run))

    train_tiny(run, "training.max_steps=36", "training.log=tensorboard", resume=True)
    events = read_events(run)
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 2
    assert steps(events, "train/loss") == list(range(19, 37))  # TensorBoard starts at the switch
    for tag in ("train/lr", "epoch/val_loss", "epoch/train_loss", "learning_curve"):
        assert steps(events, tag) == [24, 36], tag  # step 24 logged twice, shown once
    assert [row["step"] for row in read_metrics(run)] == [12, 24, 36]


def test_a_kill_past_the_checkpoint_then_a_resume_with_the_log_off_leaves_no_stale_step(tmp_path):
    """Session A logs to step 30 and is killed with its checkpoint at step 18 (put back as in the
    test above); session B redoes steps 19 to 24 with the log off; session C resumes at 24 with
    the log on. A's steps 19 to 24 are not the run's (B redid them): C purges them although B
    wrote no event file. TensorBoard shows steps 1 to 18 (A) and 25 to 36 (C), each once."""
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    train_tiny(run, "training.max_steps=18", "training.log=tensorboard")
    killed_at_18 = tmp_path / "latest_18.pt"
    shutil.copy(ckpt_io.latest_path(run), killed_at_18)
    train_tiny(run, "training.max_steps=30", "training.log=tensorboard", resume=True)
    shutil.copy(killed_at_18, ckpt_io.latest_path(run))
    train_tiny(run, "training.max_steps=24", "training.log=csv", resume=True)
    assert ckpt_io.load_checkpoint(ckpt_io.latest_path(run))["tensorboard_step"] == 18

    train_tiny(run, "training.max_steps=36", "training.log=tensorboard", resume=True)
    events = read_events(run)
    assert steps(events, "train/loss") == [*range(1, 19), *range(25, 37)]
    for tag in ("train/lr", "epoch/val_loss", "epoch/train_loss", "learning_curve"):
        assert steps(events, tag) == [12, 36], tag  # A's epoch end at 24 was redone by B
    assert [row["step"] for row in read_metrics(run)] == [12, 24, 36]
    assert ckpt_io.load_checkpoint(ckpt_io.latest_path(run))["tensorboard_step"] == 36


def test_only_rank_0_writes(tmp_path):
    pytest.importorskip("tensorboard")
    config = Config(training=TrainingConfig(log="tensorboard"))
    for is_main in (False, True):
        with tensorboard_log.TensorBoardLog(config, is_main).open(tmp_path / str(is_main), 0):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["True"]
    assert [p.name for p in (tmp_path / "True").iterdir()] == ["tensorboard"]


def test_a_resumed_session_opens_its_file_in_a_later_second(tmp_path, monkeypatch):
    """TensorBoard reads event files in name order; within one second the names (host, process
    id, counter) do not follow creation, so the new file waits for the next second."""
    slept = []
    monkeypatch.setattr(tensorboard_log.time, "time", lambda: 1_700_000_000.25)
    monkeypatch.setattr(tensorboard_log.time, "sleep", slept.append)
    tensorboard_log._wait_for_a_later_second(tmp_path)  # no event file: no wait
    (tmp_path / "events.out.tfevents.1699999999.host.name.999.0").write_text("")
    tensorboard_log._wait_for_a_later_second(tmp_path)  # a file from an earlier second
    (tmp_path / "events.out.tfevents.1700000000.host.name.1000.3").write_text("")
    tensorboard_log._wait_for_a_later_second(tmp_path)  # one from this second
    assert slept == [0.75]


def test_an_overwrite_moves_the_event_files_aside_with_the_run(tmp_path):
    run = tmp_path / "run"
    (run / "tensorboard").mkdir(parents=True)
    (run / "tensorboard" / "events.out.tfevents.1.host.1.0").write_text("old run")
    (run / "metrics.csv").write_text("old run")
    (run / "notes.txt").write_text("the user's")
    move_aside(run)
    assert sorted(p.name for p in (run / PREVIOUS).iterdir()) == ["metrics.csv", "tensorboard"]
    (run / "tensorboard").mkdir()  # the new run's, which dies before its first checkpoint
    recover(run)
    assert sorted(p.name for p in run.iterdir()) == ["metrics.csv", "notes.txt", "tensorboard"]
    assert [p.name for p in (run / "tensorboard").iterdir()] == ["events.out.tfevents.1.host.1.0"]


MISSING_TENSORBOARD = """
import sys
sys.modules["tensorboard"] = None  # as if it were not installed
from pathlib import Path
from diffusiontools.config import Config, TrainingConfig
from diffusiontools.training.run_config import load_config
from diffusiontools.errors import DiffusionToolsError
from diffusiontools.training.trainer import train

ini, out = sys.argv[1], Path(sys.argv[2])
try:
    load_config(ini, {"training.log": "tensorboard"})
except DiffusionToolsError as exc:
    print(exc)
try:  # a Config built by hand skips check(): train refuses it before the folder exists
    train(Config(training=TrainingConfig(log="tensorboard", device="cpu")), out / "unchecked")
except DiffusionToolsError as exc:
    print(exc)
print((out / "unchecked").exists())
train(load_config(ini, {"training.max_steps": 2}), out / "csv")
print(sorted(p.name for p in (out / "csv").iterdir()))
"""


def test_without_tensorboard_the_option_is_refused_and_csv_runs(tmp_path):
    done = run_python(MISSING_TENSORBOARD, str(write_ini(tmp_path)), str(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr
    refusal = (
        "training.log = tensorboard needs the optional package 'tensorboard', which is not "
        "installed; install it with: pip install 'diffusiontools[tensorboard]'"
    )
    assert done.stdout.splitlines() == [
        refusal,
        refusal,
        "False",
        "['.lock', 'checkpoints', 'config.ini', 'data.json']",
    ]
