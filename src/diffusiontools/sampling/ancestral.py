"""Ancestral DDPM sampling: Prince, Understanding Deep Learning, Algorithm 18.2 (the notebook's).

Every sampler here shares one signature (k-diffusion style)::

    sampler(model, process, x_T, generator, steps=None, on_step=None) -> x0

``generator`` is one ``torch.Generator`` or one per sample of x_T (see ``diffusion/noise.py``);
``model(x_t, t)`` returns the network's output for integer times t (B,); ``on_step(t, x_t)`` is
called with the starting state and after each step with the state at the new time.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..diffusion.gaussian import GaussianDiffusion
from ..diffusion.noise import Generators, randn
from ..errors import UserError

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
StepCallback = Callable[[int, torch.Tensor], None]


def check_all_steps(steps: int | None, T: int, sampler: str) -> None:
    """The samplers that take every one of the T steps accept ``steps`` only as None or T."""
    if steps not in (None, T):
        raise UserError(
            f"steps={steps}: the {sampler} sampler takes all T={T} steps; "
            "ddim and dpm_solver take fewer"
        )


@torch.no_grad()
def sample_ancestral(
    model: ModelFn,
    process: GaussianDiffusion,
    x_T: torch.Tensor,
    generator: Generators,
    steps: int | None = None,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """Prince Alg. 18.2, for i = T..1 (all T steps; ``steps`` must be None or T):

    1. eps_hat = model(z, i)  (converted from x0 / v predictions when the model predicts those);
    2. z = (z - beta_i / sqrt(1 - alpha_bar_i) * eps_hat) / sqrt(1 - beta_i);
    3. if i > 1: z += sqrt(beta_i) * N(0, I).  No clamping, as in the original.
    """
    T = process.T
    check_all_steps(steps, T, "ancestral")
    z = x_T.clone()
    if on_step:
        on_step(T, z)
    for i in range(T, 0, -1):
        t = torch.full((z.shape[0],), i, device=z.device, dtype=torch.long)
        eps, _ = process.predict_eps_x0(model(z, t), z, t)
        beta, alpha_bar = process.beta[i], process.alpha_bar[i]
        z = (z - beta / (1 - alpha_bar).sqrt() * eps) / (1 - beta).sqrt()
        if i > 1:
            z = z + beta.sqrt() * randn(z.shape, generator, z.device)
        if on_step:
            on_step(i - 1, z)
    return z
