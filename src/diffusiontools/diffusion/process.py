"""The contract every forward process keeps: what training and the samplers may rely on.

A process holds its schedule (noise levels or degradation levels) and no network and no
parameters; the network is always an argument. ``GaussianDiffusion`` (``gaussian.py``) and
``ColdDiffusion`` (``cold.py``) implement it; ``make_process`` picks one from the config.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn


class Process(Protocol):
    kind: str  # "gaussian" or "cold": which samplers apply (sampling/registry.py)

    @property
    def T(self) -> int:
        """Number of diffusion steps; t runs over 0..T."""
        ...

    def to(self, device: torch.device) -> Process:
        """The same process with its schedule tensors on ``device``."""
        ...

    def draw_noise(
        self, shape: torch.Size, generator: torch.Generator, device: torch.device
    ) -> dict:
        """One (global) training batch's randomness: ``t`` (B,) and ``eps`` or ``key``."""
        ...

    def loss(
        self, net: nn.Module, x0: torch.Tensor, noise: dict, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The training objective of x0 (B, C, H, W) under ``noise`` (a slice of one draw)."""
        ...


def training_loss(
    process: Process,
    net: nn.Module,
    x0: torch.Tensor,
    generator: torch.Generator,
    y: torch.Tensor | None = None,
) -> torch.Tensor:
    """One batch's loss with fresh randomness, for any process:
    ``process.loss(net, x0, process.draw_noise(...), y)``; x0 (B, C, H, W)."""
    return process.loss(net, x0, process.draw_noise(x0.shape, generator, x0.device), y)
