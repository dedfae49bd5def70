"""Run management for one training in a run folder, apart from the training itself.

1. :meth:`TrainingSession.check`, before the data loads: the refusals that need no data (a
   ``--out`` that is a file, a folder whose run does not fit ``resume``/``overwrite``, and on
   resume a config the checkpoint's run cannot go on with). A folder a training has used
   (its lock file stays, and so may an interrupted overwrite) is locked from here and the
   overwrite put right first; any other folder is only read, as the data may still refuse.
2. :meth:`TrainingSession.restore`, once the data has loaded: the folder is created and locked
   if it was not, and checked again; on resume, the checkpoint is checked against the data and
   loaded into the state.
3. :meth:`TrainingSession.begin`, once every check has passed: SIGINT/SIGTERM become a stop
   request, and only now does the folder change (an overwritten run is moved aside, config.ini
   and data.json written).
4. :meth:`TrainingSession.save` writes each checkpoint; the first one of a new run ends an
   overwrite. On exit, an overwrite whose new run died before that gets the old run back.

Under torchrun, rank 0 owns the folder and every rank reads the checkpoint; every check is
agreed (``Ranks.all_succeed``), so no rank trains where one has refused.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import torch

from ..config import Config
from ..errors import UserError
from ..outputs.safe_writes import check_output_folder
from . import checkpoint as ckpt_io
from . import run_folder
from .checkpoint import TrainingState
from .distributed import Ranks
from .epoch_end import QualityProbe
from .resume_rules import changed_settings, check_same_data, resumed_config
from .run_config import to_ini
from .signals import StopRequest
from .tensorboard_log import TensorBoardLog

logger = logging.getLogger(__name__)


class TrainingSession:
    """One training's hold on ``run_dir``: a context manager that, on exit, puts an unfinished
    overwrite right, then gives signals back and releases the lock."""

    def __init__(
        self, run_dir: Path, resume: bool, overwrite: bool, ranks: Ranks, device: torch.device
    ):
        self.run_dir, self.resume, self.overwrite = Path(run_dir), resume, overwrite
        self.ranks, self.device = ranks, device
        self.changed = False  # resumed with settings other than the checkpoint's
        self._changes: list[str] = []  # those settings, "key old -> new"
        self._checkpoint: dict | None = None  # read by check, loaded by restore
        self._held = contextlib.ExitStack()  # the lock, then the stop request
        self._locked = False

    def __enter__(self) -> TrainingSession:
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self._locked:
                run_folder.recover(self.run_dir)  # died before its first checkpoint: old run back
        finally:
            self._held.close()

    def check(self, requested: Config) -> Config:
        """Step 1 (module doc); returns the config the run trains with: ``requested``, or on
        resume the checkpoint's run going on with the keys that may change (``resume_rules``).
        """
        self.ranks.all_succeed(self._check_folder, self.device)  # the others read it after
        if not self.resume:
            return requested
        return self.ranks.all_succeed(lambda: self._read_checkpoint(requested), self.device)

    def restore(self, state: TrainingState) -> None:
        """Step 2 (module doc): ``state`` is built from the config :meth:`check` returned and
        holds the data's provenance."""
        self.ranks.all_succeed(self._hold, self.device)
        if self._checkpoint is not None:
            self.ranks.all_succeed(lambda: self._restore(state), self.device)

    def begin(self, config: Config, data: dict, probe: QualityProbe | None) -> StopRequest:
        """Step 3 (module doc), on rank 0: ``data`` is the data's provenance. Only now may the
        log state a setting: a refused run announces nothing it will not do. Returns the stop
        request that SIGINT/SIGTERM become from now until the session's end (its recovery
        included, which a signal must not cut short)."""
        stop = self._held.enter_context(StopRequest())
        if not self.ranks.is_main:
            return stop
        if probe is not None and config.training.eval_every:
            logger.info(
                "quality probe every %d epochs: %s", config.training.eval_every, probe.describe()
            )
        if self.overwrite and run_folder.holds_run(self.run_dir):
            run_folder.move_aside(self.run_dir)
        ckpt_io.remove_stale_temporaries(self.run_dir)  # left by a kill mid-write
        run_folder.RunFolder(self.run_dir).config.write_text(to_ini(config))
        run_folder.write_json(run_folder.RunFolder(self.run_dir).data_record, data)
        return stop

    def save(self, path: Path, state: TrainingState, board: TensorBoardLog) -> None:
        """Write ``state`` to the checkpoint ``path`` on rank 0. A full disk or a vanished
        folder becomes a one-line error, and the atomic write leaves the previous checkpoint
        under ``path`` as it was."""
        if not self.ranks.is_main:
            return
        board.flush()  # the event files hold every step this checkpoint holds
        if board.enabled:
            state.tensorboard_step = state.step
        try:
            ckpt_io.save_atomic(ckpt_io.training_checkpoint(state), path)
        except OSError as exc:
            raise UserError(
                f"could not write checkpoint {path}: {exc.strerror or exc}; the previous "
                "checkpoint (if any) is kept; free space or fix the folder, then continue with "
                "resume=True"
            ) from None
        run_folder.discard_previous(self.run_dir)  # a checkpoint of the new run exists now

    def _check_folder(self) -> None:
        if not self.ranks.is_main:
            return
        # A training has been here: its lock file stays, and so may an overwrite to put right.
        folder = run_folder.RunFolder(self.run_dir)
        used = (folder.lock, folder.previous)
        if any(path.exists() for path in used):
            self._hold()
        else:  # no training runs here, nor was interrupted: read only, as the data may refuse
            check_output_folder(self.run_dir, "run_dir", "the run")
            run_folder.check_intent(self.run_dir, self.resume, self.overwrite)

    def _hold(self) -> None:
        """Rank 0, once: create and lock the folder, put an interrupted overwrite right, then
        check that the folder's run fits ``resume``/``overwrite``."""
        if not self.ranks.is_main or self._locked:
            return
        run_folder.ensure_writable(self.run_dir, "run_dir", "the run")
        # Lock first: --overwrite must never touch the files of a running training.
        self._held.enter_context(run_folder.RunLock(self.run_dir))
        self._locked = True
        run_folder.recover(self.run_dir)  # an overwrite killed before its first checkpoint
        run_folder.check_intent(self.run_dir, self.resume, self.overwrite)

    def _read_checkpoint(self, requested: Config) -> Config:
        path = ckpt_io.latest_path(self.run_dir)
        ckpt = ckpt_io.load_checkpoint(path, map_location="cpu")
        with _resumable(path):
            stored = ckpt_io.stored_config(ckpt, path)
            config = resumed_config(stored, requested, self.run_dir)
            _check_not_below(config, ckpt["epoch"], ckpt["step"])
        self._checkpoint, self.changed = ckpt, config != stored
        self._changes = changed_settings(stored, config)
        return config

    def _restore(self, state: TrainingState) -> None:
        path, ckpt = ckpt_io.latest_path(self.run_dir), self._checkpoint
        self._checkpoint = None  # its tensors are the state's now
        with _resumable(path):
            check_same_data(ckpt.get("data"), state.data, self.run_dir)
            ckpt_io.restore_training(state, ckpt, path)
        logger.info("resuming %s at epoch %d, step %d", self.run_dir, state.epoch, state.step)
        if self._changes:
            logger.info("resumed with settings other than the run's: %s", "; ".join(self._changes))


@contextlib.contextmanager
def _resumable(path: Path):
    """Within: a checkpoint entry that is missing or garbled is refused in one sentence (torch's
    text would not help)."""
    try:
        yield
    except UserError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError):
        raise UserError(
            f"checkpoint {path} cannot be resumed: its training state (position, optimiser "
            f"or generators) is missing or garbled; {ckpt_io.EXPECTED}"
        ) from None


def _check_not_below(config: Config, epoch: int, step: int) -> None:
    """A resumed run cannot be told to have stopped before where it already is: ``epoch`` and
    ``step`` are the checkpoint's (its ``epoch``: the epochs already finished)."""
    tc = config.training
    if tc.max_steps is not None and tc.max_steps < step:
        raise UserError(
            f"training.max_steps={tc.max_steps} is below the {step} steps this run has "
            f"done; give at least {step}"
        )
    if tc.epochs < epoch:
        raise UserError(
            f"training.epochs={tc.epochs} is below the {epoch} epochs this run has finished; "
            f"give at least {epoch}"
        )
