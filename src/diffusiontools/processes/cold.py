"""The cold forward process (Bansal et al. 2022): x_t = D(x0, level_t, key), no Gaussian noise.

Not an ``nn.Module``: it holds the degradation and its level schedule and takes the network as an
argument. The network predicts x0 directly: loss = criterion(x0, R(D(x0, t), t/T)).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config
from ..degradations import make_degradation
from ..degradations.base import Degradation
from ..noise import Generators, randint
from .schedules import linear_schedule

KEY_RANGE = 2**62  # random keys are drawn uniformly from [0, KEY_RANGE)


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
    kind: str = "cold"

    @classmethod
    def from_config(cls, config: Config) -> ColdDiffusion:
        level_min, level_max = config.levels()
        d = config.diffusion
        levels = linear_schedule(level_min, level_max, d.T)
        return cls(make_degradation(d.degradation), levels, d.loss, d.t_per)

    @property
    def T(self) -> int:
        return self.levels.shape[0] - 1

    def to(self, device: torch.device) -> ColdDiffusion:
        return ColdDiffusion(self.degradation, self.levels.to(device), self.loss_kind, self.t_per)

    def draw_keys(self, batch: int, generator: Generators, device: torch.device) -> torch.Tensor:
        """One random key per image (one shared key for the batch when ``t_per = batch``)."""
        n = 1 if self.t_per == "batch" else batch
        return randint(KEY_RANGE, n, generator, device).expand(batch)

    def degrade(self, x0: torch.Tensor, t: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """x_t = D(x0, level_t, key); x0 (B,1,28,28), t (B,) int, key (B,) int64."""
        return self.degradation(x0, self.levels[t], key)

    def draw_noise(
        self, shape: torch.Size, generator: torch.Generator, device: torch.device
    ) -> dict:
        """The randomness of one training batch: t ~ U{1..T-1} (as the Gaussian model) and keys.

        Drawn for the whole (global) batch so that data-parallel ranks, each taking a slice, see
        exactly the numbers a single process would.
        """
        batch = shape[0]
        n_t = 1 if self.t_per == "batch" else batch
        t = torch.randint(1, self.T, (n_t,), device=device, generator=generator).expand(batch)
        return {"t": t, "key": self.draw_keys(batch, generator, device)}

    def loss(
        self, net: nn.Module, x0: torch.Tensor, noise: dict, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """criterion(x0, R(D(x0, t), t/T)) with L1 or MSE; the network predicts x0."""
        t = noise["t"]
        x0_hat = net(self.degrade(x0, t, noise["key"]), t / self.T)
        criterion = F.l1_loss if self.loss_kind == "l1" else F.mse_loss
        return criterion(x0_hat, x0)

    def training_loss(
        self,
        net: nn.Module,
        x0: torch.Tensor,
        generator: torch.Generator,
        y: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One batch's loss with fresh randomness: ``loss(net, x0, draw_noise(...), y)``."""
        return self.loss(net, x0, self.draw_noise(x0.shape, generator, x0.device), y)

    def start_state(
        self,
        n: int,
        generator: Generators,
        device: torch.device,
        config: Config,
        offset: int = 0,
    ) -> torch.Tensor:
        """x_T (n, 1, 28, 28) as ``config.sampling.start`` says.

        ``test`` (the report): MNIST test images offset..offset+n-1 degraded at t = T - 1;
        ``gmm`` (Bansal et al.'s generation): draws from a mixture fitted to training images
        degraded at t = T, see ``cold_start.py``; ``offset`` then plays no part.
        """
        if config.sampling.start == "gmm":
            from .cold_start import degraded_gmm

            return degraded_gmm(config).sample(n, generator, device)
        from ..data import load_mnist, to_model

        test = load_mnist(config.data.dir, config.data.source).test_images
        x0 = to_model(test[offset : offset + n]).to(device)
        return self.degrade_test_start(x0, generator)

    def degrade_test_start(self, x0: torch.Tensor, generator: Generators) -> torch.Tensor:
        """The report's conditional start: x0 (B, 1, 28, 28) degraded at t = T - 1, own keys."""
        t = torch.full((len(x0),), self.T - 1, device=x0.device, dtype=torch.long)
        return self.degrade(x0, t, self.draw_keys(len(x0), generator, x0.device))
