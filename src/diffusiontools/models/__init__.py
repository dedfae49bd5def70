"""Networks map (x_t, t in [0,1], optional label) to an image; they know nothing of diffusion."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..config import ModelConfig
from .cnn import CNN


def make_network(config: ModelConfig, seed: int | None = None) -> nn.Module:
    """Build the network named by ``config.network`` (on the CPU).

    ``seed``: initialise the weights from this seed, leaving torch's global RNG as it was (what
    library code does); None: draw them from the global RNG, as any ``nn.Module`` does.
    """
    seeded = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
    with seeded:
        if seed is not None:
            torch.manual_seed(seed)
        if config.network == "cnn":
            return CNN(config.n_hidden, num_classes=config.num_classes)
        from .unet import UNet

        return UNet(config.base_channels, config.channel_mults, num_classes=config.num_classes)
