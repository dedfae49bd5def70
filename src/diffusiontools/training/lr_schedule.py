"""The learning rate of each optimiser step, a pure function of the step (so resuming is exact)."""

from __future__ import annotations

import math

import torch

from ..config import TrainingConfig
from ..errors import UserError


def lr_at(config: TrainingConfig, step: int) -> float:
    """The learning rate of optimiser step ``step`` (0-based: the step about to be taken).

    ``constant``: ``config.lr``. ``cosine``: ``lr * (step + 1) / warmup_steps`` during the warm-up,
    then ``lr * (1 + cos(pi * p)) / 2`` with p = (step - warmup) / (lr_decay_steps - warmup), and 0
    from ``lr_decay_steps`` on (SGDR, Loshchilov & Hutter 2017, one cycle, minimum 0). The trainer
    never takes a step at 0: :func:`check_schedule_covers` refuses such a run before it starts.
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


def check_schedule_covers(config: TrainingConfig, steps_per_epoch: int) -> None:
    """Refuse a cosine schedule that reaches 0 before the run's last optimiser step.

    The run takes ``epochs * steps_per_epoch`` steps, or ``max_steps`` if that is fewer; steps
    from ``lr_decay_steps`` on would train at learning rate 0, changing nothing but the run's
    length, so ``lr_decay_steps`` must be at least the run's steps. (A decay longer than the run
    is allowed: a resume with more steps goes on along the same curve.)
    Raises UserError naming ``training.lr_decay_steps``, its value and the run's steps.
    """
    total, how = config.epochs * steps_per_epoch, f"{config.epochs} epochs of {steps_per_epoch}"
    if config.max_steps is not None and config.max_steps < total:
        total, how = config.max_steps, f"training.max_steps={config.max_steps}"
    if config.lr_schedule != "cosine" or config.lr_decay_steps >= total:
        return
    raise UserError(
        f"training.lr_decay_steps={config.lr_decay_steps} is below this run's {total} optimiser "
        f"steps ({how}), whose last {total - config.lr_decay_steps} would train at learning "
        f"rate 0: give training.lr_decay_steps of at least {total}, or fewer steps "
        "(training.epochs, training.max_steps)"
    )


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Give every parameter group of ``optimizer`` the learning rate ``lr``."""
    for group in optimizer.param_groups:
        group["lr"] = lr
