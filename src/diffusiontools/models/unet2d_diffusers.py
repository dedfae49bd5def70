"""diffusers' ``UNet2DModel`` behind our network signature, so that a run exports to diffusers.

Our own UNet (``unet.py``) cannot be mapped onto ``UNet2DModel``: its time embedding (16 fixed
frequencies of t in [0, 1], then a 4-layer GELU MLP), its one skip per resolution and its
channel-changing upsamplers have no counterpart there. This option trains diffusers' network
directly instead: the weights a run saves are ``UNet2DModel``'s, key for key (prefixed
``unet.``). Needs the ``diffusers`` extra.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..optional import require
from .unet import check_levels


def unet2d_config(
    base_channels: int,
    channel_mults: tuple[int, ...],
    num_classes: int,
    T: int,
    image_channels: int,
    image_size: int,
) -> dict:
    """The ``UNet2DModel`` config of a small UNet for ``image_channels`` x S x S images
    (S = ``image_size``): one ResNet block per resolution on the way down (S -> S/2 -> ...;
    :func:`~diffusiontools.models.unet.check_levels` says how many fit), no attention,
    ``base_channels * channel_mults[i]`` channels at level i, GroupNorm with the largest group count
    up to 8 that divides every width, and with ``num_classes`` > 0 a class table of ``num_classes +
    1`` rows (the last one: no label, for classifier-free guidance)."""
    check_levels(channel_mults, image_size)
    widths = tuple(base_channels * mult for mult in channel_mults)
    return {
        "sample_size": image_size,
        "in_channels": image_channels,
        "out_channels": image_channels,
        "block_out_channels": widths,
        "down_block_types": ("DownBlock2D",) * len(widths),
        "up_block_types": ("UpBlock2D",) * len(widths),
        "layers_per_block": 1,
        "add_attention": False,
        "norm_num_groups": math.gcd(8, *widths),
        "num_class_embeds": num_classes + 1 if num_classes else None,
        "num_train_timesteps": T + 1,  # informative only: the positional embedding ignores it
    }


class UNet2DDiffusers(nn.Module):
    """x (B, C, S, S), t (B,) in [0, 1], optional labels y (B,) -> (B, C, S, S).

    ``UNet2DModel`` embeds the integer timestep (0..T) with its sinusoidal table, so ``t`` in
    [0, 1] goes in as t * T: the exported network, called by a diffusers scheduler with integer
    timesteps, computes what this one computed (up to the float rounding of t / T * T). Labels
    None mean "no label" (row ``num_classes`` of the class table); an unconditional network
    ignores labels, as our other networks do.
    """

    def __init__(
        self,
        T: int,
        base_channels: int = 32,
        channel_mults: tuple[int, ...] = (1, 2, 2),
        num_classes: int = 0,
        *,
        image_channels: int,
        image_size: int,
    ):
        super().__init__()
        diffusers = require("diffusers", "diffusers", "model.network = unet2d_diffusers")
        self.T = T
        self.num_classes = num_classes
        self.unet = diffusers.UNet2DModel(
            **unet2d_config(
                base_channels, channel_mults, num_classes, T, image_channels, image_size
            )
        )

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        if not self.num_classes:
            y = None  # an unconditional network ignores labels, as our others do
        elif y is None:
            y = torch.full((x.shape[0],), self.num_classes, dtype=torch.long, device=x.device)
        return self.unet(x, t * self.T, class_labels=y).sample
