"""The run folder: its files, the guard against clobbering a run, and the one-trainer lock."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import shutil
from pathlib import Path

from .checkpoint import CHECKPOINT_DIR, latest_path
from .errors import UserError

CONFIG_FILE = "config.ini"
DATA_FILE = "data.json"
METRICS_FILE = "metrics.csv"
METRICS_COLUMNS = ("epoch", "step", "train_loss", "val_loss", "images_per_s", "epoch_seconds")


def prepare(run_dir: Path, resume: bool, overwrite: bool) -> Path:
    """Create ``run_dir`` for a new run, or check it holds one to resume; never clobber silently."""
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise UserError("--resume and --overwrite contradict each other: give one of them")
    has_run = latest_path(run_dir).is_file() or (run_dir / METRICS_FILE).is_file()
    if resume and not latest_path(run_dir).is_file():
        raise UserError(f"--resume given but {run_dir} holds no checkpoint to resume from")
    if has_run and not resume:
        if not overwrite:
            raise UserError(
                f"{run_dir} already holds a run; pass --resume to continue it or --overwrite to "
                "replace it"
            )
        for name in (CHECKPOINT_DIR, METRICS_FILE):
            target = run_dir / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    ensure_writable(run_dir)
    return run_dir


def ensure_writable(folder: Path) -> None:
    """Create ``folder`` and prove it takes a file now, before any work that would be lost."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write_test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"output folder {folder} is not writable: {exc.strerror}") from None


class RunLock:
    """An exclusive ``flock`` on ``run_dir/.lock``: a second training in the same folder fails fast.

    The kernel drops the lock when the process dies, so a killed run never leaves a stale lock.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise UserError(
                f"another training is running in {self.path.parent} (it holds {self.path})"
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
    """Rewrite ``metrics.csv`` from the checkpointed history (so resume never duplicates rows)."""
    path = Path(run_dir) / METRICS_FILE
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRICS_COLUMNS)
        writer.writeheader()
        writer.writerows({k: row[k] for k in METRICS_COLUMNS} for row in rows)
    os.replace(tmp, path)


def read_metrics(run_dir: Path) -> list[dict]:
    with open(Path(run_dir) / METRICS_FILE, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
