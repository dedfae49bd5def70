"""A small UNet for square images (after Ho et al. 2020's DDPM UNet, cut down to run on a CPU).

Resolutions S -> S/2 -> S/4 ... (MNIST: 28 -> 14 -> 7) with one residual block per level on
each side, skip connections
between the two sides, strided-conv downsampling and nearest + conv upsampling. Not part of the
faithful model (that is the notebook CNN); offered as a stronger network for the same processes.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import UserError
from .class_embedding import ClassEmbedding
from .time_embedding import TimeEmbedding


def check_levels(channel_mults: tuple[int, ...], image_size: int) -> None:
    """Refuse more levels than ``image_size`` halves into: level i works at image_size / 2**i
    pixels and upsampling doubles, so the size must divide by 2**(levels - 1) exactly."""
    if image_size % 2 ** (len(channel_mults) - 1):
        most = (image_size & -image_size).bit_length()  # 1 + the times it halves exactly
        raise UserError(
            f"model.channel_mults = {channel_mults} asks for {len(channel_mults)} levels, but "
            f"{image_size}x{image_size} images halve exactly into at most {most}: give 1 to "
            f"{most} entries"
        )


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with min(8, channels) groups when that divides ``channels`` (gcd otherwise)."""
    return nn.GroupNorm(math.gcd(8, channels), channels)


class ResBlock(nn.Module):
    """(GroupNorm -> SiLU -> Conv3x3) twice, the embedding added in between, plus a skip path.

    x (B, in_channels, H, W), emb (B, emb_dim) -> (B, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int):
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, out_channels)
        self.norm2 = group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.act = nn.SiLU()
        self.skip = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, 1)
        )

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = h + self.emb_proj(emb)[:, :, None, None]  # (B, C_out, 1, 1), one shift per channel
        h = self.conv2(self.act(self.norm2(h)))
        return h + self.skip(x)


class UNet(nn.Module):
    """x (B, C, S, S), t (B,) in [0, 1], optional labels y (B,) -> (B, C, S, S), for
    ``image_channels`` C and ``image_size`` S (MNIST: 1, 28).

    Level i works at S / 2**i pixels with ``base_channels * channel_mults[i]`` channels, so S
    must divide by 2**(len(channel_mults) - 1) (:func:`check_levels`; 28: 1 to 3 entries). The
    time embedding (the notebook's sinusoidal MLP) and, with ``num_classes > 0``, a class embedding
    with a "no label" entry (for classifier-free guidance) are summed and projected into every
    residual block.
    """

    def __init__(
        self,
        base_channels: int = 32,
        channel_mults: tuple[int, ...] = (1, 2, 2),
        num_classes: int = 0,
        *,
        image_channels: int,
        image_size: int,
    ):
        super().__init__()
        check_levels(channel_mults, image_size)
        widths = [base_channels * mult for mult in channel_mults]
        emb_dim = 4 * base_channels
        self.time_embed = TimeEmbedding(emb_dim)
        self.class_embed = ClassEmbedding(num_classes, emb_dim) if num_classes else None
        self.emb_act = nn.SiLU()

        self.stem = nn.Conv2d(image_channels, widths[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        channels = widths[0]
        for level, width in enumerate(widths):
            self.down_blocks.append(ResBlock(channels, width, emb_dim))
            channels = width
            if level < len(widths) - 1:
                self.downsamples.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
        self.middle = ResBlock(channels, channels, emb_dim)
        self.up_blocks = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        for level in reversed(range(len(widths))):
            self.up_blocks.append(ResBlock(channels + widths[level], widths[level], emb_dim))
            channels = widths[level]
            if level > 0:
                self.upsamples.append(
                    nn.Sequential(
                        nn.Upsample(scale_factor=2, mode="nearest"),
                        nn.Conv2d(channels, widths[level - 1], 3, padding=1),
                    )
                )
                channels = widths[level - 1]
        self.head = nn.Sequential(
            group_norm(channels), nn.SiLU(), nn.Conv2d(channels, image_channels, 3, padding=1)
        )

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        emb = self.time_embed(t)  # (B, emb_dim)
        if self.class_embed is not None:
            emb = emb + self.class_embed(y, x.shape[0], x.device)
        emb = self.emb_act(emb)

        h = self.stem(x)  # (B, widths[0], S, S)
        skips = []
        for level, block in enumerate(self.down_blocks):
            h = block(h, emb)
            skips.append(h)
            if level < len(self.downsamples):
                h = self.downsamples[level](h)  # halves H and W: 28 -> 14 -> 7
        h = self.middle(h, emb)
        for level, block in enumerate(self.up_blocks):
            h = block(torch.cat((h, skips.pop()), dim=1), emb)  # (B, C + C_skip, H, W)
            if level < len(self.upsamples):
                h = self.upsamples[level](h)  # doubles H and W: 7 -> 14 -> 28
        return self.head(h)
