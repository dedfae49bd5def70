"""What every Gaussian sampler shares: the model and callback types, and the grid of times."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import UserError

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
StepCallback = Callable[[int, torch.Tensor], None]


def evenly_spaced_times(T: int, steps: int | None) -> list[int]:
    """[T, ..., 0]: ``steps`` + 1 integer times, evenly spaced, ``steps`` None meaning T."""
    steps = T if steps is None else steps
    if not 1 <= steps <= T:
        raise UserError(f"steps={steps} is out of range for this model: give 1..{T}")
    return torch.linspace(T, 0, steps + 1, dtype=torch.float64).round().long().tolist()
