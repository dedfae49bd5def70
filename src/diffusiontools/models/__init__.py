"""Networks map (x_t, t in [0,1], optional label) to an image; they know nothing of diffusion."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..config import ModelConfig, check_key
from ..errors import UserError
from .cnn import CNN


def make_network(
    config: ModelConfig,
    seed: int | None = None,
    T: int | None = None,
    *,
    shape: tuple[int, int, int],
) -> nn.Module:
    """Build the network named by ``config.network`` (on the CPU) for images ``shape``
    (C, H, W) with H == W (the data set's spec.shape).

    ``seed``: initialise the weights from this seed, leaving torch's global RNG as it was (what
    library code does); None: draw them from the global RNG, as any ``nn.Module`` does.
    ``T``: the process's number of steps, which ``unet2d_diffusers`` needs (it feeds diffusers'
    UNet the integer timestep t * T); the other networks take t in [0, 1] and ignore it.
    """
    check_key("model.network", config.network)  # a name of no network: refused, never a UNet
    channels, size = shape[0], shape[1]
    seeded = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
    with seeded:
        if seed is not None:
            torch.manual_seed(seed)
        if config.network == "cnn":
            return CNN(
                config.n_hidden, config.num_classes, image_channels=channels, image_size=size
            )
        if config.network == "unet2d_diffusers":
            from .unet2d_diffusers import UNet2DDiffusers  # late: needs the diffusers extra

            if T is None:
                raise UserError("make_network needs T= (the process's steps) for unet2d_diffusers")
            return UNet2DDiffusers(
                T,
                config.base_channels,
                config.channel_mults,
                config.num_classes,
                image_channels=channels,
                image_size=size,
            )
        from .unet import UNet

        return UNet(
            config.base_channels,
            config.channel_mults,
            config.num_classes,
            image_channels=channels,
            image_size=size,
        )
