"""No lost work: refusing to clobber a run, the one-trainer lock, signals, SIGKILL at random
moments, a non-finite loss and a full disk. Each ends with loadable checkpoints and, where the run
can go on, the exact losses and weights of an uninterrupted run."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import random
import select
import shutil
import signal
import sys
import threading
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

from diffusiontools import cli
from diffusiontools.diffusion.gaussian import GaussianDiffusion
from diffusiontools.errors import UserError
from diffusiontools.training import checkpoint as ckpt_io
from diffusiontools.training import epoch_end, run_folder, training_data
from diffusiontools.training.run_folder import RunLock


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
    with pytest.raises(
        UserError, match="already holds a run; pass resume=True .* or overwrite=True"
    ):
        train_tiny(run)
    assert checkpoint_files(run) == before
    train_tiny(run, "training.epochs=1", overwrite=True)
    assert ckpt_io.list_epochs(run) == [0]
    assert losses(run) == losses(reference_run())[:1]


def a_run(run: Path) -> None:
    copy_run(reference_run(), run)


def a_used_run(run: Path) -> None:
    """A run whose folder a training has locked (the lock file stays after it)."""
    copy_run(reference_run(), run)
    (run / run_folder.LOCK_FILE).write_text("")


def a_file(run: Path) -> None:
    run.write_text("not a folder")


def nothing(run: Path) -> None:
    pass


def users_files(run: Path) -> None:
    """The user's own folder, which holds their config.ini and a samples folder of theirs."""
    (run / "samples").mkdir(parents=True)
    (run / "config.ini").write_text("[training]\nepochs = 3\n")


def users_edited_copy(run: Path) -> None:
    """A run's config.ini, copied into the user's folder and edited (training.lr): theirs now,
    which a training into the folder wrote over."""
    run.mkdir()
    text = (reference_run() / "config.ini").read_text()
    assert "\nlr = 0.002\n" in text
    (run / "config.ini").write_text(text.replace("\nlr = 0.002\n", "\nlr = 0.003\n"))


def a_run_with_an_edited_config(run: Path) -> None:
    """A run whose config.ini the user edited: --resume wrote the run's settings over it,
    --overwrite deleted it."""
    copy_run(reference_run(), run)
    text = (run / "config.ini").read_text()
    (run / "config.ini").write_text(text.replace("\nlr = 0.002\n", "\nlr = 0.003\n"))


def a_killed_runs_config(run: Path) -> None:
    """The config.ini a run writes first, alone: the run was killed before its first step."""
    run.mkdir()
    shutil.copyfile(reference_run() / "config.ini", run / "config.ini")


def users_metrics(run: Path) -> None:
    run.mkdir()
    (run / "metrics.csv").write_text("step,loss\n1,0.5\n")


def an_export(run: Path) -> None:
    from diffusiontools.training.export import write_export
    from diffusiontools.training.trained_model import load_model

    write_export(load_model(reference_run(), None, torch.device("cpu")), run, "safetensors")


# Refusals that need no data: (the folder, train's flags, overrides, how the refusal begins).
REFUSED_BEFORE_THE_DATA = [
    (a_run, {}, (),
     "{run} already holds a run; pass resume=True to continue it or overwrite=True to replace it"),
    (a_used_run, {}, (),
     "{run} already holds a run; pass resume=True to continue it or overwrite=True to replace it"),
    (a_file, {}, (), "run_dir={run} is a file; name a folder for the run"),
    (a_file, {"overwrite": True}, (), "run_dir={run} is a file; name a folder for the run"),
    (nothing, {"resume": True}, (),
     "resume=True given but {run} holds no checkpoint to resume from"),
    (a_used_run, {"resume": True}, ("training.lr=0.5",),
     "resume=True: the run in {run} was trained with other settings: training.lr "),
    (a_run, {"resume": True}, ("training.epochs=2",),
     "training.epochs=2 is below the 3 epochs this run has finished; give at least 3"),
    (users_files, {}, (), "{run} holds config.ini, samples, which no run wrote: a training would "
     "write its own files under those names; train into another folder"),
    (users_files, {"overwrite": True}, (), "{run} holds config.ini, samples, which no run wrote"),
    (an_export, {"overwrite": True}, (), "{run} holds an export (diffusiontools.json and the "
     "weights it describes), which a training would mix its files into: train into another "
     "folder"),
    # a metrics.csv of the user's, beside no config.ini a run wrote: not a killed run, whose
    # overwrite would delete it
    (users_metrics, {}, (), "{run} holds metrics.csv, which no run wrote"),
    (users_edited_copy, {}, (), "{run}/config.ini was edited after its run wrote it (its "
     "header's sha256 no longer matches): a training would write the run's settings over it, "
     "or delete it with overwrite=True; move it out of {run} first"),
    (a_run_with_an_edited_config, {"resume": True}, (), "{run}/config.ini was edited after"),
    (a_run_with_an_edited_config, {"overwrite": True}, (), "{run}/config.ini was edited after"),
    (a_killed_runs_config, {"resume": True}, (), "resume=True given but {run} holds no "
     "checkpoint to resume from (only the config.ini of a run killed before its first step); "
     "start it again without resume=True"),
    (users_metrics, {"overwrite": True}, (), "{run} holds metrics.csv, which no run wrote"),
]  # fmt: skip


