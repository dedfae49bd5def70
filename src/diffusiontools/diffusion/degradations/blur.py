"""Gaussian blur as a cold-diffusion degradation (deblurring).

Bansal et al. (2022), "Cold Diffusion", Sec. 4.1, degrade MNIST by Gaussian blur that grows with
t (they apply a fixed kernel t times; a composition of Gaussian blurs is again a Gaussian blur
whose variances add). Here the level is the standard deviation sigma of the total blur, in
pixels, so the process's schedule sets it directly.

Border: the image is padded with the background value -0.5, i.e. zero padding of x + 0.5. MNIST
digits sit on an empty background, so this is what lies beyond the frame; reflect padding would
instead mirror any stroke that touches the border back into the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from diffusiontools.diffusion.degradations.base import BACKGROUND, check_level_range


def gaussian_kernels(sigma: Tensor, radius: int) -> Tensor:
    """One normalised 1-D Gaussian kernel per sigma, truncated at ceil(3 * sigma).

    sigma: (B,) float >= 0. Returns (B, 2 * radius + 1) on sigma's device and dtype, with
    radius >= ceil(3 * max sigma); taps beyond an image's own ceil(3 * sigma) are exactly 0, and
    sigma = 0 gives the unit impulse.
    """
    offsets = torch.arange(-radius, radius + 1, device=sigma.device, dtype=sigma.dtype)  # (K,)
    own_radius = torch.ceil(3 * sigma)[:, None]  # (B, 1)
    safe_sigma = torch.where(sigma > 0, sigma, torch.ones_like(sigma))[:, None]  # no 0 / 0
    weights = torch.exp(-(offsets**2) / (2 * safe_sigma**2))  # (B, K)
    weights = torch.where(offsets.abs() <= own_radius, weights, torch.zeros_like(weights))
    return weights / weights.sum(dim=1, keepdim=True)


@dataclass(frozen=True)
class GaussianBlur:
    """Gaussian blur with standard deviation = level (pixels), one sigma per image and the same
    for each of its channels; key unused."""

    name: str = "blur"
    default_levels: tuple[float, float] = (0.0, 3.0)
    random_field: bool = False

    def check_levels(self, level_min: float, level_max: float) -> None:
        """Up to sigma = 10 px (on 28-px images the truncated kernel is then wider than two
        images: all is blurred)."""
        check_level_range(self.name, level_min, level_max, 0.0, 10.0)

    def max_level(self, side: int) -> float:
        """Any sigma blurs an image of any side: the size sets no bound."""
        return math.inf

    def __call__(self, x: Tensor, level: Tensor, key: Tensor) -> Tensor:
        """x: (B, C, H, W); level: (B,) sigma >= 0; key: (B,) ignored. Returns (B, C, H, W)."""
        batch, channels, height, width = x.shape
        sigma = level.to(device=x.device, dtype=x.dtype)  # (B,)
        radius = math.ceil(3 * float(sigma.max()))
        if radius == 0:
            return x.clone()
        kernels = gaussian_kernels(sigma, radius).repeat_interleave(channels, dim=0)  # (B*C, K)
        # Separable blur as a grouped convolution: each (image, channel) is its own group.
        planes = x.reshape(1, batch * channels, height, width)
        planes = F.pad(planes, (radius, radius, radius, radius), value=BACKGROUND)
        planes = F.conv2d(planes, kernels[:, None, None, :], groups=batch * channels)  # rows
        planes = F.conv2d(planes, kernels[:, None, :, None], groups=batch * channels)  # cols
        blurred = planes.reshape(batch, channels, height, width)
        # A convolution with the unit impulse is not bit-exact on every backend: keep sigma = 0.
        return torch.where((sigma == 0)[:, None, None, None], x, blurred)
