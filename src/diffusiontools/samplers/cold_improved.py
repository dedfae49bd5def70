"""Bansal et al. (2022) Algorithm 2, the improved cold sampler."""

from __future__ import annotations

import torch

from ..noise import Generators
from ..processes.cold import ColdDiffusion
from .ancestral import ModelFn, StepCallback, check_all_steps


@torch.no_grad()
def sample_cold_improved(
    model: ModelFn,
    process: ColdDiffusion,
    x_T: torch.Tensor,
    generator: Generators,
    steps: int | None = None,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """For t = T..1:

    1. x0_hat = R(z, t);
    2. z = z - D(x0_hat, t) + D(x0_hat, t - 1), both with the trajectory's fixed key, so that the
       error of x0_hat cancels to first order (Bansal et al., Sec. 3.3).
    Returns z at t = 0 (D at level_0 is the identity for the built-in degradations).
    """
    check_all_steps(steps, process.T, "improved")
    z = x_T.clone()
    key = process.draw_keys(z.shape[0], generator, z.device)
    if on_step:
        on_step(process.T, z)
    for t in range(process.T, 0, -1):
        t_vec = torch.full((z.shape[0],), t, device=z.device, dtype=torch.long)
        x0_hat = model(z, t_vec)
        z = z - process.degrade(x0_hat, t_vec, key) + process.degrade(x0_hat, t_vec - 1, key)
        if on_step:
            on_step(t - 1, z)
    return z
