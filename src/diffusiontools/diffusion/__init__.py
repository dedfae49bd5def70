"""Forward processes: a Gaussian noise schedule or a cold degradation. They hold no network."""

from __future__ import annotations

from ..config import Config, check_key
from .gaussian import GaussianDiffusion
from .process import Process


def make_process(config: Config, shape: tuple[int, int, int] | None = None) -> Process:
    """The forward process that ``config.diffusion.kind`` names; ``shape`` (C, S, S): the images
    it will meet, whose size a cold process's levels must fit (None: the size ``config.data``
    declares, where it does; ``ColdDiffusion.from_config``)."""
    check_key("diffusion.kind", config.diffusion.kind)  # a kind of no process: refused, not cold
    if config.diffusion.kind == "gaussian":
        return GaussianDiffusion.from_config(config.diffusion)
    from .cold import ColdDiffusion

    return ColdDiffusion.from_config(config, shape)
