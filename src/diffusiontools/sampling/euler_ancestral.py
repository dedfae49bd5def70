"""Euler ancestral sampling (k-diffusion's ``sample_euler_ancestral``, eta = 1): Euler steps of
the probability-flow ODE (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based
Generative Models") down to a lower noise level, then fresh noise back up to the next one, on
EDM's rho = 7 grid of noise levels in sigma space (``karras.py``).
"""

from __future__ import annotations

import math

import torch

from ..diffusion.gaussian import GaussianDiffusion
from ..diffusion.noise import Generators, randn
from .ancestral import ModelFn, StepCallback
from .karras import call_on_step, denoise, start
from .registry import default_steps


@torch.no_grad()
def sample_euler_ancestral(
    model: ModelFn,
    process: GaussianDiffusion,
    x_T: torch.Tensor,
    generator: Generators,
    steps: int | None = None,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """Euler ancestral from x_T (B, C, H, W) ~ N(0, I) to x0 (B, C, H, W) in ``steps`` network
    evaluations (None: 50), drawing N(0, I) noise from ``generator`` at every step but the last.

    On sigma_0 > ... > sigma_{steps-1} (``karras_sigmas``) and sigma_steps = 0, from
    x = x_T / sqrt(alpha_bar_T) (x_T in sigma space), for each step (sigma, sigma') =
    (sigma_i, sigma_{i+1}):

    1. sigma_up = sqrt(sigma'^2 (sigma^2 - sigma'^2) / sigma^2) and
       sigma_down = sqrt(sigma'^2 - sigma_up^2) (k-diffusion's ``get_ancestral_step``, eta = 1:
       the DDPM posterior's noise, written in sigma space);
    2. x = x + (sigma_down - sigma) (x - D(x; sigma)) / sigma  (an Euler step to sigma_down);
    3. if sigma' > 0: x = x + sigma_up N(0, I), back up to noise level sigma'.

    The last step (sigma' = 0) returns D(x; sigma_{steps-1}). ``on_step`` sees x_t =
    x sqrt(alpha_bar) at the real time of each sigma (``karras.call_on_step``), the clean image as
    t = 0.
    """
    steps = default_steps("euler_ancestral") if steps is None else steps
    sigmas, x = start(process, x_T, steps, on_step)
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:], strict=True):
        # 1. How far down the ODE goes, and how much noise brings it back to sigma'.
        sigma_up = math.sqrt(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2)
        sigma_down = math.sqrt(sigma_next**2 - sigma_up**2)
        # 2. The Euler step, with the ODE's slope (x - D) / sigma.
        x = x + (sigma_down - sigma) * (x - denoise(model, process, x, sigma)) / sigma
        # 3. Fresh noise.
        if sigma_next > 0:
            x = x + sigma_up * randn(x.shape, generator, x.device)
        call_on_step(on_step, process, x, sigma_next)
    return x
