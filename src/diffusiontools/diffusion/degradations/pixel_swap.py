"""The report's "custom" cold-diffusion degradation: local pixel swaps, in raster order.

For a level s the original draws two uniform fields u1, u2 over the image grid and gives pixel
(i, j) of an H x W image (the report's: 28 x 28) the partner ((i + dr) % H, (j + dc) % W), with

    dc = int((u1 - 0.5) * 2 * s * W),  dr = int((u2 - 0.5) * 2 * s * H)    (int truncates to 0)

then visits the pixels in raster order and swaps each with its partner in place, one after the
other, so a pixel can move more than once. At s = 0.035 every offset truncates to 0 on 28 px
(identity); at 0.15 and 0.2 the largest offset is 4 and 5 px there. The offsets scale with the
side: s is the identity only while s * side <= 1 (0.035 moves some pixels by 1 px on 32 px).
Every channel of an image is swapped alike.

The original did H * W = 784 Python-level swaps of image data per call, with one field and one
level for the whole batch. Here the H * W transpositions are composed into one permutation per
image on small integer arrays, and the images move once, by a single gather. Each image has its
own field (from its key) and its own level; passing one key and level for the whole batch gives the
original's shared field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from diffusiontools.diffusion.degradations.base import check_level_range
from diffusiontools.diffusion.degradations.random_fields import uniform_fields


def swap_offsets(level: Tensor, key: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Row and column offsets (dr, dc) of every pixel's swap partner.

    level: (B,) float; key: (B,) int64; size: (H, W). Returns dr, dc, each (B, H, W) int64 on
    key's device, |dr| <= int(s * H) and |dc| <= int(s * W). Computed in float64, so no rounding
    can lift 0.98 * (1 - 2**-23), the largest |(u - 0.5) * 2 * 0.035 * 28|, to 1.
    """
    height, width = size
    u = uniform_fields(key, (2, height, width)).to(torch.float64)  # (B, 2, H, W): u1, u2
    s = level.to(device=u.device, dtype=torch.float64)[:, None, None, None]  # (B, 1, 1, 1)
    side = torch.tensor([width, height], device=u.device, dtype=torch.float64)[:, None, None]
    offsets = torch.trunc((u - 0.5) * 2 * s * side).to(torch.int64)  # (B, 2, H, W): dc, dr
    dc, dr = offsets.unbind(dim=1)
    return dr, dc


def swap_permutation(dr: Tensor, dc: Tensor) -> Tensor:
    """Compose the raster-order swaps into one permutation per image.

    dr, dc: (B, H, W) int offsets. Returns perm (B, H*W) int64 on the CPU, with perm[b, p] the
    flat index of the original pixel that ends at flat position p, so that
    ``x.flatten(-2)[b, :, perm[b]]`` is the swapped image.

    The swaps are sequential by nature (step p moves what earlier steps left at p), so this loops
    over the H*W steps; but each step is a single numpy assignment that swaps two (B,) vectors of
    pixel indices, instead of a swap of image data:
      1. perm starts as the identity, kept position-major ((H*W, B) flattened), so that slot
         p * B + b holds the source of position p in image b;
      2. step p swaps the slots of p and of its partner q_b in every image b at once:
         ``perm[dst[p]] = perm[src[p]]`` with dst = (p's slots, q's slots), src = (q's, p's).
         numpy reads the right-hand side into a copy first, so this is a true swap, and the
         slots of different images never collide.
    """
    batch, height, width = dr.shape
    n_pixels = height * width
    rows = np.arange(height)[:, None]  # (H, 1)
    cols = np.arange(width)[None, :]  # (1, W)
    dr_np, dc_np = dr.cpu().numpy(), dc.cpu().numpy()
    partner = ((rows + dr_np) % height) * width + (cols + dc_np) % width  # (B, H, W) flat index
    images = np.arange(batch)
    here = np.arange(n_pixels)[:, None] * batch + images  # (H*W, B) slots of step p's pixel
    there = partner.reshape(batch, n_pixels).T * batch + images  # (H*W, B) its partner's slots
    dst = np.concatenate([here, there], axis=1)  # (H*W, 2B)
    src = np.concatenate([there, here], axis=1)  # (H*W, 2B)
    perm = np.repeat(np.arange(n_pixels), batch)  # (H*W * B,) identity, position-major
    for dst_p, src_p in zip(dst, src, strict=True):
        perm[dst_p] = perm[src_p]
    return torch.from_numpy(perm.reshape(n_pixels, batch).T.copy())  # (B, H*W)


