"""The run folder: its paths (:class:`RunFolder`, also an export folder's), the guard against
clobbering a run, and the one-trainer lock."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..config import is_edited_run_config, is_run_config_text
from ..errors import UserError
from ..outputs.safe_writes import check_output_folder
from .checkpoint import CHECKPOINT_DIR, epoch_path, latest_path, list_epochs

CONFIG_FILE = "config.ini"
DATA_FILE = "data.json"
METRICS_FILE = "metrics.csv"
LEARNING_CURVE = "learning_curve.png"
TENSORBOARD_DIR = "tensorboard"  # event files, with training.log = tensorboard
LOCK_FILE = ".lock"
EXPORTS = "exports"  # diffusiontools export's default place for the run's exports
SAMPLES_DIR = "samples"  # sample's own folder in a run or export folder
RECONSTRUCTION_DIR = "reconstruction"  # reconstruct's own folder in a run or export folder
EXPORT_DESCRIPTION = "diffusiontools.json"  # what makes a folder an export (training/export.py)
METRICS_COLUMNS = (
    "epoch",
    "step",
    "train_loss",
    "val_loss",
    "val_images",
    "images_per_s",
    "epoch_seconds",
)


PREVIOUS = ".previous"  # an overwritten run, kept until the new run's first checkpoint


def pretrained_root() -> Path:
    """The package's folder of shipped models (``pretrained.py`` loads them by name)."""
    return Path(str(resources.files("diffusiontools") / "pretrained"))


