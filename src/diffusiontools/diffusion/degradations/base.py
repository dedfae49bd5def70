"""The degradation contract of cold diffusion: one operator D(x0, level, key) per file.

Bansal et al. (2022), "Cold Diffusion", replace Gaussian noise by any degradation D(x0, t) that is
the identity at t = 0 and grows more severe with t. Here D takes the *level* (the severity the
process's schedule assigns to t) rather than t, so a degradation knows nothing about T.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from diffusiontools.errors import UserError

BACKGROUND = -0.5
"""Value of a black pixel (MNIST's empty background) in [-0.5, 0.5] units, in every channel: what
padding and masks fill in."""
KEY_RANGE = 2**62  # random keys are drawn uniformly from [0, KEY_RANGE)


@runtime_checkable
class Degradation(Protocol):
    """A cold-diffusion degradation D(x0, level, key).

    ``default_levels`` is (level at t = 0, level at t = T), used when the config gives none; the
    level at t = 0 must leave the image unchanged (bit-exact). Images are square, gray or RGB, of
    any side: a degradation reads the shape from x and acts on every channel of an image alike
    (one blur, mask, swap or block grid per image, applied to each of its channels).
    """

    name: str
    default_levels: tuple[float, float]
    random_field: bool  # whether D draws on its key (False: D ignores it, x_t is x0's alone)

    def check_levels(self, level_min: float, level_max: float) -> None:
        """Raise UserError unless (level_min, level_max) is a valid schedule for this one on
        images of any size (the size's own bound is ``max_level``)."""
        ...

    def max_level(self, side: int) -> float:
        """The largest level that means something on side x side images (``math.inf`` where the
        size sets no bound); ``ColdDiffusion.from_config`` refuses a larger level_max."""
        ...

    def __call__(self, x: Tensor, level: Tensor, key: Tensor) -> Tensor:
        """Degrade a batch.

        x: (B, C, H, W) float in [-0.5, 0.5], C = 1 or 3, H = W; level: (B,) float, one level
        per image; key: (B,) int64, one random key per image. The same (x, level, key) always
        gives the same output, so D is deterministic along one sampling trajectory. Returns
        (B, C, H, W), same dtype and device as x.
        """
        ...


def check_level_range(
    name: str, level_min: float, level_max: float, low: float, high: float, bound: str = ""
) -> None:
    """Raise UserError unless low <= level_min < level_max <= high (NaN is refused too).
    ``bound``: for ``high = inf``, what bounds level_max instead (the images' size, which
    ``max_level`` checks where the data are known), named in the sentence."""
    ok = (
        math.isfinite(level_min)
        and math.isfinite(level_max)
        and low <= level_min < level_max <= high
    )
    if not ok:
        allowed = f"level_max <= {high}" if math.isfinite(high) else f"level_max ({bound})"
        raise UserError(
            f"diffusion.level_min={level_min}, diffusion.level_max={level_max} are not levels "
            f"of {name}: give {low} <= level_min < {allowed}"
        )


def apply_repeatedly(x: Tensor, level: Tensor, step: Callable[[Tensor, int], Tensor]) -> Tensor:
    """x_t of Bansal et al.'s iterated operators: ``step`` applied n = round(level) times.

    x: (B, C, H, W); level: (B,) >= 0, one count per image; ``step(x, i)`` is the i-th
    application (i = 0, 1, ...). The whole batch goes through max(n) applications and each
    image keeps its own n-th result (n = 0: a copy of x). Returns (B, C, H, W).
    """
    n = torch.floor(level.double() + 0.5).to(torch.int64).cpu()  # (B,) applications
    out = x.clone()
    current = x
    for i in range(int(n.max())):
        current = step(current, i)
        rows = (n == i + 1).nonzero().squeeze(1).to(x.device)
        out[rows] = current[rows]
    return out
