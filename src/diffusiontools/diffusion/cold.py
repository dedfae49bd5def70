"""The cold forward process (Bansal et al. 2022): x_t = D(x0, level_t, key), no Gaussian noise.

Not an ``nn.Module``: it holds the degradation and its level schedule and takes the network as an
argument. The network predicts x0 directly: loss = criterion(x0, R(D(x0, t), t/T)). Images are
square, gray or RGB, of any side: the process holds no shape and reads it from the images it
degrades.

A cold sampler starts from a ``ColdStart`` (x_T, key, t): the state, the key of its random field
and the time it sits at. Algorithm 2 (Bansal et al.) telescopes only when every D it applies uses
the start's own key and the start really is D(x0, t, key); carrying both makes that hold by
construction. Start modes (``sampling.start``):

- ``test`` (the report's, faithful): test images degraded at t = T - 1, sampled as if at t = T,
  with a fresh random field at every re-degradation. Only the naive sampler accepts it: its
  numbers stay the report's, bit for bit.
- ``test_consistent``: test images degraded at t = T, the sampler re-applying their key.
- ``gmm``: an unconditional draw (``cold_start.py``) at t = T with a fresh key.
- ``auto``: ``test`` for the naive sampler, ``test_consistent`` for the improved one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config, DiffusionConfig
from ..data.declared import declared_side
from ..errors import UserError
from .degradations import make_degradation
from .degradations.base import KEY_RANGE, Degradation
from .noise import Generators, randint, randn
from .schedules import linear_schedule

if TYPE_CHECKING:  # annotations only; the mixture is fitted on first use (sklearn loads slowly)
    from ..data import ImageDataset
    from .cold_start import DegradedGMM

# Bansal et al.'s blur generation adds Gaussian noise of std 0.001-0.004 ([-1, 1] units) to the
# mixture's nearly constant x_T, so that samples differ; we take 0.002, i.e. 0.001 in ours.
GMM_NOISE_STD = 0.001


@dataclass(frozen=True)
class ColdStart:
    """Where a cold sampler starts: state ``x`` (B, C, H, W) at time ``t`` with field ``key``.

    ``fresh_fields`` marks the report's start (``test``): the state was degraded at T - 1 but is
    sampled as if at t = T, and each re-degradation draws a new field, so it lies on no single
    trajectory and Algorithm 2 refuses it.
    """

    x: torch.Tensor  # (B, C, H, W)
    key: torch.Tensor  # (B,) int64
    t: int
    fresh_fields: bool = False


def cold_levels(d: DiffusionConfig) -> tuple[float, float]:
    """The degradation's (level at t = 0, level at t = T): ``diffusion.level_min`` and
    ``level_max``, each None filled in with the degradation's default."""
    lo, hi = make_degradation(d.degradation).default_levels
    return (lo if d.level_min is None else d.level_min, hi if d.level_max is None else d.level_max)


def check_levels_fit(config: Config, side: int) -> None:
    """Refuse, in one sentence naming ``diffusion.level_max`` and ``data.dataset``, a level_max
    beyond what the degradation can do to side x side images (``Degradation.max_level``)."""
    d = config.diffusion
    level_max = cold_levels(d)[1]
    most = make_degradation(d.degradation).max_level(side)
    if level_max > most:
        default = f" (the default of {d.degradation})" if d.level_max is None else ""
        raise UserError(
            f"diffusion.level_max = {level_max:g}{default} exceeds {most:g}, the most "
            f"{d.degradation} takes on the {side}x{side} images of data.dataset = "
            f"{config.data.dataset}: use at most {most:g}"
        )


def resolve_start(start: str, sampler: str) -> str:
    """The start mode ``sampling.start`` means for ``sampler`` (``auto`` resolved)."""
    if start != "auto":
        return start
    return "test_consistent" if sampler == "improved" else "test"