@dataclass(frozen=True)
class RunFolder:
    """Every path of a run folder (``diffusiontools train``) or of an export folder
    (``diffusiontools export``): the one place that knows their layout. ``path``: the folder.

    The properties only join paths; ``is_export``, :meth:`epochs` and :meth:`checkpoint` read
    the folder.
    """

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def holding(cls, checkpoint: Path) -> RunFolder | None:
        """The run folder whose checkpoints hold the file ``checkpoint``
        (RUN/checkpoints/epoch_0003.pt -> RUN); None for a file anywhere else (an export's
        weights, a checkpoint copied out of its run). Reads the path only."""
        checkpoint = Path(checkpoint)
        if checkpoint.suffix != ".pt" or checkpoint.parent.name != CHECKPOINT_DIR:
            return None
        return cls(checkpoint.parent.parent)

    @property
    def config(self) -> Path:
        """The resolved config the run trained with, as INI."""
        return self.path / CONFIG_FILE

    @property
    def data_record(self) -> Path:
        """The training data's provenance (source, folder, md5, split sizes), as JSON."""
        return self.path / DATA_FILE

    @property
    def metrics(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def learning_curve(self) -> Path:
        return self.path / LEARNING_CURVE

    @property
    def tensorboard(self) -> Path:
        return self.path / TENSORBOARD_DIR

    @property
    def lock(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def previous(self) -> Path:
        return self.path / PREVIOUS

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def latest(self) -> Path:
        return latest_path(self.path)

    def epoch(self, epoch: int) -> Path:
        """The checkpoint kept at the end of ``epoch`` (0-based)."""
        return epoch_path(self.path, epoch)

    def epochs(self) -> list[int]:
        """Epochs that have a kept checkpoint, ascending."""
        return list_epochs(self.path)

    def checkpoint(self, epoch: int | None) -> Path:
        """The checkpoint of ``epoch`` (None: the latest) that exists; raises
        DiffusionToolsError naming what is missing (the folder, an export's lack of
        checkpoints, the epochs that have one)."""
        if not self.path.is_dir():
            if RunFolder(pretrained_root() / self.path).is_export:  # a shipped model's name
                raise UserError(
                    f"{self.path} is the name of a shipped model, an export that holds no "
                    "checkpoints: this needs a run folder (sample, evaluate, reconstruct and "
                    "diffusiontools.load take the name)"
                )
            raise UserError(f"run folder {self.path} does not exist")
        if epoch is None:
            if not self.latest.is_file() and self.is_export:
                raise UserError(
                    f"{self.path} is an export, which holds no checkpoints: this needs the run "
                    "folder it came from (sample, evaluate, reconstruct and diffusiontools.load "
                    "read exports)"
                )
            if not self.latest.is_file():
                raise UserError(f"{self.path} holds no checkpoint yet (expected {self.latest})")
            return self.latest
        path = self.epoch(epoch)
        if not path.is_file():
            have = ", ".join(map(str, self.epochs())) or "none"
            raise UserError(
                f"epoch={epoch} has no checkpoint in {self.path}; epochs with one: {have}"
            )
        return path

    @property
    def is_shipped(self) -> bool:
        """Whether this is a shipped model's folder, inside the package (never written into).
        Reads the path only."""
        return self.path.resolve().parent == pretrained_root().resolve()

    @property
    def home(self) -> Path:
        """Where the commands' own outputs for this model go (``samples``, ``reconstruction``):
        the folder itself, or for a shipped model ``./NAME`` in the working folder, as its name
        given instead of its path gives."""
        return Path(self.path.name) if self.is_shipped else self.path

    @property
    def samples(self) -> Path:
        return self.home / SAMPLES_DIR

    @property
    def reconstruction(self) -> Path:
        return self.home / RECONSTRUCTION_DIR

    @property
    def exports(self) -> Path:
        return self.path / EXPORTS

    def export(self, format: str, epoch: int | None = None) -> Path:
        """The default folder of the run's export in ``format`` of ``epoch`` (None: the
        latest): RUN/exports/FORMAT[_epoch_NNNN]."""
        return self.exports / (format if epoch is None else f"{format}_epoch_{epoch:04d}")

    @property
    def description(self) -> Path:
        """An export's description: its config, schedule and weights (training/export.py)."""
        return self.path / EXPORT_DESCRIPTION

    @property
    def is_export(self) -> bool:
        """Whether the folder holds an export (its description) rather than a run."""
        return self.description.is_file()


def check_intent(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse a training whose ``resume``/``overwrite`` does not fit what ``run_dir`` holds.

    Only reads the folder: every check of a training runs before anything in it is changed.
    """
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise UserError("resume=True and overwrite=True contradict each other: give one of them")
    folder = RunFolder(run_dir)
    if edited_since_its_run(folder.config):  # the user's text: never written over or deleted
        raise UserError(
            f"{folder.config} was edited after its run wrote it (its header's sha256 no longer "
            "matches): a training would write the run's settings over it, or delete it with "
            f"overwrite=True; move it out of {run_dir} first"
        )
    has_checkpoint = folder.latest.is_file()
    if resume and not has_checkpoint:
        if holds_run(run_dir):
            how = (
                " (only a run's files: a run killed before it wrote its first); start it again "
                "with overwrite=True"
            )
        elif folder.config.is_file() and written_by_a_run(folder.config):
            how = (
                " (only the config.ini of a run killed before its first step); start it again "
                "without resume=True"
            )
        else:
            how = ""
        raise UserError(f"resume=True given but {run_dir} holds no checkpoint to resume from{how}")
    if not holds_run(run_dir):
        check_no_foreign_entries(run_dir)
    elif not (resume or overwrite):
        if not has_checkpoint:  # resume would be refused: say only what works
            raise UserError(
                f"{run_dir} holds a run's files but no checkpoint (a run killed before it wrote "
                "its first): pass overwrite=True to start it again"
            )
        raise UserError(
            f"{run_dir} already holds a run; pass resume=True to continue it or overwrite=True to "
            "replace it"
        )


def check_no_foreign_entries(run_dir: Path) -> None:
    """Refuse a new training in ``run_dir`` where a file or folder of a run's names
    (``RUN_ENTRIES``: config.ini, samples, ...) is there but no run wrote it: the user's own
    (a config.ini of theirs, a folder of samples), which the training would write over. A run
    killed before its first checkpoint is recognised by the config.ini it wrote first. An
    export's folder is refused whole: its config.ini describes its weights."""
    if RunFolder(run_dir).is_export:
        raise UserError(
            f"{run_dir} holds an export (diffusiontools.json and the weights it describes), "
            "which a training would mix its files into: train into another folder"
        )
    entries = _run_entries(run_dir)
    config = RunFolder(run_dir).config
    if not entries or (config.is_file() and written_by_a_run(config)):
        return
    names = ", ".join(entry.name for entry in entries)
    raise UserError(
        f"{run_dir} holds {names}, which no run wrote: a training would write its own files "
        "under those names; train into another folder"
    )


def written_by_a_run(config: Path) -> bool:
    """Whether the config.ini at ``config`` is one a run wrote, unedited
    (``config.is_run_config_text``)."""
    return is_run_config_text(_config_text(config))


def edited_since_its_run(config: Path) -> bool:
    """Whether the config.ini at ``config`` is a run's that was edited since
    (``config.is_edited_run_config``): the user's text now."""
    return is_edited_run_config(_config_text(config))


def _config_text(config: Path) -> str:
    try:
        with open(config, encoding="utf-8", errors="replace") as f:
            return f.read(1 << 20)  # a run's is a few kB
    except OSError:
        return ""


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run: a checkpoint, or the metrics.csv of a run killed before
    its first checkpoint, beside the config.ini that run wrote first (a metrics.csv alone is
    the user's file)."""
    folder = RunFolder(run_dir)
    if folder.latest.is_file():
        return True
    return folder.metrics.is_file() and folder.config.is_file() and written_by_a_run(folder.config)


def move_aside(run_dir: Path) -> None:
    """Move the run in ``run_dir`` (the ``RUN_ENTRIES`` it has; the user's own files stay) into
    ``run_dir/.previous`` (renames in one file system, so nothing is copied or lost).
    :func:`discard_previous` deletes it once the new run has written its first checkpoint;
    :func:`recover` puts it back if the new run dies first. Call while holding the run's lock.
    """
    previous = RunFolder(run_dir).previous
    previous.mkdir()
    for entry in _run_entries(run_dir):
        os.replace(entry, previous / entry.name)


def discard_previous(run_dir: Path) -> None:
    """Delete the run that an overwrite moved aside (the new run has its first checkpoint)."""
    shutil.rmtree(RunFolder(run_dir).previous, ignore_errors=True)


def recover(run_dir: Path) -> None:
    """Finish or undo an overwrite that was interrupted: if the new run wrote a checkpoint, the
    old run goes; otherwise the new run's first files go and the old run comes back as it was.
    Call while holding the run's lock, before anything else looks at the folder.
    """
    folder = RunFolder(run_dir)
    previous = folder.previous
    if not previous.is_dir():
        return
    if folder.latest.is_file():
        discard_previous(run_dir)
        return
    for entry in _run_entries(run_dir):
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    for entry in previous.iterdir():
        os.replace(entry, folder.path / entry.name)
    previous.rmdir()


# What diffusiontools writes into a run folder (train, sample, reconstruct): all that an
# overwrite replaces. Anything else in the folder is the user's and is never moved or deleted.
RUN_ENTRIES = (
    CONFIG_FILE,
    DATA_FILE,
    METRICS_FILE,
    TENSORBOARD_DIR,
    LEARNING_CURVE,
    CHECKPOINT_DIR,
    SAMPLES_DIR,
    RECONSTRUCTION_DIR,
    EXPORTS,
)


def _run_entries(run_dir: Path) -> list[Path]:
    """The entries of ``run_dir`` that diffusiontools wrote (``RUN_ENTRIES``) and that exist."""
    entries = (Path(run_dir) / name for name in RUN_ENTRIES)
    return [entry for entry in entries if entry.exists()]


def recover_if_idle(run_dir: Path) -> None:
    """:func:`recover` unless a training holds the folder's lock (its overwrite is under way):
    a run read after a killed overwrite is the old run, not the half-written new one."""
    if not RunFolder(run_dir).previous.is_dir():
        return
    try:
        with RunLock(run_dir):
            recover(run_dir)
    except UserError:
        pass  # a training is running in the folder: its own recovery is in charge


def ensure_writable(folder: Path, argument: str, what: str) -> None:
    """Create ``folder`` (the ``argument`` given: ``run_dir``) and prove it takes a file now,
    before any work that would be lost; ``what`` goes there (``the run``), named when it cannot
    (``check_output_folder``)."""
    check_output_folder(folder, argument, what)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write_test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"{argument}={folder} is not writable: {exc.strerror}") from None


class RunLock:
    """An exclusive ``flock`` on ``folder/.lock``: a second training (``what``: a second
    reproduce) in the same folder fails fast.

    The kernel drops the lock when the process dies, so a killed run never leaves a stale lock.
    """

    def __init__(self, folder: Path, what: str = "training"):
        self.path, self.what = RunFolder(folder).lock, what
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise UserError(
                f"another {self.what} is running in {self.path.parent} (it holds {self.path})"
            ) from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def write_json(path: Path, data: dict) -> None:
    tmp = Path(path).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def write_metrics(run_dir: Path, rows: list[dict]) -> None:
    """Rewrite ``metrics.csv`` from the checkpointed history (so resume never duplicates rows).

    ``METRICS_COLUMNS``, then any other column some row has (the quality probe's, on the epochs
    it ran: ``training.eval_every``), in the order they first appear; empty where a row has none.
    """
    path = RunFolder(run_dir).metrics
    tmp = path.with_suffix(".csv.tmp")
    columns = list(dict.fromkeys([*METRICS_COLUMNS, *(k for row in rows for k in row)]))
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def read_metrics(run_dir: Path) -> list[dict]:
    """metrics.csv as one dict per epoch of floats; an empty cell (an epoch the quality probe
    did not run) is None."""
    with open(RunFolder(run_dir).metrics, newline="") as f:
        return [
            {k: None if v == "" else float(v) for k, v in row.items()} for row in csv.DictReader(f)
        ]
