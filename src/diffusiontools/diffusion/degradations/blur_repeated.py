"""Bansal et al.'s MNIST deblurring degradation: one fixed Gaussian kernel applied t times.

Their public code (deblurring-diffusion-pytorch, README command for MNIST: ``--time_steps 20
--blur_size 11 --blur_std 7.0 --blur_routine 'Constant'``) builds, for every step, the same
11 x 11 Gaussian kernel of standard deviation 7 (torchgeometry's ``get_gaussian_kernel2d``: a
normalised 1-D Gaussian over the 11 taps, outer product with itself) as a convolution with
circular padding, and x_t is that convolution applied t times to x0. So the blur's variance
grows linearly in t and, at t = 20, an MNIST digit is almost its own mean.

Here the level is the number of applications n (rounded to the nearest integer; 0 is the
identity), so a linear schedule from 0 to T with T steps gives their x_t exactly. Circular
padding wraps the image around (a stroke near one border bleeds into the opposite one), as
theirs; the kernel is linear and sums to 1, so it commutes with our [-0.5, 0.5] pixel units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from diffusiontools.diffusion.degradations.base import apply_repeatedly, check_level_range

KERNEL_SIZE = 11
KERNEL_STD = 7.0


def bansal_kernel(size: int = KERNEL_SIZE, std: float = KERNEL_STD) -> Tensor:
    """The normalised 1-D Gaussian of ``size`` taps, (size,) float64: their kernel's factor."""
    offsets = torch.arange(size, dtype=torch.float64) - size // 2
    weights = torch.exp(-(offsets**2) / (2 * std**2))
    return weights / weights.sum()


def blur_circular(x: Tensor, kernel: Tensor) -> Tensor:
    """One separable blur with circular padding, each channel alike. x: (B, C, H, W);
    kernel: (K,) odd K.

    The padding wraps by indexing, so it may wrap more than once: images narrower than the
    kernel's radius (``F.pad``'s circular mode refuses them) are blurred as the same tiling.
    """
    batch, channels, height, width = x.shape
    radius = len(kernel) // 2
    k = kernel.to(device=x.device, dtype=x.dtype)
    planes = x.reshape(batch * channels, 1, height, width)
    rows = torch.arange(-radius, height + radius, device=x.device) % height
    cols = torch.arange(-radius, width + radius, device=x.device) % width
    planes = planes[:, :, rows][:, :, :, cols]  # (B*C, 1, H + 2r, W + 2r)
    planes = F.conv2d(planes, k[None, None, None, :])  # rows
    planes = F.conv2d(planes, k[None, None, :, None])  # cols
    return planes.reshape(batch, channels, height, width)


@dataclass(frozen=True)
class RepeatedBlur:
    """Bansal et al.'s "Constant" blur routine: level = number of applications of the kernel."""

    name: str = "blur_repeated"
    default_levels: tuple[float, float] = (0.0, 20.0)
    random_field: bool = False

    def check_levels(self, level_min: float, level_max: float) -> None:
        """Up to 100 applications (their MNIST setting uses 20)."""
        check_level_range(self.name, level_min, level_max, 0.0, 100.0)

    def max_level(self, side: int) -> float:
        """Each application blurs an image of any side: the size sets no bound."""
        return math.inf

    def __call__(self, x: Tensor, level: Tensor, key: Tensor) -> Tensor:
        """x: (B, C, H, W); level: (B,) >= 0; key: (B,) ignored. Returns (B, C, H, W)."""
        kernel = bansal_kernel()
        return apply_repeatedly(x, level, lambda current, i: blur_circular(current, kernel))
