"""The learning rate of each optimiser step, a pure function of the step (so resuming is exact)."""

from __future__ import annotations

import math

import torch

from ..config import TrainingConfig


def lr_at(config: TrainingConfig, step: int) -> float:
    """The learning rate of optimiser step ``step`` (0-based: the step about to be taken).

    ``constant``: ``config.lr``. ``cosine``: ``lr * (step + 1) / warmup_steps`` during the warm-up,
    then ``lr * (1 + cos(pi * p)) / 2`` with p = (step - warmup) / (lr_decay_steps - warmup), and 0
    from ``lr_decay_steps`` on (SGDR, Loshchilov & Hutter 2017, one cycle, minimum 0).
    """
    if config.lr_schedule == "constant":
        return config.lr
    warmup, decay = config.warmup_steps, config.lr_decay_steps
    if step < warmup:
        return config.lr * (step + 1) / warmup
    if step >= decay:
        return 0.0
    progress = (step - warmup) / (decay - warmup)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Give every parameter group of ``optimizer`` the learning rate ``lr``."""
    for group in optimizer.param_groups:
        group["lr"] = lr
