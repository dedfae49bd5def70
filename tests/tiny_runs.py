"""Tiny training runs shared by the training, CLI, fault and determinism tests.

One reference run is trained once per test session (``reference_run``) and read by many tests;
tests that change a run copy it first. Every run here uses one CPU thread, so that a run in this
process, in a forked child and in a fresh subprocess sum their floats in the same order and agree
bit for bit.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from diffusiontools.config import Config
from diffusiontools.training import checkpoint as ckpt_io
from diffusiontools.training.run_config import load_config
from diffusiontools.training.run_folder import read_metrics


def tiny_ini_text(kind: str = "gaussian", network: str = "cnn", schedule: str = "linear") -> str:
    """The tiny INI of a process kind, a network and (Gaussian) a schedule, writing only the keys
    that apply to them, as a user's INI must (a key that cannot take effect is refused): the cnn
    at 8, 8 channels, or a UNet at its defaults; T = 20, the linear schedule from beta1 = 1e-3
    to 0.2, the cosine schedule, or the cold default (pixel swap).

    256 images -> 204 train / 52 val; batch 16 -> 12 steps per epoch."""
    model = "n_hidden = 8, 8" if network == "cnn" else ""
    if kind == "cold":
        diffusion = ""
    elif schedule == "linear":
        diffusion = "beta1 = 1e-3\nbeta2 = 0.2"
    else:
        diffusion = f"schedule = {schedule}"
    return f"""
[data]
subset = 256

[model]
network = {network}
{model}

[diffusion]
kind = {kind}
T = 20
{diffusion}

[training]
epochs = 3
batch_size = 16
lr = 2e-3
save_every = 1
val_batches = 2
ema_decay = 0.9
device = cpu
"""


# The keys that choose which others apply, and the tiny_ini_text argument of each.
SWITCHES = {"diffusion.kind": "kind", "model.network": "network", "diffusion.schedule": "schedule"}


def tiny_ini_for(overrides: Sequence[str]) -> str:
    """The tiny INI of the kind, network and schedule that ``overrides`` set (the Gaussian cnn
    where they set none): ``diffusion.kind=cold`` trains from the cold tiny INI, as a user
    switches kind by writing an INI of that kind; the overrides still apply over it."""
    chosen = {}
    for item in overrides:
        key, _, value = item.partition("=")
        if key.strip() in SWITCHES:
            chosen[SWITCHES[key.strip()]] = value.strip()
    return tiny_ini_text(**chosen)


TINY_INI = tiny_ini_text()
STEPS_PER_EPOCH = 12
EPOCHS = 3

_scratch = Path(tempfile.mkdtemp(prefix="diffusiontools-tiny-"))
atexit.register(shutil.rmtree, _scratch, ignore_errors=True)


def write_ini(folder: Path, text: str = TINY_INI) -> Path:
    path = Path(folder) / "tiny.ini"
    path.write_text(text)
    return path


def tiny_config(*overrides: str) -> Config:
    """The tiny config of the kind, network and schedule that ``overrides`` set
    (:func:`tiny_ini_for`), with ``overrides`` applied."""
    return load_config(write_ini(_scratch, tiny_ini_for(overrides)), list(overrides))


@contextlib.contextmanager
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def single_thread():
    """Import into a test module to run its tests on one thread: exact agreement with forked and
    subprocess runs, and no thread oversubscription on a shared machine (it costs 10x and more)."""
    with one_thread():
        yield


def train_tiny(
    run_dir: Path, *overrides: str, resume: bool = False, overwrite: bool = False
) -> Path:
    from diffusiontools.training.trainer import train

    with one_thread():
        return train(tiny_config(*overrides), run_dir, resume=resume, overwrite=overwrite)


@functools.cache
def reference_run() -> Path:
    """The uninterrupted tiny run (3 epochs, 36 steps, with EMA); treat it as read-only."""
    return train_tiny(_scratch / "reference")


def copy_run(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(".lock", "samples"))
    return dest


def losses(run_dir: Path) -> list[tuple[float, float, float]]:
    """(step, train_loss, val_loss) per epoch from metrics.csv."""
    return [(r["step"], r["train_loss"], r["val_loss"]) for r in read_metrics(run_dir)]


def assert_same_final_weights(run_a: Path, run_b: Path) -> None:
    """The raw and the EMA weights of the two runs' latest checkpoints are bit-identical."""
    a = ckpt_io.load_checkpoint(ckpt_io.latest_path(run_a))
    b = ckpt_io.load_checkpoint(ckpt_io.latest_path(run_b))
    assert (a["epoch"], a["batch"], a["step"]) == (b["epoch"], b["batch"], b["step"])
    for kind in ("model", "ema"):
        assert a[kind].keys() == b[kind].keys()
        for name in a[kind]:
            assert torch.equal(a[kind][name], b[kind][name]), f"{kind} {name}"


def child_env() -> dict[str, str]:
    """Environment for a subprocess run: one thread, the same data, no progress bars in the way."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_python(
    code: str, *args: str, cwd: Path | None = None, timeout: int = 600
) -> subprocess.CompletedProcess:
    """``code`` (dedented) in a fresh interpreter with ``args`` as sys.argv[1:] and
    :func:`child_env`; stdout and stderr captured as text."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def on_training_steps(monkeypatch, action) -> None:
    """Route the loss of every training step through ``action(step, loss) -> loss``.

    ``step`` counts this process's optimiser steps from 1; validation (run without gradients)
    is left alone. Used to send a signal, or to poison the loss, at an exact step.
    """
    from diffusiontools.diffusion.gaussian import GaussianDiffusion

    original = GaussianDiffusion.loss
    count = 0

    def loss(self, *args, **kwargs):
        nonlocal count
        value = original(self, *args, **kwargs)
        if not torch.is_grad_enabled():
            return value
        count += 1
        return action(count, value)

    monkeypatch.setattr(GaussianDiffusion, "loss", loss)
