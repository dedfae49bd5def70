"""What follows an epoch's last step: hooks called in order (:data:`EPOCH_END`), each a function
of the :class:`EpochEnd` it reads and changes.

1. :func:`close_epoch`: the validation losses and the epoch's row go into the history; the
   position moves to the next epoch.
2. :func:`report_epoch`: the log line, TensorBoard, metrics.csv and learning_curve.png.
3. :func:`save_checkpoints`: the epoch's kept checkpoint and latest.pt.
4. :func:`probe_quality`: the quality probe on its epochs (``training.eval_every``), its values
   added to the epoch's row.
5. :func:`draw_samples`: the sample grid on its epochs (``sampling.sample_every``).

The checkpoints come before the probe, so a stop request during the probe abandons it at once
(``StopRequest.interrupting``) and loses nothing else: the checkpoint says the probe is pending
(``probe_pending``), and the resumed run calls the hooks after the checkpoint
(:data:`AFTER_CHECKPOINT`) for that epoch before it trains on. A probe that ran only because its
epoch was the run's last is dropped once a later epoch is finished (``probed_as_last``: a resume
to more epochs), so metrics.csv equals the straight run's. Every rank validates (the same
numbers) and keeps the history; only rank 0 probes (its own seeded generators: the training
generators are untouched) and writes, and the ranks agree on a stop after the probe.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from ..config import Config
from ..diffusion import make_process
from ..outputs.figures import learning_curve_figure, save_figure, save_sample_grid
from ..sampling.generation import generate
from . import checkpoint as ckpt_io
from . import run_folder
from .checkpoint import TrainingState
from .distributed import Ranks
from .signals import Interrupted, StopRequest, TrainingStopped
from .tensorboard_log import TensorBoardLog
from .training_data import TrainingData
from .validation import NonFiniteLoss, kept_checkpoint, validation_batches, validation_loss

logger = logging.getLogger(__name__)


class QualityProbe(Protocol):
    """Scores a network's samples after an epoch (``training.eval_every``). Built above the
    trainer (``evaluation/quality_probe.py``): the trainer knows nothing of classifiers, it only
    decides when the probe runs and adds what it returns to that epoch's metrics row. It runs
    after the epoch's checkpoint, and a stop request abandons it midway (an exception raised
    wherever it is), so it must change nothing outside itself: only what it returns counts."""

    reference: dict[str, float]  # the test images' own values, drawn beside the curve

    def __call__(self, net: nn.Module, device: torch.device) -> dict[str, float]: ...

    def describe(self) -> str: ...  # what it draws; logged once every check has passed


@dataclass
class EpochEnd:
    """What the hooks work with. ``state.net`` holds the trained weights, ``eval_net`` the
    weights that validate first, probe and sample (their EMA where the run keeps one); ``save``
    writes ``state`` to a checkpoint path (rank 0 only)."""

    state: TrainingState
    process: nn.Module
    eval_net: nn.Module
    data: TrainingData
    run_dir: Path
    ranks: Ranks
    board: TensorBoardLog
    probe: QualityProbe | None
    stop: StopRequest
    device: torch.device
    save: Callable[[Path], None]

    @property
    def config(self) -> Config:
        return self.state.config

    @property
    def finished(self) -> int:
        """The epoch the hooks are about: the history's last row."""
        return self.state.history[-1]["epoch"]

    def last(self) -> bool:
        """Whether the finished epoch is the run's last (``state`` is past it)."""
        return self.state.finished()

    def probe_due(self) -> bool:
        """The quality curve's epochs: 0, N, 2N, ... and the last (N = training.eval_every)."""
        every = self.config.training.eval_every
        return bool(every) and (self.finished % every == 0 or self.last())

    def record(self, figure: bool) -> None:
        """metrics.csv and learning_curve.png from the history; the curve to TensorBoard too
        when ``figure`` and the epoch's checkpoint is kept."""
        state, tc = self.state, self.config.training
        run_folder.write_metrics(self.run_dir, state.history)
        reference = None if self.probe is None else self.probe.reference
        name, config_name = Path(self.run_dir).name, self.config.name
        title = name if name == config_name else f"{name} ({config_name})"  # the run, its config
        curve = learning_curve_figure(state.history, title, reference)
        save_figure(curve, run_folder.RunFolder(self.run_dir).learning_curve)
        if figure and (self.finished % tc.save_every == 0 or self.last()):
            self.board.figure("learning_curve", curve, state.step)


class EpochHook(Protocol):
    """One piece of the work after an epoch, on every rank (each says what rank 0 alone does)."""

    def __call__(self, end: EpochEnd) -> None: ...


