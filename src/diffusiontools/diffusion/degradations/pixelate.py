"""Pixelation as a cold-diffusion degradation (super-resolution).

Bansal et al. (2022), "Cold Diffusion", Sec. 4.3, degrade images by down-sampling: each block of
pixels is replaced by its average, then shown at full size again. Here the level is the block
side in pixels, continuous so that a linear schedule can drive it: block = round(level) (halves
round up), at least 1.

A side S (MNIST's 28) is divisible by few block sizes, so each side is split into
n = ceil(S / block) cells of as equal a size as possible (pixel i goes to cell
floor((i + 0.5) * n / S), which spreads the larger cells symmetrically: 9, 10, 9 for n = 3 on
28 px). Blocks that divide S get exact blocks. Every channel gets the same cells.
Padding with background to a multiple of the block was the alternative, but it mixes more and
more background into the border cells as the block grows, so the distance to x0 then falls at
some larger blocks (on 28 px: 11 -> 13, 27 -> 28); with the cell split, a larger level never
degrades less (blocks with the same n give the same image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from diffusiontools.diffusion.degradations.base import check_level_range


def pixelate(x: Tensor, block: int) -> Tensor:
    """Average over ceil(side / block) cells per side, then show each cell at full size.

    x: (B, C, H, W). Returns (B, C, H, W); block 1 returns a copy of x.
    """
    if block == 1:
        return x.clone()
    height, width = x.shape[-2:]
    row_cell, row_mean = _cells(height, block, x)
    col_cell, col_mean = _cells(width, block, x)
    cells = row_mean @ x @ col_mean.T  # (B, C, n_rows, n_cols): the cell averages
    return cells[..., row_cell, :][..., col_cell]  # nearest up-sampling back to (H, W)


def _cells(side: int, block: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """Cell of each pixel along one side, (side,) int64, and the averaging matrix (n, side)."""
    n = math.ceil(side / block)
    cell = torch.floor((torch.arange(side, device=like.device) + 0.5) * n / side).to(torch.int64)
    members = cell[None, :] == torch.arange(n, device=like.device)[:, None]  # (n, side)
    mean = members.to(like.dtype) / members.sum(dim=1, keepdim=True).to(like.dtype)
    return cell, mean


@dataclass(frozen=True)
class Pixelate:
    """Pixelation with block side round(level) pixels, one level per image; key unused."""

    name: str = "pixelate"
    default_levels: tuple[float, float] = (1.0, 14.0)
    random_field: bool = False

    def check_levels(self, level_min: float, level_max: float) -> None:
        """Blocks start at 1 px (identity); their largest is the image's side (``max_level``)."""
        check_level_range(
            self.name, level_min, level_max, 1.0, math.inf, "at most the images' side"
        )

    def max_level(self, side: int) -> float:
        """A block of the whole side turns the image into its mean: the most there is."""
        return float(side)

    def __call__(self, x: Tensor, level: Tensor, key: Tensor) -> Tensor:
        """x: (B, C, H, W); level: (B,) >= 1; key: (B,) ignored. Returns (B, C, H, W)."""
        block = torch.floor(level.double() + 0.5).clamp(min=1).to(torch.int64).cpu()  # (B,)
        out = x.clone()
        # Images that share a block size are pixelated together: at most a few groups per batch.
        for size in torch.unique(block).tolist():
            if size > 1:
                rows = (block == size).nonzero().squeeze(1).to(x.device)
                out[rows] = pixelate(x[rows], size)
        return out
