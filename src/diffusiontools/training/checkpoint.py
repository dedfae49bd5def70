"""Reading and writing checkpoints: plain dicts of tensors and plain data, written atomically.
The one module that knows the schema: the training writes one from its :class:`TrainingState`
with :func:`training_checkpoint` and resumes with :func:`restore_training`; every other reader
goes through :func:`stored_config` and :func:`stored_weights`.

A checkpoint is ``{"format_version", "config", "data", "epoch", "batch", "step", "loss_sum",
"epoch_seconds", "data_rng_at_epoch_start", "model", "ema", "optimizer", "rng", "history",
"tensorboard_step", "probe_pending", "probed_as_last"}``. Every checkpoint diffusiontools has
written says ``format_version`` 1; the entries were added within it, and a checkpoint without
one reads it as its absence meant when it was written (tests/fixtures/old_runs holds each):

- the first layout: no ``data`` (the resume compares no data) and no ``rng.step_device`` (the
  noise generator's state is tried on this device);
- then ``data`` and ``rng.step_device``;
- then ``tensorboard_step``, ``probe_pending``, ``probed_as_last`` (today's layout).

A layout that a reader of today could not read gets the next ``format_version``; a checkpoint
with a version above :data:`FORMAT_VERSION` is refused. Loading uses
``torch.load(weights_only=True)``, so a checkpoint can never run code, and every failure is a
one-line :class:`UserError`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..config import Config, config_from_dict
from ..errors import UserError
from .run_config import as_recorded

logger = logging.getLogger(__name__)
FORMAT_VERSION = 1
# What every refusal of an unreadable checkpoint says was expected.
EXPECTED = "expected a .pt file that diffusiontools train wrote (a dict of tensors and plain data)"
CHECKPOINT_DIR = "checkpoints"
LATEST = "latest.pt"


@dataclass(eq=False)
class TrainingState:
    """What a training checkpoint holds, one field per entry (``model`` holds ``net``'s weights,
    ``ema`` the average's, ``rng`` the two generators' states): the run's settings and data,
    what the optimisation changes, and the position in the run. The training loop changes it;
    :func:`training_checkpoint` writes it and :func:`restore_training` reads it back."""

    config: Config  # the resolved config the run trains with
    data: dict  # the training data's provenance (data.json)
    net: nn.Module
    ema: nn.Module | None  # the weights' exponential average (an AveragedModel), None without
    optimizer: torch.optim.Optimizer
    data_gen: torch.Generator  # the batch order: on the CPU whatever the device
    step_gen: torch.Generator  # t and noise: on the training device
    epoch: int = 0  # the epoch in progress (or the next to start when batch == 0)
    batch: int = 0  # batches of ``epoch`` already done
    step: int = 0  # optimiser steps so far
    loss_sum: float = 0.0  # sum of this epoch's batch losses so far
    epoch_seconds: float = 0.0  # time spent in this epoch so far
    data_rng_at_epoch_start: torch.Tensor | None = None
    history: list[dict] = field(default_factory=list)  # one metrics row per finished epoch
    # The step through which RUN/tensorboard's event files hold this run's own events (0: none):
    # the step of the last checkpoint written with training.log = tensorboard. A session with
    # the log off leaves it as it was, so a later session with it on purges what lies past it.
    tensorboard_step: int = 0
    # The quality probe of the last finished epoch was due and a stop came during it (the
    # epoch's checkpoint is written before the probe): a resume probes that epoch first.
    probe_pending: bool = False
    # The last history row's probe ran only because its epoch was the run's last: a later
    # finished epoch drops those values, as a straight run to the later end never measured them.
    probed_as_last: bool = False

    def reached_max_steps(self) -> bool:
        max_steps = self.config.training.max_steps
        return max_steps is not None and self.step >= max_steps

    def finished(self) -> bool:
        """Whether the run has trained as far as it is told: every epoch, or max_steps."""
        return self.epoch >= self.config.training.epochs or self.reached_max_steps()


# The entries of the position in the run that every checkpoint holds.
POSITION = ("epoch", "batch", "step", "loss_sum", "epoch_seconds", "data_rng_at_epoch_start")


def training_checkpoint(state: TrainingState) -> dict:
    """The dict a training writes: the schema of the module doc, ``format_version`` first."""
    return {
        "format_version": FORMAT_VERSION,
        "config": state.config.to_dict(),
        "data": state.data,
        **{name: getattr(state, name) for name in POSITION},
        "model": state.net.state_dict(),
        "ema": None if state.ema is None else state.ema.module.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "rng": {
            "data": state.data_gen.get_state(),
            "step": state.step_gen.get_state(),
            "step_device": state.step_gen.device.type,
        },
        "history": state.history,
        "tensorboard_step": state.tensorboard_step,
        "probe_pending": state.probe_pending,
        "probed_as_last": state.probed_as_last,
    }


def restore_training(state: TrainingState, ckpt: dict, path: Path | str) -> None:
    """Load the checkpoint ``ckpt`` (read from ``path``) into ``state``, built from the config
    the run goes on with; ``state.config`` and ``state.data`` stay as they are.

    Every earlier layout is read: the entries a checkpoint of then lacks read as what their
    absence meant then. Loaded onto the CPU, generator states are CPU byte tensors even for a
    CUDA generator; ``load_state_dict`` copies the rest over.
    Raises UserError for weights of another architecture; KeyError, TypeError, ValueError or
    RuntimeError for an entry that is missing or garbled.
    """
    load_weights(state.net, ckpt["model"], path)
    state.optimizer.load_state_dict(ckpt["optimizer"])
    for name in (*POSITION, "history"):
        setattr(state, name, ckpt[name])
    # Absent from the earlier layouts (module doc): every session then purged the event files
    # past its own resumed step; no quality probe is pending, and the last row's values stay.
    state.tensorboard_step = ckpt.get("tensorboard_step", ckpt["step"])
    state.probe_pending = ckpt.get("probe_pending", False)
    state.probed_as_last = ckpt.get("probed_as_last", False)
    if state.ema is not None and ckpt["ema"] is not None:  # else the average starts now
        state.ema.module.load_state_dict(ckpt["ema"])
        # AveragedModel copies the weights on its first update (n_averaged == 0): restore the
        # count, one update per step, or the average would restart from the weights.
        state.ema.n_averaged.fill_(state.step)
    state.data_gen.set_state(ckpt["rng"]["data"])
    _restore_step_generator(state, ckpt["rng"])


def _restore_step_generator(state: TrainingState, rng: dict) -> None:
    """The t/noise generator's state, or, when it was saved by another kind of device (a CUDA
    generator's state does not fit a CPU one), a deterministic re-seed from the step."""
    saved_on = rng.get("step_device")  # None in the first layout
    here = state.step_gen.device.type
    if saved_on in (None, here):
        try:
            state.step_gen.set_state(rng["step"])
            return
        except RuntimeError:  # the first layout, written on another device
            saved_on = "another device"
    state.step_gen.manual_seed(reseeded(state.config.training.seed, state.step))
    logger.warning(
        "the checkpoint's noise generator comes from %s and this run trains on %s: it is "
        "re-seeded from step %d, so the run goes on deterministically but no longer draws "
        "the noise an uninterrupted run on %s would",
        saved_on,
        here,
        state.step,
        saved_on,
    )