def close_epoch(end: EpochEnd) -> None:
    """Validate, append the epoch's row to the history and move to the next epoch. ``val_loss``
    is ``eval_net``'s; with an EMA, ``val_loss_raw`` is ``state.net``'s, the weights the
    training loss is of; ``val_images`` says over how many images."""
    state, tc = end.state, end.config.training
    batches_done = max(state.batch, 1)
    nets = {"val_loss": end.eval_net}
    if end.eval_net is not state.net:
        nets["val_loss_raw"] = state.net
    losses = {}
    for key, weights in nets.items():
        losses[key] = validation_loss(end.process, weights, end.data, end.config, end.device)
        if not math.isfinite(losses[key]):
            raise NonFiniteLoss(
                f"the validation loss is non-finite after epoch {state.epoch}; "
                f"{kept_checkpoint(end.run_dir)}"
            )
    row = {
        "epoch": state.epoch,
        "step": state.step,
        "train_loss": state.loss_sum / batches_done,
        "val_loss": losses["val_loss"],
        "val_images": validation_batches(end.data, end.config) * tc.batch_size,
        "images_per_s": batches_done * tc.batch_size / max(state.epoch_seconds, 1e-9),
        "epoch_seconds": state.epoch_seconds,
        **losses,  # val_loss again, and val_loss_raw where there is an EMA
    }
    if state.probed_as_last:  # its epoch is not the run's last any more: drop the probe's
        previous = state.history[-1]
        state.history[-1] = {k: v for k, v in previous.items() if k in row}
        state.probed_as_last = False
    state.history.append(row)
    state.epoch, state.batch, state.loss_sum, state.epoch_seconds = state.epoch + 1, 0, 0.0, 0.0
    state.probe_pending = end.probe_due()


def report_epoch(end: EpochEnd) -> None:
    """Rank 0: the epoch's log line, its row to TensorBoard, metrics.csv and the curve (the
    curve to TensorBoard only once a pending probe has added its values)."""
    if not end.ranks.is_main:
        return
    row = end.state.history[-1]
    logger.info(
        "epoch %d: train %.5f val %.5f (%.0f img/s)",
        row["epoch"],
        row["train_loss"],
        row["val_loss"],
        row["images_per_s"],
    )
    end.board.epoch(row)
    end.record(figure=not end.state.probe_pending)


def save_checkpoints(end: EpochEnd) -> None:
    """Rank 0: the epoch's checkpoint on its epochs (``training.save_every``, and the last),
    then latest.pt."""
    if end.finished % end.config.training.save_every == 0 or end.last():
        end.save(ckpt_io.epoch_path(end.run_dir, end.finished))
    end.save(ckpt_io.latest_path(end.run_dir))


def probe_quality(end: EpochEnd) -> None:
    """The pending probe, if the settings still call for it (a resume to more epochs does not
    probe an epoch that is no longer the last), on rank 0; its values go into the epoch's row
    and latest.pt. A stop request during it abandons it and raises TrainingStopped (the
    epoch's checkpoint is written)."""
    state = end.state
    if not state.probe_pending:
        return
    if not end.probe_due():
        state.probe_pending = False
        if end.ranks.is_main:
            end.record(figure=True)
        return
    row = state.history[-1]
    values = _run_probe(end) if end.ranks.is_main else {}
    signum = end.ranks.max(end.stop.signum or 0, end.device)  # every rank: one decision
    if signum or values is None:
        latest = ckpt_io.latest_path(end.run_dir)
        stopped = (
            f"stopped by signal {signum} during the quality probe of epoch {row['epoch']}; "
            f"the epoch's checkpoint is {latest}; a resumed training probes epoch "
            f"{row['epoch']} first"
        )
        if end.ranks.is_main:
            logger.info(stopped)
        raise TrainingStopped(signum, f"{stopped}; continue with resume=True", end.ranks.is_main)
    state.probe_pending = False
    state.probed_as_last = row["epoch"] % end.config.training.eval_every != 0
    if end.ranks.is_main:
        row.update(values)
        end.board.quality(values, row["step"])
        end.record(figure=True)
        end.save(ckpt_io.latest_path(end.run_dir))


def _run_probe(end: EpochEnd) -> dict[str, float] | None:
    """The probe's values, or None when a stop request abandoned it."""
    was_training = end.eval_net.training
    try:
        with end.stop.interrupting():
            return end.probe(end.eval_net, end.device)
    except Interrupted:
        return None
    finally:
        end.eval_net.train(was_training)  # an abandoned sampler may not have restored it


def draw_samples(end: EpochEnd) -> None:
    """Rank 0: the sample grid of ``eval_net`` on its epochs (``sampling.sample_every``, and
    the last), into samples/ and TensorBoard."""
    config, finished = end.config, end.finished
    every = config.sampling.sample_every
    if end.ranks.is_main and every and (finished % every == 0 or end.last()):
        images = generate(
            end.eval_net,
            make_process(config).to(end.device),
            config,
            config.sampling.n_samples,
            seed=config.training.seed,
            device=end.device,
            shape=tuple(end.data.train.shape[1:]),
        )
        save_sample_grid(
            images, run_folder.RunFolder(end.run_dir).samples / f"epoch_{finished:04d}.png"
        )
        end.board.samples(images, end.state.step)


UP_TO_CHECKPOINT: tuple[EpochHook, ...] = (close_epoch, report_epoch, save_checkpoints)
AFTER_CHECKPOINT: tuple[EpochHook, ...] = (probe_quality, draw_samples)
EPOCH_END = UP_TO_CHECKPOINT + AFTER_CHECKPOINT
