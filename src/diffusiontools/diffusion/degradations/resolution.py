"""Bansal et al.'s MNIST super-resolution degradation: the resolution halved t times.

Their public code (resolution-diffusion-pytorch, README command for MNIST: ``--time_steps 3
--resolution_routine 'Incremental_factor_2'``) makes step i (i = 0, 1, ...) a bicubic
down-sampling (no antialiasing) to ``size // 2**(i + 1)`` pixels followed by a 'nearest-exact'
up-sampling back to full size, and x_t applies steps 0..t-1 one after the other. They resized
MNIST to 32 px (32 -> 16 -> 8 -> 4, as ``data.image_size = 32`` does); the steps take the images'
own side S, so on MNIST's 28 px the sizes are 14, 7 and 3. Every channel is resized alike.

The level is the number of halvings n (rounded; 0 is the identity), so a linear schedule from 0
to T with T steps gives x_t exactly. Bicubic weights sum to 1, so the operator commutes with our
[-0.5, 0.5] pixel units; it can overshoot the range slightly, as theirs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from diffusiontools.diffusion.degradations.base import apply_repeatedly, check_level_range


def halve_resolution(x: Tensor, step: int) -> Tensor:
    """Their step ``step``: bicubic down to side // 2**(step + 1), nearest-exact back up."""
    side = x.shape[-1]
    small = F.interpolate(x, size=side // 2 ** (step + 1), mode="bicubic", antialias=False)
    return F.interpolate(small, size=side, mode="nearest-exact")


@dataclass(frozen=True)
class Resolution:
    """Bansal et al.'s "Incremental_factor_2" routine: level = number of halvings."""

    name: str = "resolution"
    default_levels: tuple[float, float] = (0.0, 3.0)
    random_field: bool = False

    def check_levels(self, level_min: float, level_max: float) -> None:
        """Any count of halvings from 0 (identity); the side bounds it (``max_level``)."""
        check_level_range(
            self.name, level_min, level_max, 0.0, math.inf, "at most log2 of the images' side"
        )

    def max_level(self, side: int) -> float:
        """Halvings while at least 1 px is left: floor(log2(side)) (28 px: 4, 28 // 16 = 1)."""
        return float(side.bit_length() - 1)

    def __call__(self, x: Tensor, level: Tensor, key: Tensor) -> Tensor:
        """x: (B, C, H, W), square; level: (B,) >= 0; key: (B,) ignored. Returns (B, C, H, W)."""
        return apply_repeatedly(x, level, halve_resolution)
