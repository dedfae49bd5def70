"""Training learns, resumes exactly (after whole epochs and mid-epoch), and writes atomically."""

from __future__ import annotations

import io
import os
import signal

import pytest
import torch
from tiny_runs import (
    EPOCHS,
    STEPS_PER_EPOCH,
    assert_same_final_weights,
    losses,
    on_training_steps,
    reference_run,
    single_thread,  # noqa: F401 (an autouse fixture)
    tiny_config,
    train_tiny,
    write_ini,
)

import diffusiontools as dt
from diffusiontools import cli, progress_bar
from diffusiontools.training import checkpoint as ckpt_io
from diffusiontools.training.run_folder import read_metrics
from diffusiontools.training.training_data import load_training_data
from diffusiontools.training.validation import validation_loss


def test_training_lowers_the_loss():
    rows = losses(reference_run())
    assert [step for step, _, _ in rows] == [STEPS_PER_EPOCH * (e + 1) for e in range(EPOCHS)]
    (_, train_first, val_first), (_, train_last, val_last) = rows[0], rows[-1]
    assert train_last < 0.6 * train_first
    assert val_last < 0.8 * val_first


def test_resume_after_whole_epochs_equals_the_straight_run(tmp_path):
    run = tmp_path / "run"
    train_tiny(run, "training.epochs=1")
    assert len(read_metrics(run)) == 1
    ini = write_ini(tmp_path)
    with_more_epochs = ["--set", "training.epochs=3", "--set", "training.device=cpu"]
    assert cli.main(["train", str(ini), "--out", str(run), "--resume", *with_more_epochs]) == 0
    assert losses(run) == losses(reference_run())  # exact: same order of float operations
    assert_same_final_weights(run, reference_run())


@pytest.mark.parametrize("stop_at", [STEPS_PER_EPOCH, STEPS_PER_EPOCH + 5])
def test_resume_mid_epoch_equals_the_straight_run(tmp_path, monkeypatch, stop_at):
    """SIGTERM during step ``stop_at``: the step finishes, latest.pt records the position inside
    the epoch, TrainingStopped is raised (the CLI: exit 143); --resume replays the epoch's
    permutation and skips what is done."""

    def sigterm_at(step, loss):
        if step == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return loss

    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        on_training_steps(patch, sigterm_at)
        with pytest.raises(KeyboardInterrupt) as stopped:  # TrainingStopped, after a checkpoint
            train_tiny(run)
    assert stopped.value.signum == signal.SIGTERM
    ckpt = ckpt_io.load_checkpoint(ckpt_io.latest_path(run))
    epoch = (stop_at - 1) // STEPS_PER_EPOCH  # step 12 is the last of epoch 0: batch 12, not 0
    assert (ckpt["epoch"], ckpt["batch"]) == (epoch, stop_at - epoch * STEPS_PER_EPOCH)
    assert ckpt["step"] == stop_at
    assert str(stopped.value) == (
        f"stopped by signal 15 at step {stop_at}; checkpoint written to "
        f"{ckpt_io.latest_path(run)}; continue with resume=True"
    )

    train_tiny(run, resume=True)
    assert losses(run) == losses(reference_run())
    assert_same_final_weights(run, reference_run())


def test_the_cli_says_once_where_a_training_stopped_and_how_to_continue(
    tmp_path, monkeypatch, capsys
):
    """The trainer logs where it stopped; ``train`` adds its own flag for going on (a caller such
    as ``reproduce`` adds its own way instead)."""

    def sigterm_at(step, loss):
        if step == 5:
            os.kill(os.getpid(), signal.SIGTERM)
        return loss

    on_training_steps(monkeypatch, sigterm_at)
    run = tmp_path / "run"
    assert cli.main(["train", str(write_ini(tmp_path)), "--out", str(run)]) == 143
    err = capsys.readouterr().err
    latest = ckpt_io.latest_path(run)
    assert f"stopped by signal 15 at step 5; checkpoint written to {latest}\n" in err
    assert err.endswith("continue with --resume\n") and err.count("resume") == 1


def test_the_progress_bar_loss_after_a_mid_epoch_resume_is_the_mean_of_the_new_steps(
    tmp_path, monkeypatch
):
    """Stopped after 5 of epoch 0's 12 steps and resumed: the bar's loss at the epoch's end is the
    mean of the 7 steps run since (before: their sum over 12 slots, 5 of them empty zeros, so
    7/12 of it)."""
    run = train_tiny(tmp_path / "run", "training.max_steps=5")
    shown, step_losses = [], []

    class RecordingBar(progress_bar.tqdm):
        def set_postfix(self, **kwargs):
            shown.append(kwargs["loss"])
            super().set_postfix(**kwargs)

    def record(step, loss):
        step_losses.append(float(loss.detach()))
        return loss

    monkeypatch.setattr(progress_bar, "tqdm", RecordingBar)
    on_training_steps(monkeypatch, record)
    train_tiny(run, "training.epochs=1", resume=True)
    assert len(step_losses) == STEPS_PER_EPOCH - 5 == 7
    assert shown[0] == f"{sum(step_losses) / 7:.4f}"


