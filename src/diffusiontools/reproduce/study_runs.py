"""Training one run of the study: whether it is trained, and its training (resumed, or started
again where a kill left no checkpoint). Shared by the study run one at a time
(``pipeline.train_all``) and the processes of ``side_by_side``."""

from __future__ import annotations

from pathlib import Path

from ..training.checkpoint import load_checkpoint
from ..training.run_folder import RunFolder, holds_run, recover_if_idle
from .scales import Scale
from .study import study_config


def trained(run_dir: Path, run_name: str, scale: Scale) -> bool:
    """Whether the study's run ``run_name`` in ``run_dir`` has finished its training: every
    epoch of its config, the last epoch's quality probe included."""
    latest = RunFolder(run_dir).latest
    if not latest.is_file():
        return False
    ckpt = load_checkpoint(latest)
    return ckpt["epoch"] >= study_config(run_name, scale).training.epochs and not ckpt.get(
        "probe_pending", False
    )


def train_run(run_dir: Path, run_name: str, scale: Scale) -> None:
    """Train the study's run ``run_name`` into ``run_dir``: resumed from its checkpoint, or
    started (again) where it has none. The folder is the study's own, so the files of a run
    killed before its first checkpoint are replaced, as ``overwrite`` does; an overwrite killed
    before its new run's first checkpoint is put right first, so that the folder shows what it
    holds."""
    from ..evaluation.quality_probe import quality_probe
    from ..training.trainer import train

    recover_if_idle(run_dir)
    resume = RunFolder(run_dir).latest.is_file()
    config = study_config(run_name, scale)
    overwrite = not resume and holds_run(run_dir)
    train(config, run_dir, resume=resume, overwrite=overwrite, probe=quality_probe(config))