def reseeded(seed: int, step: int) -> int:
    """The seed of a noise generator re-seeded at ``step`` (a resume on another device)."""
    return (seed + 1) * 1_000_003 + step


def stored_config(ckpt: dict, path: Path | str = "the checkpoint") -> Config:
    """The resolved config a checkpoint (read from ``path``) carries, read as the run it
    describes (``config_from_dict``); a missing or unreadable one is refused in one sentence
    naming ``path``."""
    source = f"checkpoint {path}"
    return as_recorded(config_from_dict(_config_table(ckpt, path), source), source=source)


def recorded_config(run_dir: Path) -> dict | None:
    """The config of the run in ``run_dir`` as its latest checkpoint stores it, as written: what
    ``load_config(recorded=)`` takes to resume the run. None where it holds no checkpoint (the
    trainer then refuses the resume in its words)."""
    path = latest_path(run_dir)
    return _config_table(load_checkpoint(path), path) if path.is_file() else None


def _config_table(ckpt: dict, path: Path | str) -> dict:
    if not isinstance(ckpt.get("config"), dict):
        raise UserError(f"checkpoint {path} carries no config: {EXPECTED}")
    return ckpt["config"]


def stored_weights(ckpt: dict, use_ema: bool) -> dict:
    """The network's weights: the EMA average when asked for and kept, else the raw ones."""
    return ckpt["ema"] if use_ema and ckpt.get("ema") is not None else ckpt["model"]


