"""The validation loss on fixed randomness (so that epochs are comparable), the class labels with
dropout that it and the training step feed the network, and the refusal of a non-finite loss."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..config import Config
from ..data import to_model
from ..diffusion.process import training_loss
from ..errors import UserError
from .checkpoint import latest_path
from .training_data import TrainingData

VALIDATION_SEED_OFFSET = 1_000_003  # validation randomness is fixed, and apart from training's


class NonFiniteLoss(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def kept_checkpoint(run_dir: Path) -> str:
    """What a stopped run leaves in ``run_dir``: its last good checkpoint, or, before its
    first, none (a claim of one would send the user to resume from nothing)."""
    if latest_path(run_dir).is_file():
        return f"the last good checkpoint in {run_dir} is kept"
    return f"{run_dir} holds no checkpoint yet"


def labels_for_guidance(
    labels: torch.Tensor | None,
    idx: torch.Tensor | slice,
    config: Config,
    generator: torch.Generator,
) -> torch.Tensor | None:
    """The class labels ``labels[idx]`` with a fraction dropped to the null label
    (classifier-free guidance); None for an unconditional model (``labels`` may then be None:
    a data set without labels)."""
    m = config.model
    if not m.num_classes:
        return None
    y = labels[idx]
    drop = torch.rand(y.shape, device=y.device, generator=generator) < m.class_dropout
    return torch.where(drop, torch.full_like(y, m.num_classes), y)


def validation_batches(data: TrainingData, config: Config) -> int:
    """Batches the validation loss runs over: every full batch of the validation split (at
    least one), at most ``training.val_batches``; the remainder of fewer than ``batch_size``
    images is left out, so every batch has the training batch's shape."""
    n_batches = max(1, len(data.val) // config.training.batch_size)
    if config.training.val_batches:
        n_batches = min(n_batches, config.training.val_batches)
    return n_batches


@torch.no_grad()
def validation_loss(process, net: nn.Module, data: TrainingData, config: Config, device) -> float:
    """Mean loss of ``net`` over the first :func:`validation_batches` batches of the validation
    split, with the same t and noise every epoch (fixed seed)."""
    net.eval()
    generator = torch.Generator(device).manual_seed(config.training.seed + VALIDATION_SEED_OFFSET)
    batch_size = config.training.batch_size
    n_batches = validation_batches(data, config)
    total = torch.zeros((), device=device)
    for b in range(n_batches):
        sl = slice(b * batch_size, (b + 1) * batch_size)
        y = labels_for_guidance(data.val_labels, sl, config, generator)
        total += training_loss(process, net, to_model(data.val[sl]), generator, y)
    net.train()
    return float(total) / n_batches