@pytest.mark.parametrize("folder, flags, overrides, refusal", REFUSED_BEFORE_THE_DATA)
def test_a_refusal_that_needs_no_data_comes_before_the_data_loads(
    folder, flags, overrides, refusal, tmp_path, monkeypatch
):
    """Such a refusal came only after the data had loaded (and, for MNIST, maybe downloaded)."""

    run = tmp_path / "run"
    folder(run)  # before the data loader goes: the reference run is trained on first use

    def load_data(*args, **kwargs):
        raise AssertionError("the data was loaded before the refusal")

    monkeypatch.setattr(training_data, "load_data", load_data)
    with pytest.raises(UserError) as refused:
        train_tiny(run, *overrides, **flags)
    assert str(refused.value).startswith(refusal.format(run=run))
    assert run.exists() == (folder is not nothing)  # a refused run creates no folder


def test_a_run_killed_before_its_first_checkpoint_is_sent_to_overwrite_only(tmp_path):
    """SIGKILL while the first checkpoint was written left metrics.csv and a .tmp file: resume
    said "no checkpoint", a plain run said "pass --resume", each sending the user to the other."""
    run = copy_run(reference_run(), tmp_path / "run")
    shutil.rmtree(run / ckpt_io.CHECKPOINT_DIR)
    (run / ckpt_io.CHECKPOINT_DIR).mkdir()
    (run / ckpt_io.CHECKPOINT_DIR / ".epoch_0000.pt.x1y2.tmp").write_bytes(b"half")
    killed = "(only a run's files: a run killed before it wrote its first); start it again with"
    with pytest.raises(UserError) as e:
        train_tiny(run, resume=True)
    assert str(e.value) == (
        f"resume=True given but {run} holds no checkpoint to resume from {killed} overwrite=True"
    )
    with pytest.raises(UserError) as e:
        train_tiny(run)
    assert str(e.value) == (
        f"{run} holds a run's files but no checkpoint (a run killed before it wrote its first): "
        "pass overwrite=True to start it again"
    )
    train_tiny(run, "training.epochs=1", overwrite=True)
    assert ckpt_io.list_epochs(run) == [0]


def test_a_run_killed_before_its_first_epoch_ended_is_trained_again_in_place(tmp_path):
    """Its config.ini and data.json are a run's (config.ini says so), not the user's files."""
    run = copy_run(reference_run(), tmp_path / "run")
    for name in (ckpt_io.CHECKPOINT_DIR, "tensorboard"):
        shutil.rmtree(run / name, ignore_errors=True)
    for name in ("metrics.csv", "learning_curve.png"):
        (run / name).unlink(missing_ok=True)
    assert sorted(p.name for p in run.iterdir()) == ["config.ini", "data.json"]
    train_tiny(run, "training.epochs=1")
    assert losses(run) == losses(reference_run())[:1]


def test_the_lock_stops_a_second_training_and_its_overwrite(tmp_path):
    run = copy_run(reference_run(), tmp_path / "run")
    before = checkpoint_files(run)
    with RunLock(run):
        for flags in ({"resume": True}, {"overwrite": True}):
            with pytest.raises(UserError, match="another training is running in"):
                train_tiny(run, **flags)
    assert checkpoint_files(run) == before  # --overwrite deleted nothing under the lock


# Events a forked training child reports, each before it goes on: a training step (inside the
# loss, before the forward pass), a validation pass, a checkpoint file written but not yet
# renamed into place.
STEP, VALIDATION, WRITE = b"s", b"v", b"w"