def weights_sha256(net: nn.Module) -> str:
    """sha256 of a network's weights: its state_dict in order, each name and each tensor's
    bytes on the CPU. It names the weights themselves, whichever file holds them."""
    digest = hashlib.sha256()
    for name, tensor in net.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def finished_epochs(ckpt: dict) -> int:
    """Epochs completed at this checkpoint (one written inside an epoch counts that epoch)."""
    return ckpt["epoch"] - 1 if ckpt["batch"] == 0 else ckpt["epoch"]


def epoch_path(run_dir: Path, epoch: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"epoch_{epoch:04d}.pt"


def latest_path(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / LATEST


def follow_umask(root: Path) -> None:
    """Give ``root`` (a file, or a folder and everything in it) the modes a plain ``open`` or
    ``mkdir`` would: ``tempfile`` makes its files 0600 and folders 0700, which would keep what we
    write by rename from the user's group on a shared machine."""
    umask = os.umask(0)
    os.umask(umask)  # read without changing it: there is no getter
    root = Path(root)
    paths = [root, *root.rglob("*")] if root.is_dir() else [root]
    for path in paths:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def save_atomic(obj: dict, path: Path) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``.

    A kill or a full disk at any moment leaves either the old file or the new one, never a
    half-written file under the real name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        follow_umask(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(run_dir: Path) -> None:
    """Delete temporary files that a kill during :func:`save_atomic` left behind.

    Call only while holding the run's lock: then no one else can be writing them.
    """
    for tmp in (Path(run_dir) / CHECKPOINT_DIR).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Load and sanity-check a checkpoint without ever unpickling arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        blocked = re.search(r"GLOBAL (\S+)", str(exc))
        if blocked:
            raise UserError(
                f"checkpoint {path} was refused: it would import {blocked.group(1)}, and "
                "checkpoints are loaded as plain data only (never trust one that asks to run code)"
            ) from None
        raise UserError(f"checkpoint {path} is not a checkpoint: {EXPECTED}") from None
    except Exception:  # a damaged file makes torch.load raise almost anything (KeyError too);
        # its text (zip internals, pickle opcodes, paragraphs of advice) would not help a user
        raise UserError(f"checkpoint {path} is truncated or not a checkpoint: {EXPECTED}") from None
    if not isinstance(ckpt, dict) or "format_version" not in ckpt or "model" not in ckpt:
        raise UserError(f"checkpoint {path} has no format_version or model entry: {EXPECTED}")
    if not isinstance(ckpt["format_version"], int):
        raise UserError(
            f"checkpoint {path} has format_version={ckpt['format_version']!r}, not an integer"
        )
    if ckpt["format_version"] > FORMAT_VERSION:
        raise UserError(
            f"checkpoint {path} has format version {ckpt['format_version']}, newer than this "
            f"diffusiontools reads ({FORMAT_VERSION}); upgrade diffusiontools"
        )
    return ckpt


def load_weights(net: nn.Module, state: dict, source: Path) -> None:
    """``net.load_state_dict`` with a one-line error naming the mismatched tensors."""
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append(
                "shape differs for "
                + ", ".join(
                    f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in shapes[:3]
                )
            )
        if missing:
            parts.append("missing " + ", ".join(missing[:3]))
        if unexpected:
            parts.append("unexpected " + ", ".join(unexpected[:3]))
        raise UserError(f"checkpoint {source} is from another architecture: {'; '.join(parts)}")
    net.load_state_dict(state)


def list_epochs(run_dir: Path) -> list[int]:
    """Epochs that have a kept checkpoint in ``run_dir``, ascending."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    found = (re.fullmatch(r"epoch_(\d+)\.pt", p.name) for p in folder.glob("epoch_*.pt"))
    return sorted(int(m.group(1)) for m in found if m)
