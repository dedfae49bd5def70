"""Ancestral DDPM sampling: Prince, Understanding Deep Learning, Algorithm 18.2 (the notebook's),
on all T steps or on a respaced sub-sequence of them (Nichol & Dhariwal 2021, sec. 4).

Every sampler here shares one signature (k-diffusion style)::

    sampler(model, process, x_T, generator, steps=None, on_step=None) -> x0

``generator`` is one ``torch.Generator`` or one per sample of x_T (see ``diffusion/noise.py``);
``model(x_t, t)`` returns the network's output for times t (B,), integer (or real, for the
samplers in sigma space, ``karras.py``); ``on_step(t, x_t)`` is called with the starting state and
after each step with the state at the new time.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..diffusion.gaussian import GaussianDiffusion
from ..diffusion.noise import Generators, randn
from .timesteps import evenly_spaced_times

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
StepCallback = Callable[[float, torch.Tensor], None]  # t: an int but in sigma space


@torch.no_grad()
def sample_ancestral(
    model: ModelFn,
    process: GaussianDiffusion,
    x_T: torch.Tensor,
    generator: Generators,
    steps: int | None = None,
    on_step: StepCallback | None = None,
) -> torch.Tensor:
    """Prince Alg. 18.2 from x_T (B, C, H, W) ~ N(0, I), over the times [T, ..., 0] of
    ``evenly_spaced_times(T, steps)`` (``steps`` None or T: every step, the notebook's sampler).

    For each pair (t, s) of consecutive times, with beta = 1 - alpha_bar_t / alpha_bar_s (the
    schedule's own beta_t when s = t - 1, so that all T steps are the notebook's arithmetic):

    1. eps_hat = model(z, t)  (converted from x0 / v predictions when the model predicts those);
    2. z = (z - beta / sqrt(1 - alpha_bar_t) * eps_hat) / sqrt(1 - beta);
    3. if s > 0: z += sqrt(beta) * N(0, I).  No clamping, as in the original.

    Fewer steps is the "respacing" of improved-diffusion (Nichol & Dhariwal 2021, sec. 4): the
    same process restricted to a sub-sequence of times, with the larger of its two variances
    (beta, as Alg. 18.2; DDIM with eta = 1 is the same walk with the posterior variance). It
    keeps the fresh noise of every step, which corrects a young network's errors where the
    deterministic DDIM / DPM-Solver compound them (Karras et al. 2022, sec. 4).
    """
    times = evenly_spaced_times(process.T, steps)
    z = x_T.clone()
    if on_step:
        on_step(times[0], z)
    for t, s in zip(times[:-1], times[1:], strict=True):
        t_vec = torch.full((z.shape[0],), t, device=z.device, dtype=torch.long)
        eps, _ = process.predict_eps_x0(model(z, t_vec), z, t_vec)
        alpha_bar = process.alpha_bar[t]
        beta = process.beta[t] if s == t - 1 else 1 - alpha_bar / process.alpha_bar[s]
        z = (z - beta / (1 - alpha_bar).sqrt() * eps) / (1 - beta).sqrt()
        if s > 0:
            z = z + beta.sqrt() * randn(z.shape, generator, z.device)
        if on_step:
            on_step(s, z)
    return z