def fork_cli(argv: list[str], late_stop: bool = False) -> tuple[int, int, int]:
    """Run ``cli.main(argv)`` in a forked child (no interpreter start-up) that stops at every
    event (STEP, VALIDATION, WRITE): it writes the event's byte to a pipe and waits for one byte
    back. Kills are aimed at events, never at delays, so they land at the same point on any
    machine. With ``late_stop``, the child runs the process entry ``cli.run(argv)`` instead and
    sends itself SIGTERM as it exits. Returns the pid, the events pipe to read and the pipe to
    write go-aheads to.
    """
    events_read, events_write = os.pipe()
    go_read, go_write = os.pipe()
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

            def event(kind: bytes) -> None:
                os.write(events_write, kind)
                os.read(go_read, 1)

            loss, validation, save = GaussianDiffusion.loss, epoch_end.validation_loss, torch.save

            def loss_with_event(self, *args, **kwargs):
                if torch.is_grad_enabled():  # not validation
                    event(STEP)
                return loss(self, *args, **kwargs)

            def validation_with_event(*args, **kwargs):
                event(VALIDATION)
                return validation(*args, **kwargs)

            def save_with_event(obj, f, *args, **kwargs):
                save(obj, f, *args, **kwargs)
                event(WRITE)

            GaussianDiffusion.loss = loss_with_event
            epoch_end.validation_loss = validation_with_event
            ckpt_io.torch.save = save_with_event
            if late_stop:

                def exit_after_a_late_stop(status: int) -> None:
                    os.kill(os.getpid(), signal.SIGTERM)  # a second request, as it exits
                    os._exit(status)

                sys.exit = exit_after_a_late_stop
                cli.run(argv)
            code = cli.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 98
        finally:
            os._exit(code)
    os.close(events_write)
    os.close(go_read)
    return pid, events_read, go_write


def run_until(events: int, go: int, kind: bytes, count: int, action) -> bool:
    """Let the child run until its ``count``-th event of ``kind``, call ``action()`` while the
    child waits there, then let it go on. Returns False if the child ended before that event."""
    seen = 0
    while seen < count:
        ready, _, _ = select.select([events], [], [], 300)
        assert ready, "the training child reported nothing for 5 minutes"
        got = os.read(events, 1)
        if not got:
            return False
        seen += got == kind
        if seen == count:
            action()
        with contextlib.suppress(BrokenPipeError):  # the action may have killed it
            os.write(go, b"g")
    return True


def finish(pid: int, events: int, go: int) -> int:
    """Let the child run to its end; returns its wait status."""
    while os.read(events, 1):
        with contextlib.suppress(BrokenPipeError):
            os.write(go, b"g")
    _, status = os.waitpid(pid, 0)
    os.close(events), os.close(go)
    return status


def test_sigint_finishes_the_step_checkpoints_exits_130_and_resumes_exactly(tmp_path):
    """SIGINT arrives during step 15 (the third of epoch 1): that step finishes, a checkpoint at
    step 15 is written, the exit status is 128 + 2, and --resume ends as the uninterrupted run."""
    reference = reference_run()  # trained before forking: children inherit the loaded data
    run = tmp_path / "run"
    pid, events, go = fork_cli(["train", str(write_ini(tmp_path)), "--out", str(run)])
    assert run_until(events, go, STEP, 15, lambda: os.kill(pid, signal.SIGINT))
    status = finish(pid, events, go)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 128 + signal.SIGINT

    ckpt = ckpt_io.load_checkpoint(ckpt_io.latest_path(run))
    assert (ckpt["epoch"], ckpt["batch"], ckpt["step"]) == (1, 3, 15)
    assert [r[0] for r in losses(run)] == [12]  # epoch 1 is not counted as finished
    train_tiny(run, resume=True)
    assert losses(run) == losses(reference)
    assert_same_final_weights(run, reference)


def test_a_stop_request_while_the_process_exits_leaves_the_status_it_reported(tmp_path):
    """SIGINT during step 15 stops the training (its messages say signal 2); a SIGTERM while
    the interpreter exits (torch's teardown takes up to a second) leaves the status 130 instead
    of killing the process by SIGTERM."""
    pid, events, go = fork_cli(
        ["train", str(write_ini(tmp_path)), "--out", str(tmp_path / "run")], late_stop=True
    )
    assert run_until(events, go, STEP, 15, lambda: os.kill(pid, signal.SIGINT))
    status = finish(pid, events, go)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 128 + signal.SIGINT


