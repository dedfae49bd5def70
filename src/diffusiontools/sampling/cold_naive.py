"""Bansal et al. (2022) Algorithm 1, the naive cold sampler the report used."""

from __future__ import annotations

import torch

from ..diffusion.cold import ColdDiffusion, ColdStart
from ..diffusion.noise import Generators
from .ancestral import ModelFn, StepCallback


@torch.no_grad()
def sample_cold_naive(
    model: ModelFn,
    process: ColdDiffusion,
    x_T: ColdStart,
    generator: Generators,
    steps: int | None = None,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """For the times t_0 = x_T.t > t_1 > ... > t_S = 0 of ``process.time_grid`` (every t when
    ``steps`` is None):

    1. x0_hat = R(z, t_i);
    2. if t_{i+1} > 0: z = D(x0_hat, t_{i+1}) with the start's key, or with a fresh random field
       for the report's start (``x_T.fresh_fields``, as the original).
    Returns the last x0_hat, (B, C, H, W) as x_T. The first x0_hat is the "direct" reconstruction.
    """
    z = x_T.x.clone()
    times = process.time_grid(x_T.t, steps)
    if on_step:
        on_step(times[0], z)
    x0_hat = z
    for t, t_next in zip(times[:-1], times[1:], strict=True):
        t_vec = torch.full((z.shape[0],), t, device=z.device, dtype=torch.long)
        x0_hat = model(z, t_vec)
        if t_next > 0:
            key = x_T.key
            if x_T.fresh_fields:
                key = process.draw_keys(z.shape[0], generator, z.device)
            z = process.degrade(x0_hat, torch.full_like(t_vec, t_next), key)
            if on_step:
                on_step(t_next, z)
    return x0_hat
