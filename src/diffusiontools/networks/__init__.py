"""Networks map (x_t, t in [0,1], optional label) to an image; they know nothing of diffusion."""

from __future__ import annotations

from torch import nn

from ..config import ModelConfig
from .cnn import CNN


def make_network(config: ModelConfig) -> nn.Module:
    """Build the network named by ``config.network``."""
    if config.network == "cnn":
        return CNN(config.n_hidden, num_classes=config.num_classes)
    from .unet import UNet

    return UNet(config.base_channels, config.channel_mults, num_classes=config.num_classes)
