"""Heun's second-order deterministic sampler (Karras et al. 2022, "Elucidating the Design Space
of Diffusion-Based Generative Models", Algorithm 1; k-diffusion's ``sample_heun``), on EDM's
rho = 7 grid of noise levels in sigma space (``karras.py``).
"""

from __future__ import annotations

import torch

from ..diffusion.gaussian import GaussianDiffusion
from ..diffusion.noise import Generators
from .ancestral import ModelFn, StepCallback
from .karras import call_on_step, denoise, start
from .registry import default_steps


@torch.no_grad()
def sample_heun(
    model: ModelFn,
    process: GaussianDiffusion,
    x_T: torch.Tensor,
    generator: Generators,
    steps: int | None = None,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """Heun from x_T (B, C, H, W) ~ N(0, I) to x0 (B, C, H, W) in ``steps`` steps (None: 18),
    2 steps - 1 network evaluations, deterministic (``generator`` is unused).

    On sigma_0 > ... > sigma_{steps-1} (``karras_sigmas``) and sigma_steps = 0, from
    x = x_T / sqrt(alpha_bar_T) (x_T in sigma space), for each step i (Alg. 1, gamma = 0):

    1. d = (x - D(x; sigma_i)) / sigma_i, the ODE's slope dx / dsigma;
    2. x' = x + (sigma_{i+1} - sigma_i) d (Euler);
    3. if sigma_{i+1} > 0: d' = (x' - D(x'; sigma_{i+1})) / sigma_{i+1}, and
       x' = x + (sigma_{i+1} - sigma_i) (d + d') / 2 (the trapezoidal correction).

    The last step, to sigma = 0, is Euler's and returns D(x; sigma_{steps-1}). ``on_step`` sees
    x_t = x sqrt(alpha_bar) at the real time of each sigma (``karras.call_on_step``), the clean
    image as t = 0.
    """
    sigmas, x = start(process, x_T, default_steps("heun") if steps is None else steps, on_step)
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:], strict=True):
        # 1. The slope at sigma_i.
        d = (x - denoise(model, process, x, sigma)) / sigma
        # 2. Euler to sigma_{i+1}.
        x_next = x + (sigma_next - sigma) * d
        # 3. Heun's correction with the slope at the Euler point.
        if sigma_next > 0:
            d_next = (x_next - denoise(model, process, x_next, sigma_next)) / sigma_next
            x_next = x + (sigma_next - sigma) * (d + d_next) / 2
        x = x_next
        call_on_step(on_step, process, x, sigma_next)
    return x