def swap_pixels(x: Tensor, dr: Tensor, dc: Tensor) -> Tensor:
    """Apply the raster-order swaps with one gather.

    x: (B, C, H, W); dr, dc: (B, H, W) int offsets (the same for every channel). Returns a new
    (B, C, H, W) tensor, bit-identical to ``swap_pixels_reference`` image by image.
    """
    return _gather_pixels(x, swap_permutation(dr, dc))


def _gather_pixels(x: Tensor, perm: Tensor) -> Tensor:
    """x: (B, C, H, W); perm: (B, H*W) source of each position. Returns (B, C, H, W)."""
    batch, channels, height, width = x.shape
    index = perm.to(x.device)[:, None, :].expand(batch, channels, height * width)
    return x.reshape(batch, channels, height * width).gather(2, index).reshape(x.shape)


def swap_pixels_reference(x: Tensor, dr: Tensor, dc: Tensor) -> Tensor:
    """The original's per-pixel loop, kept as the test oracle and benchmark baseline.

    x: (..., H, W); dr, dc: (H, W) int offsets, one field shared by every leading index (the
    original's whole batch). Returns a swapped copy; x is left untouched.
    """
    x = x.clone()
    height, width = dr.shape
    dr_list, dc_list = dr.tolist(), dc.tolist()
    for i in range(height):
        for j in range(width):
            pi, pj = (i + dr_list[i][j]) % height, (j + dc_list[i][j]) % width
            held = x[..., i, j].clone()
            x[..., i, j] = x[..., pi, pj]
            x[..., pi, pj] = held
    return x


@dataclass(frozen=True)
class PixelSwap:
    """Pixel swap at level s (maximum offset as a fraction of the side); see the module doc.

    Default levels are the report's second custom model (0.035 -> 0.2); the first used 0.15.
    """

    name: str = "pixel_swap"
    default_levels: tuple[float, float] = (0.035, 0.2)
    random_field: bool = True

    def check_levels(self, level_min: float, level_max: float) -> None:
        """Offsets of up to the whole side (s = 1) are meaningful; beyond, they only wrap."""
        check_level_range(self.name, level_min, level_max, 0.0, 1.0)

    def max_level(self, side: int) -> float:
        """The level is a fraction of the side, so the size sets no bound."""
        return math.inf

    def __call__(self, x: Tensor, level: Tensor, key: Tensor) -> Tensor:
        """x: (B, C, H, W); level: (B,); key: (B,) int64. Returns (B, C, H, W).

        Images with the same (key, level) share one permutation, so it is composed once: the
        original's shared-field mode (one key and level for the batch) costs a single image.
        """
        # The fields are small: compute them on the CPU, where the permutation is composed.
        level, key = level.cpu().to(torch.float64), key.cpu().to(torch.int64)
        pairs = torch.stack([key, level.view(torch.int64)], dim=1)  # (B, 2), level as its bits
        unique, inverse = torch.unique(pairs, dim=0, return_inverse=True)  # (U, 2), (B,)
        unique_level = unique[:, 1].contiguous().view(torch.float64)
        dr, dc = swap_offsets(unique_level, unique[:, 0], (x.shape[-2], x.shape[-1]))
        return _gather_pixels(x, swap_permutation(dr, dc)[inverse])
