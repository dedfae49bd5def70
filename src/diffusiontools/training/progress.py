"""One epoch's running numbers and their display: the progress bar (the mean of the last 100
losses, images per second), the epoch's loss sum, and the step of the first non-finite loss.
They stay on the device and are read every :data:`CHECK_EVERY` steps and at the epoch's end: a
sync per step would cost GPU speed."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from ..progress_bar import progress_bar
from .checkpoint import TrainingState
from .distributed import Ranks
from .tensorboard_log import TensorBoardLog
from .validation import NonFiniteLoss, kept_checkpoint

CHECK_EVERY = 20  # steps between the checks that read the device (and agree on a stop)


class EpochProgress:
    """The epoch ``state`` is in, from the batch it is at (a run resumed mid-epoch starts there);
    a context manager that closes the bar, on an error too, so that the error line is the last
    thing printed."""

    def __init__(
        self,
        state: TrainingState,
        steps_per_epoch: int,
        ranks: Ranks,
        board: TensorBoardLog,
        run_dir: Path,
        device: torch.device,
    ):
        self.state, self.ranks, self.board, self.run_dir = state, ranks, board, run_dir
        self.recent = torch.zeros(min(100, steps_per_epoch), device=device)  # last-100 mean
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)  # its step, or -1
        self.loss_sum = torch.tensor(state.loss_sum, device=device, dtype=torch.float64)
        self.started, self.first_batch = time.perf_counter(), state.batch
        self.bar = progress_bar(
            total=steps_per_epoch,
            initial=state.batch,
            desc=f"epoch {state.epoch}",
            leave=False,
            dynamic_ncols=True,
            file=sys.stderr,
            shown=ranks.is_main,
        )

    def __enter__(self) -> EpochProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()

    def step(self, loss: torch.Tensor, lr: float, check: bool) -> None:
        """Count one step's ``loss`` (detached, 0-d; ``state`` already counts the step); with
        ``check``, refuse a non-finite loss so far and show the running numbers."""
        state = self.state
        done = state.batch - self.first_batch  # this loop's steps, this one included
        self.first_bad = torch.where(
            (self.first_bad < 0) & ~torch.isfinite(loss), state.step, self.first_bad
        )
        self.loss_sum += loss
        # Slots count this loop's steps: a run resumed mid-epoch starts with none filled.
        self.recent[(done - 1) % len(self.recent)] = loss
        self.board.step_loss(state.step, loss)
        self.bar.update(1)
        if check:
            self.check_finite()
            images_per_s = done * state.config.training.batch_size / self.elapsed()
            mean = float(self.recent[: min(done, len(self.recent))].mean())
            self.bar.set_postfix(loss=f"{mean:.4f}", img_s=f"{images_per_s:.0f}")
            self.board.progress(state.step, images_per_s, lr)

    def finish(self) -> None:
        """The loop has stopped (the epoch's end, or a stop inside it): check the losses, and
        add the loop's loss sum (averaged over the ranks) and time to ``state``."""
        self.check_finite()
        self.state.loss_sum = float(self.ranks.mean(self.loss_sum))
        self.state.epoch_seconds += self.elapsed()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def check_finite(self) -> None:
        step = int(self.first_bad)
        if step >= 0:
            raise NonFiniteLoss(
                f"the training loss became non-finite at step {step} (epoch {self.state.epoch}); "
                f"{kept_checkpoint(self.run_dir)}; try a lower training.lr"
            )
