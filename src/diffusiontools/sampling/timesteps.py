"""Time grids of the few-step samplers (DDIM, DPM-Solver++): ours, and diffusers' three timestep
spacings, so that a sampling run of diffusers' schedulers can be reproduced exactly.

A grid is a list of steps (t, s): the network is evaluated at time t and the step lands on the
noise level of time s, where s = ``CLEAN`` means alpha_bar = 1 (the clean image). Times index our
T + 1 betas, 0..T; diffusers sees the same schedule as ``trained_betas`` with
``num_train_timesteps = T + 1``. docs/design.md ("Time grids: ours and diffusers'") tabulates
the conventions and the differences measured between them.

- ``ours``: t on round(linspace(T, 0, steps + 1)), each step landing on the next of them, the
  last on ``CLEAN`` (not on index 0, whose alpha_bar_0 = 1 - beta_0 < 1 in the notebook's
  schedule). No diffusers spacing gives this grid.
- ``trailing``, ``leading``, ``linspace``: the timesteps of diffusers' ``set_timesteps`` (0.42,
  ``steps_offset = 0``), computed with the same numpy arithmetic. ``DDIMScheduler`` steps from t
  to t - (T + 1) // steps, or to ``CLEAN`` below 0 (``set_alpha_to_one``); with ``trailing`` that
  need not be the next time evaluated. ``DPMSolverMultistepScheduler`` steps to the next time
  evaluated and from the last one to ``CLEAN`` (``final_sigmas_type = "zero"``); its ``leading``
  divides by steps + 1, and its ``linspace`` (the default) is ``ours`` except where a time lies
  on a half that numpy's and torch's linspace round apart (T = 100 with 24 steps; at T = 1000,
  no step count up to 239).
"""

from __future__ import annotations

import numpy as np
import torch

from ..config import TIMESTEP_SPACINGS as SPACINGS
from ..errors import UserError

CLEAN = -1  # the target of a last step: alpha_bar = 1

Grid = list[tuple[int, int]]


def check_steps(T: int, steps: int | None, name: str = "steps") -> int:
    """``steps`` (None: T) if it is in 1..T, else a UserError naming it as ``name``: every
    sampler takes 1..T steps (fewer than T on a respaced or strided grid)."""
    steps = T if steps is None else steps
    if not 1 <= steps <= T:
        raise UserError(f"{name}={steps} is out of range for this model: give 1..{T}")
    return steps


def evenly_spaced_times(T: int, steps: int | None) -> list[int]:
    """[T, ..., 0]: ``steps`` + 1 integer times, evenly spaced, ``steps`` None meaning T."""
    steps = check_steps(T, steps)
    return torch.linspace(T, 0, steps + 1, dtype=torch.float64).round().long().tolist()


def ddim_grid(T: int, steps: int | None, spacing: str = "ours") -> Grid:
    """The (t, s) steps of DDIM: ``ours``, or ``DDIMScheduler``'s grid for ``spacing``."""
    steps = check_steps(T, steps)
    if spacing == "ours":
        return _ours(T, steps)
    n = T + 1  # diffusers' num_train_timesteps
    if spacing == "linspace":
        times = np.linspace(0, n - 1, steps).round()[::-1]
    elif spacing == "leading":
        times = (np.arange(0, steps) * (n // steps)).round()[::-1]
    else:
        times = _trailing(n, steps, _check_spacing(spacing))
    stride = n // steps  # DDIMScheduler's prev_timestep = t - num_train_timesteps // steps
    return [(int(t), int(t) - stride if t >= stride else CLEAN) for t in times]


def dpm_solver_grid(T: int, steps: int | None, spacing: str = "ours") -> Grid:
    """The (t, s) steps of DPM-Solver++: ``ours``, or ``DPMSolverMultistepScheduler``'s."""
    steps = check_steps(T, steps)
    if spacing == "ours":
        return _ours(T, steps)
    n = T + 1
    if spacing == "linspace":
        times = np.linspace(0, n - 1, steps + 1).round()[::-1][:-1]
    elif spacing == "leading":
        times = (np.arange(0, steps + 1) * (n // (steps + 1))).round()[::-1][:-1]
    else:
        times = _trailing(n, steps, _check_spacing(spacing))
    times = [int(t) for t in times]
    return list(zip(times, [*times[1:], CLEAN], strict=True))


def alpha_bar_at(process, s: int) -> float:
    """alpha_bar_s in float64 for a time of a grid; ``CLEAN`` gives 1 (the clean image).

    The notebook's schedule has alpha_bar_0 = 1 - beta1 < 1 (entry 0 holds beta1); landing on
    CLEAN makes the last step return x0_hat, as in DDIM's own implementation (alpha_0 := 1).
    """
    return 1.0 if s == CLEAN else process.alpha_bar[s].item()


def check_noisy(grid: Grid, alpha_bar: torch.Tensor, spacing: str) -> None:
    """Refuse a grid that evaluates the network where alpha_bar = 1 (t = 0 of the cosine
    schedule): there is no noise to predict, and DDIM's step divides by 1 - alpha_bar."""
    for t, _ in grid:
        if alpha_bar[t].item() >= 1.0:
            raise UserError(
                f"timestep_spacing={spacing} evaluates the network at t={t}, where this schedule "
                "has alpha_bar = 1 (no noise; diffusers' step gives NaN there): use ours, or "
                "another spacing or number of steps"
            )


def _ours(T: int, steps: int) -> Grid:
    times = evenly_spaced_times(T, steps)
    return list(zip(times[:-1], [*times[1:-1], CLEAN], strict=True))


def _check_spacing(spacing: str) -> str:
    if spacing not in SPACINGS:
        raise UserError(
            f"timestep_spacing={spacing!r} is not allowed: choose one of {', '.join(SPACINGS)}"
        )
    return spacing


def _trailing(n: int, steps: int, spacing: str) -> np.ndarray:
    """diffusers' trailing timesteps; refused where its float ``arange`` yields a time of -1."""
    times = np.round(np.arange(n, 0, -n / steps)).astype(np.int64) - 1
    if len(times) != steps:
        raise UserError(
            f"timestep_spacing={spacing} with steps={steps} and T={n - 1}: diffusers' trailing "
            f"grid (numpy.arange rounding) holds {len(times)} times, the last t = {times[-1]}, "
            "a time no model is trained at; choose another number of steps"
        )
    return times