def test_max_steps_mid_epoch_stops_there_and_resuming_adds_nothing(tmp_path):
    """Stopping inside epoch 0 (5 of 12 batches) does not count epoch 0 as finished: no metrics
    row, no epoch checkpoint; latest.pt holds the position inside the epoch."""
    run = train_tiny(tmp_path / "run", "training.max_steps=5")
    assert not (run / "metrics.csv").exists()
    assert ckpt_io.list_epochs(run) == []
    latest = ckpt_io.load_checkpoint(ckpt_io.latest_path(run))
    assert (latest["epoch"], latest["batch"], latest["step"]) == (0, 5, 5)
    train_tiny(run, "training.max_steps=5", resume=True)
    assert (ckpt_io.load_checkpoint(ckpt_io.latest_path(run))["step"]) == 5
    assert not (run / "metrics.csv").exists()


def test_a_crash_mid_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "latest.pt"
    ckpt_io.save_atomic({"format_version": 1, "model": {"w": torch.ones(3)}}, path)
    real_save = torch.save

    def write_half_then_crash(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer)
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise RuntimeError("simulated crash mid-write")

    monkeypatch.setattr(torch, "save", write_half_then_crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        ckpt_io.save_atomic({"format_version": 1, "model": {"w": torch.zeros(3)}}, path)
    assert torch.equal(ckpt_io.load_checkpoint(path)["model"]["w"], torch.ones(3))
    assert [p.name for p in path.parent.iterdir()] == ["latest.pt"]  # no temporary left behind


def test_the_trainers_cpu_adam_computes_torchs_plain_adam_bit_for_bit():
    """The trainer's multi-tensor Adam on the CPU is a speed-up only: after 3 steps the weights
    equal those of torch's default per-tensor Adam (the notebook's) exactly."""
    from diffusiontools.config import ModelConfig
    from diffusiontools.models import make_network
    from diffusiontools.training.trainer import _make_optimizer

    model = ModelConfig(network="cnn", n_hidden=(4, 4))
    ours, plain = (
        make_network(model, seed=0, shape=(1, 28, 28)),
        make_network(model, seed=0, shape=(1, 28, 28)),
    )
    optimizers = [
        _make_optimizer(ours, tiny_config(), torch.device("cpu")),
        torch.optim.Adam(plain.parameters(), lr=tiny_config().training.lr, foreach=False),
    ]
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        x, t = torch.randn(4, 1, 28, 28, generator=generator), torch.rand(4, generator=generator)
        for net, optimizer in zip((ours, plain), optimizers, strict=True):
            optimizer.zero_grad()
            net(x, t).square().mean().backward()
            optimizer.step()
    assert all(
        torch.equal(a, b) for a, b in zip(ours.parameters(), plain.parameters(), strict=True)
    )
    assert not torch.equal(
        next(ours.parameters()), next(make_network(model, seed=0, shape=(1, 28, 28)).parameters())
    )


def test_the_validation_loss_says_which_weights_and_how_many_images(tmp_path):
    """The reference run keeps an EMA (decay 0.9): ``val_loss`` is the EMA weights' (the ones
    that sample), ``val_loss_raw`` the raw weights' (the ones the training loss is of), each
    over 2 full batches of 16 of its 52 validation images (training.val_batches = 2): 32. The
    curve said "validation (fixed noise)" beside the raw training loss, and the docstring
    "the validation split", while it scored the EMA weights on 32 images."""
    run, cpu = reference_run(), torch.device("cpu")
    last = read_metrics(run)[-1]
    assert [row["val_images"] for row in read_metrics(run)] == [32.0] * EPOCHS
    config = tiny_config()
    data = load_training_data(config, cpu)
    for ema, key in ((True, "val_loss"), (False, "val_loss_raw")):
        model = dt.load(run, device="cpu", ema=ema)
        # the same weights, batches and noise on one thread: equal but for float32 summation
        loss = validation_loss(model.process, model.net, data, config, cpu)
        assert loss == pytest.approx(last[key], rel=1e-5)
    assert last["val_loss"] != pytest.approx(last["val_loss_raw"], rel=1e-3)  # EMA lags
    plain = train_tiny(tmp_path / "plain", "training.ema_decay=0", "training.epochs=1")
    (row,) = read_metrics(plain)
    assert "val_loss_raw" not in row and row["val_images"] == 32.0


def test_the_last_line_counts_one_step_as_one_step(tmp_path, caplog):
    with caplog.at_level("INFO", logger="diffusiontools"):
        run = train_tiny(tmp_path / "one", "training.max_steps=1")
    assert f"done: {run} (1 step)" in caplog.messages


def test_a_resume_names_the_settings_it_takes_from_the_config_given_now(tmp_path, caplog):
    run = train_tiny(tmp_path / "run", "training.max_steps=1", "training.val_batches=1")
    with caplog.at_level("INFO", logger="diffusiontools"):
        train_tiny(run, "training.max_steps=2", resume=True)  # val_batches: tiny's 2
    assert (
        "resumed with settings other than the run's: training.max_steps 1 -> 2; "
        "training.val_batches 1 -> 2" in caplog.messages
    )
