"""Drawing samples: build the start state and the model function, then run a sampler as its
plan (``plan.py``) says."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator

import torch
from torch import nn
from tqdm import tqdm

from ..config import Config
from ..data import load_data
from ..diffusion.noise import Generators, randn, sample_generators
from ..errors import UserError
from ..progress_bar import progress_bar
from .ancestral import StepCallback
from .plan import SamplingPlan, resolve_plan
from .registry import SAMPLERS


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


def asked_classes(num_classes: int, plan: SamplingPlan, n: int) -> list[int] | None:
    """The class each of samples 0..n-1 drawn with ``plan`` is asked to be, by
    :func:`class_labels`'s rule; None where no label takes effect (``plan.labels`` None: an
    unconditional model, or guidance 0, the unconditional prediction alone)."""
    if plan.labels is None:
        return None
    return class_labels(num_classes, plan.digit, 0, n, torch.device("cpu")).tolist()


def clip_x0(model: Callable, process) -> Callable:
    """``model`` with its x0 prediction clamped to the data range at every step (Gaussian)."""

    def clipped(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return process.clip_output(model(x, t), x, t)

    return clipped


def start_state(
    process,
    n: int,
    generator: Generators,
    device: torch.device,
    config: Config,
    offset: int = 0,
    mode: str | None = None,
    *,
    shape: tuple[int, int, int],
):
    """x_T: N(0, I) of (n, *shape) for a Gaussian process; for a cold one, the process builds a
    ``ColdStart`` (x_T with its key and time) from start ``mode`` (a plan's ``cold_start``) and the
    data set of ``config.data``, loaded here."""
    if process.kind == "gaussian":
        return randn((n, *shape), generator, device)
    data = load_data(config.data)
    return process.start_state(n, generator, device, config, data, offset, mode=mode)


def check_finite(samples: torch.Tensor, offset: int = 0, n: int | None = None) -> None:
    """Refuse samples (N, ...) holding NaN or inf: no image can show them honestly.

    ``samples`` may be one batch, samples offset..offset+N-1 of ``n``: the message says so."""
    bad = int((~torch.isfinite(samples).flatten(1).all(dim=1)).sum())
    if bad:
        which = f"{len(samples)} samples"
        if n is not None and n != len(samples):
            which = f"samples {offset}..{offset + len(samples) - 1} (of {n})"
        raise UserError(
            f"{bad} of {which} are not finite (NaN or inf); the checkpoint's weights may be "
            "damaged or its training diverged"
        )


BATCH_SIZE = 500  # images per sampling batch


def seeded_batches(
    n: int, seed: int, device: torch.device, batch_size: int = BATCH_SIZE
) -> Iterator[tuple[int, int, Generators]]:
    """(offset, size, generators) of each batch of ``n`` images, sample i's generator seeded
    from (seed, i): the batching every seeded draw shares, so i's numbers never depend on n."""
    for offset in range(0, n, batch_size):
        b = min(batch_size, n - offset)
        yield offset, b, sample_generators(seed, offset, b, device)


def device_memory_bytes(device: torch.device) -> float:
    """The memory of ``device`` in bytes: a GPU's total memory, else the machine's RAM (POSIX;
    infinite where the OS does not say, e.g. Windows, so that nothing is refused there)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return float("inf")


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
    batch_size: int = BATCH_SIZE,
    *,
    plan: SamplingPlan | None = None,
    shape: tuple[int, int, int],
    progress: bool = False,
) -> torch.Tensor:
    """Draw ``n`` samples (n, *shape) in [-0.5, 0.5]-ish model units, in batches, seeded;
    ``shape`` (C, H, W): the images the network takes (``TrainedModel.shape``); ``progress``:
    show a tqdm bar of the sampler's steps over all batches (erased when done).

    What is drawn is ``plan`` (from :func:`~diffusiontools.sampling.plan.resolve_plan`), or the
    plan of the request ``sampler``, ``steps``, ``digit`` on ``config`` (None: the config's own),
    checked before anything is drawn. Sample i draws all its
    randomness from its own generator, seeded from (seed, i): it gets the same random numbers
    whether 4 or 4000 samples are drawn and whatever ``batch_size`` is, for every sampler. (The
    network, and the gmm start's batched matrix products, may round differently in batches of
    another size, so results then agree to float32 rounding, not always bit for bit.) The one
    exception is a cold process with
    ``diffusion.t_per = batch``, whose samples share one random field per batch (the report's
    setting): there sample i also depends on ``batch_size``.
    Non-finite samples are refused (:func:`check_finite`). ``on_step`` (for trajectories) needs
    ``n <= batch_size`` so that it sees the whole set. All n samples are held at once: for
    more than memory holds, take them batch by batch from :func:`generate_batches`; an ``n``
    whose float32 images alone exceed the device's memory is refused before any is drawn.
    """
    need, have = n * math.prod(shape) * 4, device_memory_bytes(device)
    if need > have:
        raise UserError(
            f"n={n} samples need {need / 2**30:,.1f} GiB as float32, more than the "
            f"{have / 2**30:,.1f} GiB of memory of {device}: draw fewer at a time (sample i "
            "depends only on seed and i), or stream them to a file (diffusiontools sample -n)"
        )
    batches = generate_batches(
        net,
        process,
        config,
        n,
        seed,
        device,
        sampler,
        steps,
        digit,
        on_step,
        batch_size,
        plan=plan,
        shape=shape,
        progress=progress,
    )
    return torch.cat(list(batches))


def generate_batches(
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
    batch_size: int = BATCH_SIZE,
    *,
    plan: SamplingPlan | None = None,
    shape: tuple[int, int, int],
    progress: bool = False,
) -> Iterator[torch.Tensor]:
    """:func:`generate`'s samples as they are drawn: one (b, *shape) tensor per batch of
    ``batch_size`` (the last may be smaller), samples 0..n-1 in order, each batch checked to be
    finite. Memory holds one batch at a time, whatever ``n``. Arguments as for :func:`generate`;
    the settings are checked before the first batch is drawn."""
    if n < 1:
        raise UserError(f"n={n} is not a number of samples: give at least 1")
    if on_step is not None and n > batch_size:
        raise UserError(f"a trajectory is drawn for at most {batch_size} images, not {n}")
    plan = _plan(config, sampler, steps, digit, plan)
    check_starts(process, config, plan, n, batch_size)
    return _batches(
        net, process, config, n, seed, device, plan, on_step, batch_size, shape, progress
    )


def check_starts(
    process, config: Config, plan: SamplingPlan, n: int, batch_size: int = BATCH_SIZE
) -> None:
    """Refuse ``n`` samples of ``plan`` whose cold starts from the test images of
    ``config.data`` would repeat (``ColdDiffusion.check_test_starts``); nothing else is
    checked (a Gaussian or gmm start repeats none)."""
    if process.kind == "cold" and plan.cold_start in ("test", "test_consistent"):
        n_test = len(load_data(config.data).test_images)
        process.check_test_starts(n, n_test, batch_size)


def _plan(
    config: Config,
    sampler: str | None,
    steps: int | None,
    digit: int | None,
    plan: SamplingPlan | None,
) -> SamplingPlan:
    if plan is None:
        return resolve_plan(config, sampler, steps, digit)
    if (sampler, steps, digit) != (None, None, None):
        raise TypeError("give either a plan or sampler, steps and digit, not both")
    return plan


@torch.no_grad()
def _batches(
    net: nn.Module,
    process,
    config: Config,
    n: int,
    seed: int,
    device: torch.device,
    plan: SamplingPlan,
    on_step: Callable[[int, torch.Tensor], None] | None,
    batch_size: int,
    shape: tuple[int, int, int],
    progress: bool,
) -> Iterator[torch.Tensor]:
    sample = SAMPLERS[plan.sampler].sample
    keywords = plan.keywords()  # eta, timestep_spacing: where the sampler takes them
    was_training = net.training
    net.eval()
    batches = math.ceil(n / batch_size)
    bar = progress_bar(
        total=batches * plan.steps,
        desc=f"{plan.sampler}, {n} sample{'s' * (n != 1)}",
        unit="step",
        leave=False,
        shown=progress,
    )
    try:
        for k, (offset, b, generators) in enumerate(seeded_batches(n, seed, device, batch_size)):
            y = class_labels(config.model.num_classes, plan.digit, offset, b, device)
            model = model_fn(net, process.T, y, 1.0 if plan.guidance is None else plan.guidance)
            if plan.clip_x0:
                model = clip_x0(model, process)
            x_T = start_state(
                process, b, generators, device, config, offset, plan.cold_start, shape=shape
            )
            stepped = _ticking(bar, on_step)
            x = sample(model, process, x_T, generators, plan.steps, stepped, **keywords)
            bar.update((k + 1) * plan.steps - bar.n)  # a sampler may not report its last step
            check_finite(x, offset, n)
            yield x
    finally:
        bar.close()
        net.train(was_training)


def _ticking(bar: tqdm, on_step: StepCallback | None) -> StepCallback:
    """A sampler's ``on_step`` that also moves ``bar`` by one per step: every call but the
    first, which shows the starting state (the samplers' protocol, ``ancestral.py``)."""
    started = False

    def stepped(t: float, x: torch.Tensor) -> None:
        nonlocal started
        if on_step is not None:
            on_step(t, x)
        if started:
            bar.update()
        started = True

    return stepped


TRAJECTORY_FRACTIONS = (1.0, 0.5, 0.1, 0.05, 0.0)


def trajectory(
    net: nn.Module,
    process,
    config: Config,
    n: int,
    seed: int,
    device: torch.device,
    sampler: str | None = None,
    steps: int | None = None,
    digit: int | None = None,
    fractions=TRAJECTORY_FRACTIONS,
    *,
    plan: SamplingPlan | None = None,
    shape: tuple[int, int, int],
    progress: bool = False,
) -> tuple[list[int], list[torch.Tensor]]:
    """States of the reverse process near ``fractions`` of T (the report's "diffusion process").

    Returns the times actually shown and one (n, *shape) state per fraction: the first state
    the sampler reaches at or below round(fraction * T) (few-step samplers skip times, and for
    small T fractions collide). The last (fraction 0) is the final sample, the same as
    :func:`generate`'s for the same arguments (``plan``, or the request as for :func:`generate`).
    """
    plan = _plan(config, sampler, steps, digit, plan)
    targets = [round(f * process.T) for f in fractions]
    times: list[int | None] = [None] * len(fractions)
    states: list[torch.Tensor | None] = [None] * len(fractions)

    def record(t: float, x: torch.Tensor) -> None:
        for k, target in enumerate(targets):
            if states[k] is None and t <= target:  # t is real for the sigma-space samplers
                times[k], states[k] = round(t), x.clone()

    final = generate(
        net,
        process,
        config,
        n,
        seed,
        device,
        on_step=record,
        plan=plan,
        shape=shape,
        progress=progress,
    )
    for k in range(len(targets)):
        if states[k] is None:  # reached at or below its target only by the end: the sample
            times[k], states[k] = 0, final
    for state in states:
        check_finite(state)
    return times, states
