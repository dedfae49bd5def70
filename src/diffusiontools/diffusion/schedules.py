"""Noise schedules for the Gaussian process: T+1 entries, index t = 0..T."""

from __future__ import annotations

import math

import torch


def linear_schedule(beta1: float, beta2: float, T: int) -> torch.Tensor:
    """The notebook's ``ddpm_schedules``: beta_t = (beta2 - beta1) t / T + beta1 for t = 0..T.

    Index 0 holds beta1, so the schedule has T+1 entries. The same formula gives the cold
    degradation's level schedule with (level_min, level_max) in place of (beta1, beta2).
    """
    return (beta2 - beta1) * torch.arange(0, T + 1, dtype=torch.float32) / T + beta1


def alpha_bar_from_beta(beta: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t = prod_{s<=t} (1 - beta_s), computed as exp(cumsum(log)) like the notebook."""
    return torch.exp(torch.cumsum(torch.log(1 - beta), dim=0))


def cosine_schedule(T: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal (2021) eq. 17 as betas for t = 0..T: alpha_bar_t = f(t/T) / f(0).

    f(u) = cos^2((u + s) / (1 + s) * pi / 2); beta_0 = 0 (alpha_bar_0 = 1) and
    beta_t = 1 - alpha_bar_t / alpha_bar_{t-1}, clipped to ``max_beta`` so that the last step,
    where f reaches 0, stays finite (their eq. 17 note).
    """
    u = torch.arange(0, T + 1, dtype=torch.float64) / T
    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    beta = torch.zeros(T + 1, dtype=torch.float64)
    beta[1:] = 1 - alpha_bar[1:] / alpha_bar[:-1]
    return beta.clamp(max=max_beta).to(torch.float32)