@dataclass
class ColdDiffusion:
    """Degradation D and levels level_t = (max - min) t / T + min for t = 0..T (T+1 entries).

    ``t_per = "batch"`` reproduces the report: one t and one random field for the whole batch;
    ``"image"`` (default) gives each image its own t and field.
    """

    degradation: Degradation
    levels: torch.Tensor  # (T+1,)
    loss_kind: str = "mse"
    t_per: str = "image"
    t_range: str = "notebook"
    kind: str = "cold"

    @classmethod
    def from_config(
        cls, config: Config, shape: tuple[int, int, int] | None = None
    ) -> ColdDiffusion:
        """The process ``config.diffusion`` describes; refuses levels its degradation cannot
        take (``Degradation.check_levels``) and, for images of ``shape`` (C, S, S) or, without
        it, of the side ``config.data`` declares (``declared_side``; none: not checked here), a
        level_max beyond the size's (:func:`check_levels_fit`)."""
        d = config.diffusion
        degradation = make_degradation(d.degradation)
        level_min, level_max = cold_levels(d)
        degradation.check_levels(level_min, level_max)
        side = declared_side(config.data) if shape is None else shape[-1]
        if side is not None:
            check_levels_fit(config, side)
        levels = linear_schedule(level_min, level_max, d.T)
        return cls(degradation, levels, d.loss, d.t_per, d.t_range)

    @property
    def T(self) -> int:
        return self.levels.shape[0] - 1

    def to(self, device: torch.device) -> ColdDiffusion:
        return ColdDiffusion(
            self.degradation, self.levels.to(device), self.loss_kind, self.t_per, self.t_range
        )

    def draw_keys(self, batch: int, generator: Generators, device: torch.device) -> torch.Tensor:
        """One random key per image (one shared key for the batch when ``t_per = batch``)."""
        n = 1 if self.t_per == "batch" else batch
        return randint(KEY_RANGE, n, generator, device).expand(batch)

    def degrade(self, x0: torch.Tensor, t: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """x_t = D(x0, level_t, key); x0 (B, C, H, W), t (B,) int, key (B,) int64."""
        return self.degradation(x0, self.levels[t], key)

    def draw_noise(
        self, shape: torch.Size, generator: torch.Generator, device: torch.device
    ) -> dict:
        """The randomness of one training batch: t and keys.

        t ~ U{1..T-1} for ``t_range = notebook`` (the report's, as the Gaussian model) or
        U{1..T} for ``full`` (Bansal et al.'s code, which trains every level a sampler visits).

        Drawn for the whole (global) batch so that data-parallel ranks, each taking a slice, see
        exactly the numbers a single process would.
        """
        batch = shape[0]
        n_t = 1 if self.t_per == "batch" else batch
        t_high = self.T + 1 if self.t_range == "full" else self.T  # exclusive bound
        t = torch.randint(1, t_high, (n_t,), device=device, generator=generator).expand(batch)
        return {"t": t, "key": self.draw_keys(batch, generator, device)}

    def loss(
        self, net: nn.Module, x0: torch.Tensor, noise: dict, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """criterion(x0, R(D(x0, t), t/T)) with L1 or MSE; the network predicts x0."""
        t = noise["t"]
        x0_hat = net(self.degrade(x0, t, noise["key"]), t / self.T)
        criterion = F.l1_loss if self.loss_kind == "l1" else F.mse_loss
        return criterion(x0_hat, x0)

    def time_grid(self, t_start: int, steps: int | None) -> list[int]:
        """The times a sampler visits: t_start = t_0 > t_1 > ... > t_steps = 0.

        ``steps`` None takes every integer time; fewer steps space them evenly (rounded half
        up), so each sampler call jumps from t_i to t_{i+1} (see the samplers).
        """
        if steps is None:
            return list(range(t_start, -1, -1))
        if not 1 <= steps <= t_start:
            raise UserError(
                f"sampling.steps={steps} is not allowed for this cold start at t = {t_start}: "
                f"use 1..{t_start} (or none for every step)"
            )
        return [(2 * t_start * (steps - i) + steps) // (2 * steps) for i in range(steps + 1)]

    def start_state(
        self,
        n: int,
        generator: Generators,
        device: torch.device,
        config: Config,
        data: ImageDataset,
        offset: int = 0,
        sampler: str = "naive",
        mode: str | None = None,
    ) -> ColdStart:
        """The start of ``n`` trajectories in start ``mode`` (None: as ``config.sampling.start``
        says for ``sampler``), from ``data``, the data set of ``config.data`` (loaded by the
        caller: the process reads no files).

        ``test`` and ``test_consistent`` start sample i (i = offset..offset+n-1) from test
        image i % K of the K there are (:func:`cycled_test_indices`), each with its own field
        (where a start would repeat, :meth:`check_test_starts` refuses it before drawing);
        ``gmm`` (Bansal et al.'s generation) from a mixture fitted to training images degraded
        at t = T (``cold_start.py``) plus N(0, GMM_NOISE_STD^2); ``offset`` then plays no part.
        """
        mode = mode or resolve_start(config.sampling.start, sampler)
        if mode == "gmm":
            x = degraded_gmm(config, data.train_images).sample(n, generator, device)
            x = x + GMM_NOISE_STD * randn(x.shape, generator, device)
            return ColdStart(x, self.draw_keys(n, generator, device), self.T)
        from ..data import to_model

        x0 = to_model(data.test_images[cycled_test_indices(offset, n, len(data.test_images))])
        return self.start_from(x0.to(device), mode, generator)

    def check_test_starts(self, n: int, n_test: int, batch_size: int) -> None:
        """Refuse ``n`` samples started from ``n_test`` test images in turn (``start_state``,
        in batches of ``batch_size``) where a start would repeat an earlier one, so that a
        sample would too: a degradation that draws no random field repeats every start from
        sample ``n_test`` on, one field per batch (``t_per = batch``) every start within a batch
        of more than ``n_test``."""
        if n <= n_test:
            return
        if not self.degradation.random_field:
            why = f"diffusion.degradation = {self.degradation.name} draws no random field"
        elif self.t_per == "batch" and min(n, batch_size) > n_test:
            why = f"diffusion.t_per = batch gives each batch of {batch_size} one random field"
        else:
            return  # each cycled start has its own field
        raise UserError(
            f"{n} samples would start from the {n_test} test images in turn and {why}, so "
            f"sample {n_test} would repeat sample 0: ask for at most {n_test} (sample -n, "
            "evaluate --n-samples, training.eval_samples) or start from sampling.start=gmm, "
            "which takes no test image"
        )

    def start_from(self, x0: torch.Tensor, mode: str, generator: Generators) -> ColdStart:
        """Degrade x0 (B, C, H, W) into a ``test`` or ``test_consistent`` start, own keys."""
        key = self.draw_keys(len(x0), generator, x0.device)
        if mode == "test":  # the report's: degraded at T - 1, sampled from T
            t = torch.full((len(x0),), self.T - 1, device=x0.device, dtype=torch.long)
            return ColdStart(self.degrade(x0, t, key), key, self.T, fresh_fields=True)
        if mode != "test_consistent":
            raise UserError(
                f"sampling.start={mode!r} does not start from test images; "
                "use test or test_consistent"
            )
        t = torch.full((len(x0),), self.T, device=x0.device, dtype=torch.long)
        return ColdStart(self.degrade(x0, t, key), key, self.T)


def cycled_test_indices(offset: int, n: int, n_test: int) -> torch.Tensor | slice:
    """The test images samples offset..offset+n-1 start from: image i % n_test for sample i.

    A plain slice while no index passes the end (the images themselves, not a copy); beyond it
    the test images are taken again in order, and the samples differ by their own fields
    (``draw_keys``; :meth:`ColdDiffusion.check_test_starts` refuses where they would not)."""
    if offset + n <= n_test:
        return slice(offset, offset + n)
    return torch.arange(offset, offset + n) % n_test


def start_images_record(n: int, n_test: int) -> str:
    """What a sample record says of ``n`` samples started from ``n_test`` test images."""
    if n <= n_test:
        return f"test images 0..{n - 1}"
    return f"test images 0..{n_test - 1}, cycled: sample i starts from test image i % {n_test}"


def degraded_gmm(config: Config, images: torch.Tensor) -> DegradedGMM:
    """``cold_start.py``'s mixture for ``config``'s degradation and data, fitted once per process.

    ``images``: the training images of ``config.data`` (uint8 (N, C, H, W)), handed in by the
    caller; since the config names them, the mixture is kept by ``config`` alone (the last
    ``MIXTURES_KEPT``). Fitted to the training split (``data.subset`` and the 80/20 split
    respected), seeded with ``training.seed``, so the same config always gives the same mixture.
    """
    from ..data import subset_split, to_model
    from .cold_start import N_FIT, fit_degraded_gmm  # late: sklearn loads slowly

    if config not in _MIXTURES:
        d = config.data
        train_idx, _ = subset_split(len(images), d.subset, d.val_fraction, d.split_seed)
        x0 = to_model(images[train_idx[:N_FIT]])
        if len(_MIXTURES) == MIXTURES_KEPT:
            del _MIXTURES[next(iter(_MIXTURES))]  # the oldest
        process = ColdDiffusion.from_config(config, tuple(images.shape[1:]))
        _MIXTURES[config] = fit_degraded_gmm(process, x0, config.training.seed)
    return _MIXTURES[config]


MIXTURES_KEPT = 4
_MIXTURES: dict[Config, DegradedGMM] = {}
