"""The starter notebook's CNN (a modified minDiffusion network), exactly as the report used it."""

from __future__ import annotations

import torch
from torch import nn

from .class_embedding import ClassEmbedding
from .time_embedding import TimeEmbedding


class CNNBlock(nn.Module):
    """Conv(7x7) -> LayerNorm over the whole image (one affine map shared by channels) -> GELU."""

    def __init__(self, in_channels: int, out_channels: int, image_size: int, kernel: int = 7):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2),
            nn.LayerNorm((image_size, image_size)),
            nn.GELU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN(nn.Module):
    """Image-to-image CNN with no down-sampling and no skips; 146,961 parameters at (16,32,32,16).

    The time embedding is added to the output of the *first* block (after its GELU), as in the
    notebook. Inputs: x (B, C, S, S) for ``image_channels`` C and ``image_size`` S (the notebook:
    1, 28), t (B,) in [0, 1]; output (B, C, S, S). With ``num_classes > 0`` a learned class
    embedding (index ``num_classes`` = "no label") is added beside the time embedding, for
    classifier-free guidance; this is not part of the faithful model.
    """

    def __init__(
        self,
        n_hidden: tuple[int, ...] = (16, 32, 32, 16),
        num_classes: int = 0,
        *,
        image_channels: int,
        image_size: int,
    ):
        super().__init__()
        widths = (image_channels, *n_hidden)
        self.blocks = nn.ModuleList(
            CNNBlock(c_in, c_out, image_size)
            for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
        )
        self.blocks.append(nn.Conv2d(n_hidden[-1], image_channels, 3, padding=1))
        self.time_embed = TimeEmbedding(n_hidden[0])
        self.class_embed = ClassEmbedding(num_classes, n_hidden[0]) if num_classes else None

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = self.blocks[0](x)  # (B, C0, S, S)
        h = h + self.time_embed(t)[:, :, None, None]
        if self.class_embed is not None:
            h = h + self.class_embed(y, x.shape[0], x.device)[:, :, None, None]
        for block in self.blocks[1:]:
            h = block(h)
        return h
