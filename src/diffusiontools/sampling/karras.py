"""Sigma space (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative
Models", EDM) for our discrete-time Gaussian process: the grid of noise levels and the denoiser
that the samplers working in it share (``heun.py``, ``euler_ancestral.py``).

With sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) and x = x_t / sqrt(alpha_bar_t), our
process is x = x0 + sigma eps (EDM's variance-exploding form, eq. 1), and the probability-flow
ODE is dx / dsigma = (x - D(x; sigma)) / sigma, with D the denoiser (EDM Alg. 1).

Choices, as k-diffusion makes them for a discrete DDPM (``DiscreteEpsDDPMDenoiser``):

- the grid is EDM's (eq. 5, rho = 7) from sigma_max = sigma_T, where every sampler starts, to
  sigma_min = sigma_1, the smallest noise level the network was trained at (t = 0 is never
  drawn in training, and is alpha_bar = 1 in the cosine schedule), then 0 (the clean image);
- a continuous sigma is evaluated at the real time t = ``process.sigma_to_t(sigma)`` (ln
  sigma_t interpolated between integer times, not rounded): our networks take t / T as a real
  number, so they see the time between two training times that has that noise level.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..diffusion.gaussian import GaussianDiffusion
from .ancestral import ModelFn, StepCallback
from .timesteps import check_steps

RHO = 7.0  # EDM eq. 5: steps concentrate at low noise as rho grows; the paper's choice


def sigma_at(process: GaussianDiffusion, t: int) -> float:
    """sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) of integer time t, in float64."""
    a = process.alpha_bar[t].double().item()
    return math.sqrt((1 - a) / a)


def karras_sigmas(process: GaussianDiffusion, steps: int) -> list[float]:
    """EDM eq. 5 with rho = 7: ``steps`` noise levels from sigma_T down to sigma_1, then 0.

    sigma_i = (sigma_max^(1/rho) + i / (steps - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho
    for i = 0..steps - 1 (k-diffusion's ``get_sigmas_karras``; one step: sigma_max alone).
    """
    check_steps(process.T, steps)
    sigma_max, sigma_min = sigma_at(process, process.T), sigma_at(process, 1)
    ramp = np.linspace(0, 1, steps)
    inv_max, inv_min = sigma_max ** (1 / RHO), sigma_min ** (1 / RHO)
    sigmas = (inv_max + ramp * (inv_min - inv_max)) ** RHO
    return [*sigmas.tolist(), 0.0]


def state_at(
    process: GaussianDiffusion, x: torch.Tensor, sigma: float
) -> tuple[float, torch.Tensor, torch.Tensor]:
    """The real time t of noise level ``sigma`` (``process.sigma_to_t``), t as a (B,) tensor,
    and the process's state x_t = x sqrt(alpha_bar_t) (B, C, H, W) of sigma-space x."""
    t = process.sigma_to_t(sigma)
    t_vec = torch.full((x.shape[0],), t, device=x.device, dtype=torch.float64)
    x_t = x * process.alpha_bar_at(t_vec).sqrt()[:, None, None, None].to(x.dtype)
    return t, t_vec, x_t


def start(
    process: GaussianDiffusion, x_T: torch.Tensor, steps: int, on_step: StepCallback | None
) -> tuple[list[float], torch.Tensor]:
    """What a sampler in sigma space starts from: the grid of ``steps`` (``karras_sigmas``) and
    x = x_T / sqrt(alpha_bar_T), x_T (B, C, H, W) ~ N(0, I); ``on_step`` sees x_T at t = T."""
    if on_step:
        on_step(process.T, x_T.clone())
    return karras_sigmas(process, steps), x_T / process.alpha_bar[process.T].sqrt()


def call_on_step(
    on_step: StepCallback | None, process: GaussianDiffusion, x: torch.Tensor, sigma: float
) -> None:
    """Give ``on_step`` the state x_t reached at noise level ``sigma`` at its real time
    (``state_at``); at sigma = 0, the clean image x at t = 0."""
    if on_step:
        t, _, x_t = state_at(process, x, sigma) if sigma > 0 else (0, None, x)
        on_step(t, x_t)


def denoise(
    model: ModelFn, process: GaussianDiffusion, x: torch.Tensor, sigma: float
) -> torch.Tensor:
    """D(x; sigma) (B, C, H, W): the model's x0_hat for sigma-space x at noise level sigma.

    ``model(x_t, t)`` is the wrapped network (guidance, x0 clipping: ``generation.model_fn``,
    ``generation.clip_x0``), evaluated at the real time t of sigma; its output is converted to
    x0_hat by the process, as in every sampler (eps, x0 or v prediction).
    """
    _, t_vec, x_t = state_at(process, x, sigma)
    _, x0_hat = process.predict_eps_x0(model(x_t, t_vec), x_t, t_vec)
    return x0_hat
