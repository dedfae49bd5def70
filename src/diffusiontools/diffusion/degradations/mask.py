"""A growing square mask as a cold-diffusion degradation (inpainting).

Bansal et al. (2022), "Cold Diffusion", Sec. 4.2, degrade images by masking a growing region
(a centred Gaussian mask in their case). Here the mask is a square that grows around a centre
placed at random by the image's key, so one network learns to inpaint anywhere while a
sampling trajectory (one key) keeps one centre:

- the centre c = (c_r, c_c) is uniform over the image, from ``uniform_fields(key, (2,))``;
- pixel (i, j) is masked when its centre is within the Chebyshev distance level of c, measured
  in image sides: max(|i + 0.5 - c_r| / H, |j + 0.5 - c_c| / W) < level;
- masked pixels take the background value -0.5, in every channel alike (RGB: black).

So level 0 masks nothing (identity), level 1 masks everything wherever the centre is, and the
masked set only grows with the level (nested squares, for one key).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from diffusiontools.diffusion.degradations.base import BACKGROUND, check_level_range
from diffusiontools.diffusion.degradations.random_fields import uniform_fields


def square_mask(level: Tensor, key: Tensor, size: tuple[int, int]) -> Tensor:
    """Boolean masks, True where masked.

    level: (B,) float in [0, 1]; key: (B,) int64; size: (H, W). Returns (B, H, W) bool on
    level's device.
    """
    height, width = size
    centre = uniform_fields(key, (2,)).to(level.device, torch.float64)  # (B, 2) in [0, 1)
    rows = (torch.arange(height, device=level.device, dtype=torch.float64) + 0.5) / height
    cols = (torch.arange(width, device=level.device, dtype=torch.float64) + 0.5) / width
    row_dist = (rows[None, :] - centre[:, 0:1]).abs()  # (B, H), in image sides
    col_dist = (cols[None, :] - centre[:, 1:2]).abs()  # (B, W)
    chebyshev = torch.maximum(row_dist[:, :, None], col_dist[:, None, :])  # (B, H, W)
    return chebyshev < level.to(torch.float64)[:, None, None]


@dataclass(frozen=True)
class Mask:
    """Square mask of Chebyshev radius = level (in image sides) at a key-placed centre."""

    name: str = "mask"
    default_levels: tuple[float, float] = (0.0, 1.0)
    random_field: bool = True

    def check_levels(self, level_min: float, level_max: float) -> None:
        """Level 1 already masks the whole image from any centre."""
        check_level_range(self.name, level_min, level_max, 0.0, 1.0)

    def max_level(self, side: int) -> float:
        """The level is in image sides, so the size sets no bound."""
        return math.inf

    def __call__(self, x: Tensor, level: Tensor, key: Tensor) -> Tensor:
        """x: (B, C, H, W); level: (B,) in [0, 1]; key: (B,) int64. Returns (B, C, H, W)."""
        masked = square_mask(level.to(x.device), key.to(x.device), (x.shape[-2], x.shape[-1]))
        return torch.where(masked[:, None], torch.full_like(x, BACKGROUND), x)
