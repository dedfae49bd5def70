"""No lost work: refusing to clobber a run, the one-trainer lock, signals, SIGKILL at random
moments, a non-finite loss and a full disk. Each ends with loadable checkpoints and, where the run
can go on, the exact losses and weights of an uninterrupted run."""

from __future__ import annotations

import errno
import io
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from tiny_runs import (  # noqa: F401 (single_thread: autouse fixture)
    EPOCHS,
    STEPS_PER_EPOCH,
    assert_same_final_weights,
    child_env,
    copy_run,
    losses,
    on_training_steps,
    reference_run,
    single_thread,
    train_tiny,
    write_ini,
)
from tqdm import tqdm

from diffusiontools import checkpoint as ckpt_io
from diffusiontools import cli
from diffusiontools.errors import UserError
from diffusiontools.processes.gaussian import GaussianDiffusion
from diffusiontools.run_folder import RunLock


def checkpoint_files(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run / ckpt_io.CHECKPOINT_DIR).iterdir())}


def assert_every_checkpoint_loads(run: Path) -> None:
    folder = run / ckpt_io.CHECKPOINT_DIR
    assert not list(folder.glob(".*")), "temporary files left behind"
    for path in folder.iterdir():
        ckpt_io.load_checkpoint(path)


def back_to_epoch_0(tmp_path: Path) -> Path:
    """A copy of the reference run as it stood after epoch 0 (step 12)."""
    run = copy_run(reference_run(), tmp_path / "run")
    folder = run / ckpt_io.CHECKPOINT_DIR
    shutil.copy(folder / "epoch_0000.pt", folder / ckpt_io.LATEST)
    for epoch in (1, 2):
        ckpt_io.epoch_path(run, epoch).unlink()
    return run


def test_training_into_a_run_needs_resume_or_overwrite(tmp_path):
    run = copy_run(reference_run(), tmp_path / "run")
    before = checkpoint_files(run)
    with pytest.raises(UserError, match="already holds a run; pass --resume .* or --overwrite"):
        train_tiny(run)
    assert checkpoint_files(run) == before
    train_tiny(run, "training.epochs=1", overwrite=True)
    assert ckpt_io.list_epochs(run) == [0]
    assert losses(run) == losses(reference_run())[:1]


def test_the_lock_stops_a_second_training_and_its_overwrite(tmp_path):
    run = copy_run(reference_run(), tmp_path / "run")
    before = checkpoint_files(run)
    with RunLock(run):
        for flags in ({"resume": True}, {"overwrite": True}):
            with pytest.raises(UserError, match="another training is running in"):
                train_tiny(run, **flags)
    assert checkpoint_files(run) == before  # --overwrite deleted nothing under the lock


def test_sigint_finishes_the_step_checkpoints_exits_130_and_resumes_exactly(tmp_path):
    """A real ``python -m diffusiontools train`` process, interrupted during epoch 1."""
    run = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "diffusiontools",
        "train",
        str(write_ini(tmp_path)),
        "--out",
        str(run),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=child_env()
    )
    stderr = io.BytesIO()
    reader = threading.Thread(target=lambda: shutil.copyfileobj(process.stderr, stderr, 1))
    reader.start()
    deadline = time.monotonic() + 120
    while b"epoch 0: train" not in stderr.getvalue():  # epoch 0 is done: now inside epoch 1
        assert process.poll() is None and time.monotonic() < deadline, stderr.getvalue()
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 128 + signal.SIGINT
    reader.join()
    assert b"stopped by signal 2" in stderr.getvalue() and b"Traceback" not in stderr.getvalue()

    ckpt = ckpt_io.load_checkpoint(ckpt_io.latest_path(run))
    assert 12 < ckpt["step"] < 36 and ckpt["epoch"] == 1 and ckpt["batch"] > 0  # mid-epoch
    train_tiny(run, resume=True)
    assert losses(run) == losses(reference_run())
    assert_same_final_weights(run, reference_run())


