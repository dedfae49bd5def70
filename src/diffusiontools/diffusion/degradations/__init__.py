"""Cold-diffusion degradations D(x0, level, key) (Bansal et al. 2022), one per file.

A new degradation is one file with a small frozen dataclass that follows ``Degradation`` and
one line in ``DEGRADATIONS``; the contract tests then cover it.
"""

from __future__ import annotations

from diffusiontools.diffusion.degradations.base import Degradation
from diffusiontools.diffusion.degradations.blur import GaussianBlur
from diffusiontools.diffusion.degradations.blur_repeated import RepeatedBlur
from diffusiontools.diffusion.degradations.fade import Fade
from diffusiontools.diffusion.degradations.mask import Mask
from diffusiontools.diffusion.degradations.pixel_swap import PixelSwap
from diffusiontools.diffusion.degradations.pixelate import Pixelate
from diffusiontools.diffusion.degradations.resolution import Resolution
from diffusiontools.errors import UserError

DEGRADATIONS: dict[str, type] = {
    "pixel_swap": PixelSwap,
    "blur": GaussianBlur,
    "pixelate": Pixelate,
    "mask": Mask,
    # Bansal et al.'s MNIST operators, exactly as their public code (configs/*_bansal.ini).
    "blur_repeated": RepeatedBlur,
    "resolution": Resolution,
    "fade": Fade,
}


def make_degradation(name: str) -> Degradation:
    """The degradation registered as ``name``; UserError for an unknown name."""
    if name not in DEGRADATIONS:
        raise UserError(
            f"unknown degradation {name!r}; choose one of {', '.join(sorted(DEGRADATIONS))}."
        )
    return DEGRADATIONS[name]()


__all__ = ["DEGRADATIONS", "Degradation", "make_degradation"]
