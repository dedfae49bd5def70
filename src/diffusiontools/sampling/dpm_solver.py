"""DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
Probabilistic Models", Algorithm 2): a second-order multistep solver of the probability-flow ODE.

It works with the data prediction x0_hat in the log-SNR time lambda_t = log(alpha_t / sigma_t),
alpha_t = sqrt(alpha_bar_t), sigma_t = sqrt(1 - alpha_bar_t), and reuses the previous step's
x0_hat for its second-order correction, so each step costs one network evaluation.
"""

from __future__ import annotations

import math

import torch

from ..diffusion.gaussian import GaussianDiffusion
from ..diffusion.noise import Generators
from .ancestral import ModelFn, StepCallback
from .registry import default_steps
from .timesteps import CLEAN, alpha_bar_at, check_noisy, dpm_solver_grid


@torch.no_grad()
def sample_dpm_solver(
    model: ModelFn,
    process: GaussianDiffusion,
    x_T: torch.Tensor,
    generator: Generators,
    steps: int | None = None,
    on_step: StepCallback | None = None,
    timestep_spacing: str = "ours",
) -> torch.Tensor:
    """DPM-Solver++(2M) from x_T (B, C, H, W) ~ N(0, I) to x0 (B, C, H, W), deterministic.

    ``steps`` (None: min(20, T)) network evaluations on the integer times of
    ``timestep_spacing`` (``ours``: round(linspace(T, 0, steps + 1)), nearly always the grid of
    diffusers' ``DPMSolverMultistepScheduler`` default, ``linspace``; ``trailing``, ``leading``,
    ``linspace``: its spacings, see ``timesteps.py``), the last step landing on the clean image;
    ``generator`` is unused (the ODE draws no noise). For each step (t, s) of that grid:

    1. x0_hat = D(x_t, t) from the model (converted from eps / v predictions when needed);
    2. h = lambda_s - lambda_t;
    3. first step: D = x0_hat (first order, DPM-Solver++(1) = DDIM); later steps, with
       r = h_prev / h: D = (1 + 1 / (2r)) x0_hat - 1 / (2r) x0_hat_prev  (Alg. 2, line 5);
    4. x_s = (sigma_s / sigma_t) x_t - alpha_s (exp(-h) - 1) D  (Alg. 2, line 6).

    The final step to the clean image (alpha_bar = 1, lambda = +inf) is first order, which gives
    x_0 = x0_hat (the "lower order final" choice of the authors' code and diffusers'). No
    clamping of x0_hat; ``on_step`` sees the clean image as t = 0. Raises UserError for steps
    outside 1..T, an unknown spacing, and a grid that evaluates the network at alpha_bar = 1.
    """
    steps = min(default_steps("dpm_solver"), process.T) if steps is None else steps
    grid = dpm_solver_grid(process.T, steps, timestep_spacing)
    check_noisy(grid, process.alpha_bar, timestep_spacing)
    x = x_T.clone()
    if on_step:
        on_step(grid[0][0], x)
    x0_hat_prev, h_prev = None, None
    for t, s in grid:
        # 1. Data prediction at the current time.
        t_vec = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        _, x0_hat = process.predict_eps_x0(model(x, t_vec), x, t_vec)
        if s == CLEAN:
            x = x0_hat
        else:
            # 2. Step size in log-SNR.
            a, a_next = alpha_bar_at(process, t), alpha_bar_at(process, s)
            lam, lam_next = _log_snr(a), _log_snr(a_next)
            h = lam_next - lam
            # 3. Multistep second-order estimate of the data prediction over the step.
            if x0_hat_prev is None:
                D = x0_hat
            else:
                r = h_prev / h
                D = (1 + 1 / (2 * r)) * x0_hat - 1 / (2 * r) * x0_hat_prev
            # 4. Exact integration of the linear part; expm1(-h) = exp(-h) - 1 without cancellation.
            x = math.sqrt((1 - a_next) / (1 - a)) * x - math.sqrt(a_next) * math.expm1(-h) * D
            x0_hat_prev, h_prev = x0_hat, h
        if on_step:
            on_step(max(s, 0), x)  # the clean image shows as t = 0
    return x


def _log_snr(alpha_bar: float) -> float:
    """lambda = log(alpha / sigma) = (log(alpha_bar) - log(1 - alpha_bar)) / 2."""
    return 0.5 * (math.log(alpha_bar) - math.log1p(-alpha_bar))
