"""TensorBoard event files beside ``metrics.csv``, written when ``training.log = tensorboard``.

``RUN/tensorboard/`` gets one event file per training session (a resume adds one); watch it with
``tensorboard --logdir RUN/tensorboard``. Every value is logged at its global optimiser step:

- ``train/loss``: every step's training loss (under torchrun, rank 0's slice of the batch);
- ``train/lr`` and ``train/images_per_s``: every 20 steps and at each epoch's end, where the
  trainer reads its losses from the device anyway (images/s since the epoch or the resume began,
  as the progress bar shows);
- ``epoch/train_loss``, ``epoch/val_loss``, ``epoch/images_per_s``: each ``metrics.csv`` row, at
  the epoch's last step;
- ``quality/frechet_distance``, ``quality/class_entropy``, ...: the quality probe's columns of
  that row, on the epochs it ran (``training.eval_every``), once it has run (it runs after the
  epoch's checkpoint);
- ``learning_curve``: the figure of ``learning_curve.png``, at each epoch whose checkpoint is kept;
- ``samples``: the grid of ``samples/epoch_NNNN.png``, whenever the trainer draws one.

Resume. A checkpoint is written only after the step losses it covers are written and the file is
flushed, so the event files hold every step the latest checkpoint holds; the checkpoint records
that step (``tensorboard_step``: its own step when the log is on; a session with the log off
passes on the one it resumed from). A killed run may have logged steps past its last checkpoint,
and a later session with the log off may have redone those steps without logging them: the
session that resumes with the log on opens its writer with ``purge_step = tensorboard_step + 1``,
whose mark tells TensorBoard to drop the earlier files' events from there on. Every step is shown
once, with the value of the run that went on, or not at all where the log was off; never the
value of a killed session. Only rank 0 writes.
"""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path

import torch
from matplotlib.figure import Figure
from matplotlib.image import imread

from ..config import Config
from ..optional import require
from ..outputs.figures import figure_png, image_grid
from .run_folder import RunFolder

logger = logging.getLogger(__name__)
EVENT_FILE_PREFIX = "events.out.tfevents."


class TensorBoardLog:
    """The TensorBoard writer of one training session; with ``training.log = csv``, or on a rank
    other than 0, every method does nothing.

    Construct it before the run folder changes (it refuses a missing ``tensorboard`` package);
    :meth:`open` it once the folder is the new run's.
    """

    def __init__(self, config: Config, is_main: bool):
        wanted = config.training.log == "tensorboard"
        if wanted:  # on every rank, so that all of them refuse alike
            require("tensorboard", "tensorboard", "training.log = tensorboard")
        self.enabled = wanted and is_main
        self.writer = None
        self.step_losses: list[tuple[int, torch.Tensor]] = []  # on the device until written

    def open(self, run_dir: Path, step: int) -> TensorBoardLog:
        """Start writing into ``run_dir/tensorboard``; ``step``: the checkpoint's
        ``tensorboard_step``, the step through which the files hold the run's own events (0 for
        a new run). Earlier sessions' events past ``step`` are purged (module doc).
        Returns self, a context manager that closes the writer."""
        if self.enabled:
            from torch.utils.tensorboard import SummaryWriter

            log_dir = RunFolder(run_dir).tensorboard
            _wait_for_a_later_second(log_dir)
            self.writer = SummaryWriter(str(log_dir), purge_step=step + 1)
        return self

    def step_loss(self, step: int, loss: torch.Tensor) -> None:
        """Keep one step's loss (a 0-d tensor on the device: no sync) for the next write."""
        if self.writer is not None:
            self.step_losses.append((step, loss))

    def progress(self, step: int, images_per_s: float, lr: float) -> None:
        """The kept step losses, the learning rate and the speed, at ``step``."""
        if self.writer is None:
            return
        self._write_step_losses()
        self.writer.add_scalar("train/lr", lr, step)
        self.writer.add_scalar("train/images_per_s", images_per_s, step)

    def epoch(self, row: dict) -> None:
        """One ``metrics.csv`` row's ``train_loss``, ``val_loss``, ``images_per_s``, at its
        ``step``."""
        if self.writer is None:
            return
        for key in ("train_loss", "val_loss", "images_per_s"):
            self.writer.add_scalar(f"epoch/{key}", row[key], row["step"])

    def quality(self, values: dict[str, float], step: int) -> None:
        """The quality probe's values (``training.eval_every``), added to the row of ``step``
        once the probe has run (after the epoch's checkpoint)."""
        if self.writer is None:
            return
        for key, value in values.items():
            self.writer.add_scalar(f"quality/{key}", value, step)

    def figure(self, tag: str, fig: Figure, step: int) -> None:
        """``fig`` as the image its PNG file shows (same renderer, size and crop)."""
        if self.writer is None:
            return
        pixels = imread(io.BytesIO(figure_png(fig)), format="png")  # (H, W, 4) floats in [0, 1]
        self.writer.add_image(tag, pixels[..., :3], step, dataformats="HWC")

    def samples(self, images: torch.Tensor, step: int) -> None:
        """``images`` (N, C, H, W), model range, as one mosaic (the sample grid's pixels: grey
        or RGB); flushed at once: the trainer draws samples after the epoch's checkpoint."""
        if self.writer is None:
            return
        grid = image_grid(images)
        self.writer.add_image("samples", grid, step, dataformats="HW" if grid.ndim == 2 else "HWC")
        self.writer.flush()

    def flush(self) -> None:
        """Write the kept step losses and flush the file: call before writing a checkpoint."""
        if self.writer is None:
            return
        self._write_step_losses()
        self.writer.flush()

    def _write_step_losses(self) -> None:
        if self.step_losses:
            values = torch.stack([loss for _, loss in self.step_losses]).tolist()  # one sync
            for (step, _), value in zip(self.step_losses, values, strict=True):
                self.writer.add_scalar("train/loss", value, step)
            self.step_losses.clear()

    def __enter__(self) -> TensorBoardLog:
        return self

    def __exit__(self, *exc) -> None:
        """Close the file. Step losses kept since the last checkpoint are dropped: a resume
        starts from that checkpoint and logs them again."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _wait_for_a_later_second(log_dir: Path) -> None:
    """Sleep, if need be (under a second), until the clock is past the newest event file's second.

    TensorBoard reads a run's event files in name order, and a name starts with the second the
    file was created in, then host, process id and a counter, which do not order files within a
    second. A resumed session's file must sort after the files whose late steps it purges.
    """
    seconds = [
        int(part)
        for path in log_dir.glob(EVENT_FILE_PREFIX + "*")
        if (part := path.name.removeprefix(EVENT_FILE_PREFIX).split(".")[0]).isdigit()
    ]
    if seconds:
        wait = max(seconds) + 1 - time.time()
        if wait > 0:
            logger.debug("waiting %.2f s so that the new event file sorts last", wait)
            time.sleep(wait)
