"""Bansal et al.'s MNIST inpainting degradation: a Gaussian fade at a random centre, t times.

Their public code (defading-diffusion-pytorch, ``mnist_train.py`` with the README's MNIST
command: ``--time_steps 50 --kernel_std 0.1 --fade_routine Random_Incremental --discrete``)
builds for step i the fade mask 1 - exp(-r^2 / (2 sigma_i^2)), sigma_i = 0.1 (i + 11) px
(``initial_mask`` = 11, their default), r the distance to a centre, and multiplies the image by
the masks of steps 0..t-1, so pixels near the centre fade to 0 (mid-grey in their [-1, 1] units
and in ours) while the hole widens. The centre is drawn per image and kept for all steps: they
crop a (2S + 1)-wide kernel at a uniform offset in 0..S, which puts the centre at row and column
S - 1 - offset, in -1..S-1 (S the image side).

Here the level is the number of fade steps n (rounded; 0 is the identity) and the centre comes
from the image's key, so a linear schedule from 0 to T with T steps gives x_t exactly. Not
reproduced: their ``--discrete`` rounding of x_t to 8-bit levels during training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from diffusiontools.diffusion.degradations.base import check_level_range
from diffusiontools.diffusion.degradations.random_fields import uniform_fields

FADE_STD = 0.1  # their --kernel_std
INITIAL_MASK = 11  # their initial_mask: sigma_i = FADE_STD * (i + INITIAL_MASK)


def fade_masks(n_max: int, key: Tensor, size: tuple[int, int]) -> Tensor:
    """Cumulative fade factors after 1..n_max steps, (n_max, B, H, W) float64 on key's device.

    Entry k - 1 is prod_{i < k} (1 - exp(-r^2 / (2 sigma_i^2))) with each image's own centre.
    """
    height, width = size
    u = uniform_fields(key, (2,)).to(torch.float64)  # (B, 2) in [0, 1)
    # offset uniform over 0..S (S + 1 values), centre at S - 1 - offset, as their crop.
    centre_r = height - 1 - torch.floor(u[:, 0] * (height + 1))  # (B,)
    centre_c = width - 1 - torch.floor(u[:, 1] * (width + 1))
    rows = torch.arange(height, dtype=torch.float64, device=key.device)
    cols = torch.arange(width, dtype=torch.float64, device=key.device)
    r2 = (rows[None, :, None] - centre_r[:, None, None]) ** 2 + (
        cols[None, None, :] - centre_c[:, None, None]
    ) ** 2  # (B, H, W)
    masks, factor = [], torch.ones_like(r2)
    for i in range(n_max):
        sigma = FADE_STD * (i + INITIAL_MASK)
        factor = factor * (1 - torch.exp(-r2 / (2 * sigma**2)))
        masks.append(factor)
    return torch.stack(masks)


@dataclass(frozen=True)
class Fade:
    """Bansal et al.'s "Random_Incremental" fade: level = number of fade steps; one centre per
    image, every channel faded alike."""

    name: str = "fade"
    default_levels: tuple[float, float] = (0.0, 50.0)
    random_field: bool = True

    def check_levels(self, level_min: float, level_max: float) -> None:
        """Up to 100 steps (their MNIST setting uses 50; by 100 the hole covers the image)."""
        check_level_range(self.name, level_min, level_max, 0.0, 100.0)

    def max_level(self, side: int) -> float:
        """The hole widens in pixels whatever the side: the size sets no bound."""
        return math.inf

    def __call__(self, x: Tensor, level: Tensor, key: Tensor) -> Tensor:
        """x: (B, C, H, W); level: (B,) >= 0; key: (B,) int64. Returns (B, C, H, W)."""
        n = torch.floor(level.double() + 0.5).to(torch.int64).to(x.device)  # (B,)
        n_max = int(n.max())
        if n_max == 0:
            return x.clone()
        masks = fade_masks(n_max, key.to(x.device), (x.shape[-2], x.shape[-1]))  # (N, B, H, W)
        batch = torch.arange(len(n), device=x.device)
        factor = masks[(n - 1).clamp(min=0), batch]  # (B, H, W): each image's own step
        faded = (x.double() * factor[:, None]).to(x.dtype)
        return torch.where((n == 0)[:, None, None, None], x, faded)
