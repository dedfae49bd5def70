"""DDIM sampling (Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models", eq. 12 and 16).

Runs on a sub-sequence of the training times, so ``steps`` network evaluations replace the T of
the ancestral sampler: ours (evenly spaced, ending on the clean image) or one of diffusers'
``DDIMScheduler`` spacings (``timesteps.py``). eta = 0 is the deterministic probability-flow
sampler; eta = 1 draws from the DDPM posterior q(x_{t-1} | x_t, x0_hat) at every step.
"""

from __future__ import annotations

import math

import torch

from ..diffusion.gaussian import GaussianDiffusion
from ..diffusion.noise import Generators, randn
from ..errors import UserError
from .ancestral import ModelFn, StepCallback
from .timesteps import alpha_bar_at, check_noisy, ddim_grid


@torch.no_grad()
def sample_ddim(
    model: ModelFn,
    process: GaussianDiffusion,
    x_T: torch.Tensor,
    generator: Generators,
    steps: int | None = None,
    on_step: StepCallback | None = None,
    eta: float = 0.0,
    timestep_spacing: str = "ours",
) -> torch.Tensor:
    """DDIM from x_T (B, C, H, W) ~ N(0, I) to x0 (B, C, H, W) in ``steps`` steps (None: all T).

    For each step (t, s) of the grid of ``timestep_spacing`` (``ours``: consecutive times of
    round(linspace(T, 0, steps + 1)); ``trailing``, ``leading``, ``linspace``: diffusers'
    ``DDIMScheduler``, see ``timesteps.py``), with a = alpha_bar_t and a' = alpha_bar_s (1 on the
    clean image, the last step of ``ours``):

    1. eps_hat, x0_hat from model(x_t, t)  (converted from x0 / v predictions when needed);
    2. sigma = eta sqrt((1 - a') / (1 - a)) sqrt(1 - a / a')  (eq. 16);
    3. x_s = sqrt(a') x0_hat + sqrt(1 - a' - sigma^2) eps_hat + sigma N(0, I)  (eq. 12).

    A last step to a' = 1 has sigma = 0 and gives x_0 = x0_hat. No clamping of x0_hat.
    ``on_step`` sees the clean image as t = 0. Raises UserError for eta outside [0, 1], steps
    outside 1..T, an unknown spacing, and a grid that evaluates the network at alpha_bar = 1.
    """
    if not 0.0 <= eta <= 1.0:
        raise UserError(f"eta={eta} is out of range: give a value in [0, 1]")
    grid = ddim_grid(process.T, steps, timestep_spacing)
    check_noisy(grid, process.alpha_bar, timestep_spacing)
    x = x_T.clone()
    if on_step:
        on_step(grid[0][0], x)
    for t, s in grid:
        # 1. The network's estimate of the noise and of the clean image.
        t_vec = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        eps_hat, x0_hat = process.predict_eps_x0(model(x, t_vec), x, t_vec)
        # 2. Noise level of the step (eq. 16).
        a, a_next = alpha_bar_at(process, t), alpha_bar_at(process, s)
        sigma = eta * math.sqrt((1 - a_next) / (1 - a) * (1 - a / a_next))
        # 3. Eq. 12: predicted x0, the direction pointing to x_t, and fresh noise.
        x = math.sqrt(a_next) * x0_hat + math.sqrt(1 - a_next - sigma**2) * eps_hat
        if sigma > 0:
            x = x + sigma * randn(x.shape, generator, x.device)
        if on_step:
            on_step(max(s, 0), x)  # the clean image shows as t = 0
    return x
