"""DDIM sampling (Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models", eq. 12 and 16).

Runs on an evenly spaced sub-sequence of the training times, so ``steps`` network evaluations
replace the T of the ancestral sampler. eta = 0 is the deterministic probability-flow sampler;
eta = 1 draws from the DDPM posterior q(x_{t-1} | x_t, x0_hat) at every step.
"""

from __future__ import annotations

import math

import torch

from ..diffusion.gaussian import GaussianDiffusion
from ..diffusion.noise import Generators, randn
from ..errors import UserError
from .time_grid import ModelFn, StepCallback, evenly_spaced_times


def alpha_bar_at(process: GaussianDiffusion, t: int) -> float:
    """alpha_bar_t in float64; the final target t = 0 is the clean image, alpha_bar = 1.

    The notebook's schedule has alpha_bar_0 = 1 - beta_1 < 1; treating 0 as clean makes the last
    step return x0_hat, as in DDIM's own implementation (alpha_0 := 1).
    """
    return 1.0 if t == 0 else process.alpha_bar[t].item()


@torch.no_grad()
def sample_ddim(
    model: ModelFn,
    process: GaussianDiffusion,
    x_T: torch.Tensor,
    generator: Generators,
    steps: int | None = None,
    on_step: StepCallback | None = None,
    eta: float = 0.0,
) -> torch.Tensor:
    """DDIM from x_T (B, C, H, W) ~ N(0, I) to x0 (B, C, H, W) in ``steps`` steps (None: all T).

    For each pair (t, s) of consecutive times in [T, ..., 0], with a = alpha_bar_t and
    a' = alpha_bar_s (1 at s = 0):

    1. eps_hat, x0_hat from model(x_t, t)  (converted from x0 / v predictions when needed);
    2. sigma = eta sqrt((1 - a') / (1 - a)) sqrt(1 - a / a')  (eq. 16);
    3. x_s = sqrt(a') x0_hat + sqrt(1 - a' - sigma^2) eps_hat + sigma N(0, I)  (eq. 12).

    The last step has a' = 1, hence sigma = 0 and x_0 = x0_hat. No clamping of x0_hat.
    """
    if not 0.0 <= eta <= 1.0:
        raise UserError(f"eta={eta} is out of range: give a value in [0, 1]")
    times = evenly_spaced_times(process.T, steps)
    x = x_T.clone()
    if on_step:
        on_step(times[0], x)
    for t, s in zip(times[:-1], times[1:], strict=True):
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
            on_step(s, x)
    return x
