"""Helpers of the tests that compare our samplers with diffusers' schedulers in float64."""

from __future__ import annotations

from diffusiontools.config import DiffusionConfig
from diffusiontools.diffusion.gaussian import GaussianDiffusion
from diffusiontools.diffusion.schedules import alpha_bar_from_beta


def process64(config: DiffusionConfig, prediction: str = "eps") -> GaussianDiffusion:
    """Our schedule for ``config`` in float64: the library's float32 betas, widened exactly."""
    beta = GaussianDiffusion.from_config(config).beta.double()
    return GaussianDiffusion(beta, alpha_bar_from_beta(beta), prediction)