def fork_cli(argv: list[str]) -> tuple[int, int]:
    """Run ``cli.main(argv)`` in a forked child (no interpreter start-up).

    Returns the pid and a pipe that the child writes one byte to at each training step, so that
    a kill can be aimed at a step rather than timed against an unknown start-up.
    """
    steps_read, steps_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 99
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            torch.set_num_threads(1)
            # tqdm's default lock is a multiprocessing semaphore, shared with forked siblings:
            # one killed while holding it would block this child forever. Give it its own lock.
            tqdm.set_lock(threading.RLock())
            original = GaussianDiffusion.loss

            def loss(self, *args, **kwargs):
                if torch.is_grad_enabled():  # not validation
                    os.write(steps_write, b"x")
                return original(self, *args, **kwargs)

            GaussianDiffusion.loss = loss
            code = cli.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 98
        finally:
            os._exit(code)
    os.close(steps_write)
    return pid, steps_read


def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_run(tmp_path):
    """SIGKILL three times at seeded random delays (mid-step, mid-validation or mid-write alike),
    each time continuing with --resume; the work since the last checkpoint is redone."""
    reference = reference_run()  # trained before forking: children inherit the loaded data
    ini, run = str(write_ini(tmp_path)), tmp_path / "run"
    rng, killed = random.Random(1234), []
    for _ in range(3):
        latest = ckpt_io.latest_path(run)
        done = ckpt_io.load_checkpoint(latest)["step"] if latest.is_file() else 0
        # Killed before its first checkpoint, a run has nothing to resume: start it afresh.
        flag = "--resume" if latest.is_file() else "--overwrite"
        pid, steps = fork_cli(["train", ini, "--out", str(run), flag])
        # Aim at a random step, then a random moment after it: mid-step, or (after an epoch's
        # last step) mid-validation, mid-plot or mid-write of a checkpoint.
        for _ in range(rng.randint(1, EPOCHS * STEPS_PER_EPOCH - done)):
            ready, _, _ = select.select([steps], [], [], 120)
            assert ready, "the training child made no step for 2 minutes"
            if not os.read(steps, 1):
                break  # it finished (or failed) before that step
        time.sleep(rng.uniform(0.0, 0.3))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(steps)
        killed.append(os.WIFSIGNALED(status))
    assert killed[0], "the first run finished before its kill: nothing was tested"
    resume = ckpt_io.latest_path(run).is_file()
    train_tiny(run, resume=resume, overwrite=not resume)
    assert_every_checkpoint_loads(run)
    assert losses(run) == losses(reference)
    assert_same_final_weights(run, reference)


def test_a_non_finite_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(
    tmp_path, monkeypatch, capsys
):
    run = back_to_epoch_0(tmp_path)
    before = checkpoint_files(run)
    on_training_steps(monkeypatch, lambda step, loss: loss * float("nan") if step >= 3 else loss)
    argv = ["train", str(write_ini(tmp_path)), "--out", str(run), "--resume"]
    assert cli.main(argv) == 2
    (error,) = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert error.startswith("error: the training loss became non-finite at step 15 (epoch 1)")
    assert checkpoint_files(run) == before
    assert_every_checkpoint_loads(run)


def test_a_full_disk_keeps_the_previous_checkpoint_and_says_so(tmp_path, monkeypatch, capsys):
    run = back_to_epoch_0(tmp_path)
    before = checkpoint_files(run)
    real_save = torch.save

    def disk_full(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer)
        f.write(buffer.getvalue()[:1000])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ckpt_io.torch, "save", disk_full)
    argv = ["train", str(write_ini(tmp_path)), "--out", str(run), "--resume"]
    assert cli.main(argv) == 2
    (error,) = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert error.startswith(f"error: could not write checkpoint {ckpt_io.epoch_path(run, 1)}")
    assert "No space left on device" in error and "previous checkpoint" in error
    assert checkpoint_files(run) == before
    assert_every_checkpoint_loads(run)