def test_sigkill_at_random_events_then_resume_gives_the_uninterrupted_run(tmp_path):
    """SIGKILL three times, each at a seeded random event (inside a step, inside validation, or
    between writing a checkpoint file and renaming it), each time continuing with --resume; the
    work since the last checkpoint is redone, and the end equals the uninterrupted run."""
    reference = reference_run()  # trained before forking: children inherit the loaded data
    ini, run = str(write_ini(tmp_path)), tmp_path / "run"
    rng, aimed = random.Random(1234), []
    for _ in range(3):
        latest = ckpt_io.latest_path(run)
        done = ckpt_io.load_checkpoint(latest)["step"] if latest.is_file() else 0
        # Killed before its first checkpoint, a run has nothing to resume: start it afresh.
        flag = "--resume" if latest.is_file() else "--overwrite"
        pid, events, go = fork_cli(["train", ini, "--out", str(run), flag])
        epochs_left = EPOCHS - done // STEPS_PER_EPOCH  # each validates and writes twice
        kind = rng.choice([STEP, VALIDATION, WRITE])
        left = {STEP: EPOCHS * STEPS_PER_EPOCH - done, VALIDATION: epochs_left}
        count = rng.randint(1, left.get(kind, 2 * epochs_left))
        aimed.append((kind, count))
        assert run_until(events, go, kind, count, lambda pid=pid: os.kill(pid, signal.SIGKILL))
        status = finish(pid, events, go)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert {kind for kind, _ in aimed} == {STEP, VALIDATION, WRITE}, aimed  # seed 1234 hits all
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
    assert error == (
        "error: the training loss became non-finite at step 15 (epoch 1); the last good "
        f"checkpoint in {run} is kept; try a lower training.lr"
    )
    assert checkpoint_files(run) == before
    assert_every_checkpoint_loads(run)


def test_a_non_finite_loss_before_the_first_checkpoint_claims_none(tmp_path, monkeypatch, capsys):
    """It said "the last good checkpoint in RUN is kept" of a run that had none."""
    run = tmp_path / "run"
    on_training_steps(monkeypatch, lambda step, loss: loss * float("nan") if step >= 3 else loss)
    assert cli.main(["train", str(write_ini(tmp_path)), "--out", str(run)]) == 2
    (error,) = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert error.startswith(
        f"error: the training loss became non-finite at step 3 (epoch 0); {run} holds no "
        "checkpoint yet; try a lower"
    )


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


def test_a_run_config_is_known_by_its_sealed_header():
    """The header's digest seals the lines below it; an earlier version's header has none and
    counts as a run's as before."""
    from diffusiontools.config import is_run_config_text

    text = (reference_run() / "config.ini").read_text()
    header = text.partition("\n")[0]
    assert header.startswith("# resolved config of run 'tiny' [sha256 ") and len(header) == 57
    assert is_run_config_text(text)
    assert not is_run_config_text(text.replace("epochs = 3", "epochs = 4"))
    assert not is_run_config_text(text + "# my note\n")
    old = Path(__file__).parent / "fixtures" / "old_runs" / "9d1e346_gaussian" / "config.ini"
    assert is_run_config_text(old.read_text())
    assert not is_run_config_text("[training]\nepochs = 3\n")


def test_a_config_named_with_a_newline_writes_a_one_line_header(tmp_path):
    """train $'nl\\nname.ini' split the header in two: the run's config.ini did not parse, and
    its seal read as an unsealed (earlier version's) header."""
    from diffusiontools.config import Config, is_run_config_text
    from diffusiontools.training.run_config import to_ini

    text = to_ini(Config(name="nl\nname"))
    assert text.startswith("# resolved config of run 'nl\\nname' [sha256 ")
    assert is_run_config_text(text)
    assert not is_run_config_text(text.replace("lr = ", "lr = 9"))


def test_a_run_killed_after_its_config_starts_again_without_flags(tmp_path):
    run = tmp_path / "run"
    a_killed_runs_config(run)
    train_tiny(run, "training.epochs=1")
    assert ckpt_io.list_epochs(run) == [0]
    assert losses(run) == losses(reference_run())[:1]
