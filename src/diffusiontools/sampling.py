"""Drawing samples: build the start state and the model function, then run a sampler."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

from .config import Config
from .errors import UserError
from .samplers import get_sampler

IMAGE_SHAPE = (1, 28, 28)


def model_fn(
    net: nn.Module, T: int, y: torch.Tensor | None = None, guidance: float = 1.0
) -> Callable:
    """Wrap ``net`` as ``model(x_t, t_int)``: scales t to t/T and applies classifier-free guidance.

    With labels and ``guidance`` w != 1: out = uncond + w (cond - uncond) (Ho & Salimans 2022).
    """

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t_unit = t.to(x.dtype) / T
        if y is None:
            return net(x, t_unit)
        cond = net(x, t_unit, y)
        if guidance == 1.0:
            return cond
        uncond = net(x, t_unit)
        return uncond + guidance * (cond - uncond)

    return model


def class_labels(
    num_classes: int, digit: int | None, offset: int, n: int, device: torch.device
) -> torch.Tensor | None:
    """Labels of samples offset..offset+n-1: ``digit``, else every class in turn (0, 1, ..., 9,
    0, ...) for a class-conditional model, so its samples are balanced; None if unconditional."""
    if digit is not None:
        return torch.full((n,), digit, device=device, dtype=torch.long)
    if not num_classes:
        return None
    return torch.arange(offset, offset + n, device=device) % num_classes


def clip_x0(model: Callable, process) -> Callable:
    """``model`` with its x0 prediction clamped to the data range at every step (Gaussian)."""

    def clipped(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return process.clip_output(model(x, t), x, t)

    return clipped


def start_state(
    process,
    n: int,
    generator: torch.Generator,
    device: torch.device,
    config: Config,
    offset: int = 0,
    sampler: str = "default",
):
    """x_T: N(0, I) for a Gaussian process; for a cold one, the process builds a ``ColdStart``
    (x_T with its key and time) as ``sampling.start`` says for ``sampler``."""
    if process.kind == "gaussian":
        return torch.randn((n, *IMAGE_SHAPE), device=device, generator=generator)
    return process.start_state(n, generator, device, config, offset, sampler)


@torch.no_grad()
def generate(
    net: nn.Module,
    process,
    config: Config,
    n: int,
    seed: int,
    device: torch.device,
    sampler: str | None = None,
    steps: int | None = None,
    digit: int | None = None,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
    batch_size: int = 500,
) -> torch.Tensor:
    """Draw ``n`` samples (n, 1, 28, 28) in [-0.5, 0.5]-ish model units, in batches, seeded.

    ``on_step`` (for trajectories) needs ``n <= batch_size`` so that it sees the whole set.
    """
    if n < 1:
        raise UserError(f"-n {n} is not a number of samples: give at least 1")
    if on_step is not None and n > batch_size:
        raise UserError(f"a trajectory is drawn for at most {batch_size} images, not {n}")
    if digit is not None and not config.model.num_classes:
        raise UserError("--digit needs a class-conditional model (model.num_classes = 10)")
    if digit is not None and not 0 <= digit < config.model.num_classes:
        raise UserError(f"--digit {digit} is out of range: 0..{config.model.num_classes - 1}")
    sampler = sampler or config.sampling.sampler
    sample = get_sampler(sampler, process.kind)
    if sampler == "ddim":  # the one sampler with a setting of its own
        sample = functools.partial(sample, eta=config.sampling.eta)
    steps = steps if steps is not None else config.sampling.steps
    was_training = net.training
    net.eval()
    generator = torch.Generator(device).manual_seed(seed)
    out = []
    for offset in range(0, n, batch_size):
        b = min(batch_size, n - offset)
        y = class_labels(config.model.num_classes, digit, offset, b, device)
        model = model_fn(net, process.T, y, config.sampling.guidance)
        if config.sampling.clip_x0 and process.kind == "gaussian":
            model = clip_x0(model, process)
        x_T = start_state(process, b, generator, device, config, offset, sampler)
        out.append(sample(model, process, x_T, generator, steps=steps, on_step=on_step))
    net.train(was_training)
    return torch.cat(out)


TRAJECTORY_FRACTIONS = (1.0, 0.5, 0.1, 0.05, 0.0)


def trajectory(
    net: nn.Module,
    process,
    config: Config,
    n: int,
    seed: int,
    device: torch.device,
    sampler: str | None = None,
    fractions=TRAJECTORY_FRACTIONS,
) -> list[torch.Tensor]:
    """States of the reverse process at ``fractions`` of T (the report's "diffusion process" rows).

    Returns one (n, 1, 28, 28) tensor per fraction; the last (fraction 0) is the final sample.
    """
    targets = [round(f * process.T) for f in fractions]
    states: list[torch.Tensor | None] = [None] * len(fractions)

    def record(t: int, x: torch.Tensor) -> None:
        # Few-step samplers skip times, and for small T fractions collide: each target takes the
        # first state the reverse process reaches at or below it.
        for k, target in enumerate(targets):
            if states[k] is None and t <= target:
                states[k] = x.clone()

    final = generate(net, process, config, n, seed, device, sampler=sampler, on_step=record)
    for k, target in enumerate(targets):
        if target == 0:
            states[k] = final
    return states
