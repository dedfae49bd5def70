"""``reproduce --jobs N``: the study's runs trained side by side, one process each, equal the
runs trained one at a time; a stop or a failure leaves every started run checkpointed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from tiny_runs import single_thread  # noqa: F401  (autouse: one thread per test)

from diffusiontools.cli import main
from diffusiontools.config import RUN_CONFIG_HEADER
from diffusiontools.errors import UserError
from diffusiontools.reproduce.pipeline import reproduce, train_all
from diffusiontools.reproduce.scales import get_scale
from diffusiontools.reproduce.side_by_side import log_path, train_side_by_side
from diffusiontools.reproduce.study import Study, study_config
from diffusiontools.reproduce.study_runs import train_run
from diffusiontools.training.checkpoint import load_checkpoint
from diffusiontools.training.run_folder import RunFolder, RunLock, read_metrics
from diffusiontools.training.trainer import train

SMOKE = get_scale("smoke")


@pytest.mark.slow
def test_runs_trained_side_by_side_equal_runs_trained_one_at_a_time(tmp_path):
    study = Study(tmp_path / "study", SMOKE, torch.device("cpu"), 0)
    handed = []
    train_side_by_side(study, ["model1", "custom1"], 2, handed.append)
    assert sorted(handed) == ["custom1", "model1"]
    recorded = json.loads((study.out / "reproduce.json").read_text())
    for name in ("model1", "custom1"):
        # one thread here and in each process (1 // 2 rounds up to 1): the same sums in the
        # same order, so the weights agree bit for bit (as tiny_runs' subprocess runs do)
        alone = tmp_path / f"alone_{name}"
        train(study_config(name, SMOKE), alone)
        side = load_checkpoint(RunFolder(study.out / "runs" / name).latest)
        one = load_checkpoint(RunFolder(alone).latest)
        for key, value in one["model"].items():
            assert torch.equal(side["model"][key], value), (name, key)
        (machine,) = recorded["machines"][f"train {name}"]
        assert machine.endswith(
            "1 torch thread; torch " + torch.__version__ + "; 2 trainings side by side"
        )
        assert recorded["stages"][f"train {name}"] > 0
        assert f"train {name}: " in log_path(study.out, name).read_text()
    # trained runs are neither started nor timed again; the report model is exported
    study.run_names = lambda: ["model1", "custom1"]
    train_all(study, jobs=2)
    after = json.loads((study.out / "reproduce.json").read_text())["stages"]
    assert set(after) == {"train model1", "train custom1", "export model1", "export custom1"}
    assert after["train model1"] == recorded["stages"]["train model1"]
    assert (study.out / "models" / "model1" / "model.safetensors").is_file()


@pytest.mark.slow
def test_a_failed_run_is_named_alone_and_stops_the_study(tmp_path):
    study = Study(tmp_path, SMOKE, torch.device("cpu"), 0)
    broken = RunFolder(tmp_path / "runs" / "model2").latest
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError) as failed:
        train_side_by_side(study, ["model1", "model2", "custom1"], 2, lambda name: None)
    # model1, stopped (or finished) meanwhile, is no failure of its own
    assert str(failed.value).startswith("reproduce stage 'train model2' failed: checkpoint ")
    assert "is not a checkpoint" in str(failed.value) and "model1" not in str(failed.value)
    assert not (tmp_path / "runs" / "custom1").exists()  # not started after the failure
    state = tmp_path / "reproduce.json"  # absent where model1 was stopped before it began
    assert not state.is_file() or "train model2" not in json.loads(state.read_text())["stages"]


STOPPABLE = """
import dataclasses, logging, sys
import torch
from diffusiontools.reproduce.pipeline import reproduce
from diffusiontools.reproduce.scales import get_scale
from diffusiontools.training.signals import TrainingStopped
logging.basicConfig(level=logging.INFO, format="%(message)s")
long = dataclasses.replace(get_scale("smoke"), epochs=400)
try:
    reproduce(long, sys.argv[1], torch.device("cpu"), jobs=2)
except TrainingStopped as stopped:
    sys.exit(128 + stopped.signum)
