"""The calls a notebook or script makes: train a config into a run folder and get the model."""

from __future__ import annotations

from pathlib import Path

from .config import Config, load_config
from .trained_model import TrainedModel, load


def train(
    config: Config | str | Path,
    run_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
) -> TrainedModel:
    """Train ``config`` (a :class:`Config`, an INI path or a packaged name such as
    ``"quickstart"``) into the folder ``run_dir`` and return the trained model (EMA weights where
    the run keeps them), on the device it trained on.

    ``resume``: continue the run in ``run_dir`` from its latest checkpoint (only the keys listed
    in docs/reliability.md may differ from the run's config); ``overwrite``: replace the run in
    ``run_dir`` (checked first, deleted only once the new run has a checkpoint). Ctrl-C writes a
    checkpoint and raises ``KeyboardInterrupt`` (``TrainingStopped``); ``resume=True`` continues.
    Raises DiffusionToolsError for bad settings, a folder that holds a run (without ``resume``
    or ``overwrite``), or a non-finite loss. Progress goes to tqdm bars and the
    ``diffusiontools`` logger.
    """
    from .trainer import train as train_run  # torch-heavy: imported when training starts

    if not isinstance(config, Config):
        config = load_config(config)
    train_run(config, Path(run_dir), resume=resume, overwrite=overwrite)
    return load(run_dir, device=config.training.device)
