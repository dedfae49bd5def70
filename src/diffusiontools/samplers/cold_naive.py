"""Bansal et al. (2022) Algorithm 1, the naive cold sampler the report used."""

from __future__ import annotations

import torch

from ..noise import Generators
from ..processes.cold import ColdDiffusion
from .ancestral import ModelFn, StepCallback, check_all_steps


@torch.no_grad()
def sample_cold_naive(
    model: ModelFn,
    process: ColdDiffusion,
    x_T: torch.Tensor,
    generator: Generators,
    steps: int | None = None,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """For t = T..1:

    1. x0_hat = R(z, t);
    2. if t > 1: z = D(x0_hat, t - 1) with a fresh random field (as the original).
    Returns the last x0_hat. The first x0_hat is the "direct" reconstruction.
    """
    check_all_steps(steps, process.T, "naive")
    z = x_T.clone()
    if on_step:
        on_step(process.T, z)
    x0_hat = z
    for t in range(process.T, 0, -1):
        t_vec = torch.full((z.shape[0],), t, device=z.device, dtype=torch.long)
        x0_hat = model(z, t_vec)
        if t > 1:
            z = process.degrade(
                x0_hat, t_vec - 1, process.draw_keys(z.shape[0], generator, z.device)
            )
            if on_step:
                on_step(t - 1, z)
    return x0_hat