"""


def start_stoppable(out):
    """A study of 400-epoch smoke runs, two side by side, in a process of its own and a process
    group of their own (as a terminal's job is); returns it once both trainings have written a
    checkpoint (so both are in their loops), and the checkpoints' paths."""
    env = {**os.environ, "OMP_NUM_THREADS": "2"}  # 2 // 2: one thread per training
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(STOPPABLE), str(out)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    latest = [RunFolder(out / "runs" / name).latest for name in ("model1", "model2")]
    until(lambda: all(path.is_file() for path in latest) or parent.poll() is not None)
    assert parent.poll() is None, parent.stderr.read()
    return parent, latest


def until(event, polls: int = 12_000) -> None:
    """Poll for ``event`` every 0.05 s (an interval, not a delay the outcome depends on); fail
    rather than hang after ``polls`` polls (10 minutes)."""
    for _ in range(polls):
        if event():
            return
        time.sleep(0.05)
    raise AssertionError("the awaited event never happened")


def lock_free(folder) -> bool:
    try:
        with RunLock(folder):
            return True
    except UserError:
        return False


@pytest.mark.slow
def test_trainings_whose_parent_is_killed_stop_with_a_checkpoint(tmp_path):
    out = tmp_path / "study"
    parent, latest = start_stoppable(out)
    parent.kill()  # SIGKILL: no handler runs in the parent
    parent.wait()
    for name in ("model1", "model2"):  # each training's lock goes when its process ends
        until(lambda name=name: lock_free(out / "runs" / name))
    for path in latest:
        assert 1 <= load_checkpoint(path)["epoch"] < 400
    for name in ("model1", "model2"):  # the trainer's word, without train's --resume
        log = log_path(out, name).read_text()
        assert "stopped by signal 15" in log and "--resume" not in log


@pytest.mark.slow
def test_a_training_killed_by_sigkill_is_named_and_leaves_no_warning_behind(tmp_path):
    """The other training stops with its checkpoint; the console shows the failure in words,
    not Python's 'leaked semaphore' warning (a progress bar's lock the killed process held)."""
    out = tmp_path / "study"
    parent, latest = start_stoppable(out)
    pid = int(RunFolder(out / "runs" / "model1").lock.read_text())
    os.kill(pid, signal.SIGKILL)
    assert parent.wait() == 1
    err = parent.stderr.read()
    assert "reproduce stage 'train model1' failed: its process was killed by signal 9" in err
    assert "leaked" not in err and "resource_tracker" not in err
    assert 1 <= load_checkpoint(latest[1])["epoch"] < 400  # model2 stopped with a checkpoint


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_stops_every_training_with_a_checkpoint_and_records_its_time(
    tmp_path, signum
):
    """SIGTERM to the parent alone (a kill), or SIGINT to the whole job (Ctrl-C at a terminal:
    the children get it and then the parent's SIGTERM): every log names the signal sent."""
    out = tmp_path / "study"
    parent, latest = start_stoppable(out)
    if signum == signal.SIGINT:
        os.killpg(parent.pid, signum)
    else:
        parent.send_signal(signum)
    assert parent.wait() == 128 + signum
    assert parent.stderr.read().endswith(
        f"reproduce: stopped by signal {int(signum)}; every training that had begun wrote a "
        "checkpoint: re-run the same command to resume\n"
    )
    for name in ("model1", "model2"):
        assert f"stopped by signal {int(signum)}" in log_path(out, name).read_text()
    recorded = json.loads((out / "reproduce.json").read_text())
    assert set(recorded["stages"]) == {"train model1", "train model2"}
    for path in latest:
        assert 1 <= load_checkpoint(path)["epoch"] < 400
    assert not (out / "runs" / "custom1").exists()


def test_jobs_must_be_a_positive_whole_number(tmp_path):
    for jobs in (0, -1, 1.5, True):
        with pytest.raises(UserError, match=f"jobs={jobs!r} is how many models train at once"):
            reproduce(SMOKE, tmp_path, torch.device("cpu"), jobs=jobs)
    assert not any(tmp_path.iterdir())  # refused before the folder is touched


def test_jobs_with_skip_training_is_refused_as_flags(tmp_path, capsys):
    code = main(
        [
            "reproduce",
            "--scale",
            "report",
            "--skip-training",
            "--jobs",
            "2",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert (
        "error: --jobs 2 sets how many models train at once, but --skip-training trains "
        "none; use --jobs 1" in err
    )
    assert not (tmp_path / "o").exists()


def test_a_second_reproduce_in_the_same_folder_is_refused(tmp_path):
    Study(tmp_path, SMOKE, torch.device("cpu"), 0)  # the folder of a study under way
    with RunLock(tmp_path, "reproduce"):
        with pytest.raises(UserError, match=f"another reproduce is running in {tmp_path} "):
            reproduce(SMOKE, tmp_path, torch.device("cpu"), jobs=2)


def test_an_overwrite_killed_before_its_first_checkpoint_is_put_right_and_started_again(
    tmp_path,
):
    run = RunFolder(tmp_path / "model1")
    run.previous.mkdir(parents=True)  # the killed run's files, moved aside by the restart
    (run.previous / "config.ini").write_text(f"{RUN_CONFIG_HEADER} 'model1'\n")
    (run.previous / "metrics.csv").write_text("epoch\n")
    run.config.write_text(f"{RUN_CONFIG_HEADER} 'model1'\n")  # the restart's first file
    train_run(run.path, "model1", SMOKE)
    assert [row["epoch"] for row in read_metrics(run.path)] == [0.0, 1.0]
    assert run.latest.is_file() and not run.previous.exists()


@pytest.mark.parametrize(
    "exitcode, log, checkpoint, words",
    [
        (-9, False, False, "its process was killed by signal 9 (SIGKILL) before it began (see "
         "the error above; from a script, a call with jobs > 1 must sit under if __name__ == "
         '"__main__":, since spawning a process imports the script again)'),
        (1, True, False, "its process ended with exit code 1 before saying why (see LOG); it "
         "had written no checkpoint yet: a re-run starts it again"),
        (-9, True, True, "its process was killed by signal 9 (SIGKILL) before saying why (see "
         "LOG); its last checkpoint is kept: re-run to resume"),
    ],
)  # fmt: skip
def test_a_training_process_that_died_is_explained(tmp_path, exitcode, log, checkpoint, words):
    from types import SimpleNamespace

    from diffusiontools.reproduce.side_by_side import _death

    study = Study(tmp_path, SMOKE, torch.device("cpu"), 0)
    if log:
        log_path(tmp_path, "model1").parent.mkdir()
        log_path(tmp_path, "model1").write_text("")
    if checkpoint:
        RunFolder(study.run_dir("model1")).latest.parent.mkdir(parents=True)
        RunFolder(study.run_dir("model1")).latest.write_bytes(b"")
    died = _death(study, "model1", SimpleNamespace(exitcode=exitcode))
    assert died == words.replace("LOG", str(log_path(tmp_path, "model1")))
