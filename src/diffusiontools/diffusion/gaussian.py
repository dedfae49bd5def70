"""The Gaussian forward process of DDPM (Ho et al. 2020) with the notebook's conventions.

Not an ``nn.Module``: it holds schedules, no parameters, and takes the network as an argument.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import DiffusionConfig, check_key
from .schedules import alpha_bar_from_beta, cosine_schedule, linear_schedule


@dataclass
class GaussianDiffusion:
    """q(x_t | x0) = N(sqrt(alpha_bar_t) x0, (1 - alpha_bar_t) I) for t = 0..T (T+1 entries).

    ``prediction`` says what the network outputs: ``eps`` (the notebook), ``x0`` or ``v``
    (Salimans & Ho 2022, v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0).
    """

    beta: torch.Tensor  # (T+1,)
    alpha_bar: torch.Tensor  # (T+1,)
    prediction: str = "eps"
    loss_weighting: str = "none"  # or "min_snr" (Hang et al. 2023)
    min_snr_gamma: float = 5.0
    t_sampling: str = "uniform"  # or "lognormal" (Karras et al. 2022)
    t_lognormal_mean: float = -0.5
    t_lognormal_std: float = 1.5
    kind: str = "gaussian"

    def __post_init__(self) -> None:
        """A prediction, weighting or time sampling of no known name is refused, never read as
        the last branch's (v, min-SNR, log-normal)."""
        for name in ("prediction", "loss_weighting", "t_sampling"):
            check_key(f"diffusion.{name}", getattr(self, name))

    @classmethod
    def from_config(cls, config: DiffusionConfig) -> GaussianDiffusion:
        check_key("diffusion.schedule", config.schedule)
        if config.schedule == "linear":
            beta = linear_schedule(config.beta1, config.beta2, config.T)
        else:
            beta = cosine_schedule(config.T)
        return cls(
            beta,
            alpha_bar_from_beta(beta),
            config.prediction,
            config.loss_weighting,
            config.min_snr_gamma,
            config.t_sampling,
            config.t_lognormal_mean,
            config.t_lognormal_std,
        )

    @property
    def T(self) -> int:
        return self.beta.shape[0] - 1

    def to(self, device: torch.device) -> GaussianDiffusion:
        return dataclasses.replace(
            self, beta=self.beta.to(device), alpha_bar=self.alpha_bar.to(device)
        )

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps (Ho et al. eq. 4); t (B,) int."""
        a = self.alpha_bar[t][:, None, None, None]
        return a.sqrt() * x0 + (1 - a).sqrt() * eps

    def alpha_bar_at(self, t: torch.Tensor) -> torch.Tensor:
        """alpha_bar at times t (B,): the schedule's entry at an integer t. A real t in [1, T] (a
        sigma-space sampler's, :meth:`sigma_to_t`) gets the alpha_bar whose ln sigma is linear
        between the two integer times around it, sigma = sqrt((1 - alpha_bar) / alpha_bar)
        (k-diffusion's ``DiscreteSchedule.t_to_sigma``)."""
        if not t.is_floating_point():
            return self.alpha_bar[t]
        log_sigma = self.log_sigma()
        low = t.floor().long().clamp(1, self.T - 1)
        w = (t - low).to(log_sigma.dtype)
        between = (1 - w) * log_sigma[low] + w * log_sigma[low + 1]
        return torch.sigmoid(-2 * between)  # 1 / (1 + sigma^2)

    def log_sigma(self) -> torch.Tensor:
        """ln sigma_t = ln sqrt((1 - alpha_bar_t) / alpha_bar_t) for t = 0..T (T+1,), increasing;
        -inf where alpha_bar = 1 (t = 0 of the cosine schedule)."""
        return 0.5 * ((1 - self.alpha_bar) / self.alpha_bar).log()

    def sigma_to_t(self, sigma: float) -> float:
        """The real time t in [1, T] of noise level ``sigma``: where ln sigma_t, linear between
        integer times, equals ln sigma (k-diffusion's ``DiscreteSchedule.sigma_to_t``, the
        inverse of :meth:`alpha_bar_at`); clamped to [1, T], the levels the network knows."""
        table = self.log_sigma()[1:].double().cpu().numpy()  # t = 1..T
        return float(np.interp(math.log(sigma), table, np.arange(1, self.T + 1)))

    def target(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the network is trained to output at (x_t, t); t (B,) int, or real (see
        :meth:`alpha_bar_at`)."""
        if self.prediction == "eps":
            return eps
        if self.prediction == "x0":
            return x0
        a = self.alpha_bar_at(t)[:, None, None, None]
        return a.sqrt() * eps - (1 - a).sqrt() * x0

    def predict_eps_x0(
        self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Convert the network's output at (x_t, t) into (eps_hat, x0_hat); t (B,) int, or real
        (see :meth:`alpha_bar_at`)."""
        a = self.alpha_bar_at(t)[:, None, None, None]
        if self.prediction == "eps":
            eps = output
            x0 = (x_t - (1 - a).sqrt() * eps) / a.sqrt()
        elif self.prediction == "x0":
            x0 = output
            eps = (x_t - a.sqrt() * x0) / (1 - a).sqrt()
        else:
            x0 = a.sqrt() * x_t - (1 - a).sqrt() * output
            eps = (1 - a).sqrt() * x_t + a.sqrt() * output
        return eps, x0

    def clip_output(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network output that predicts the same x_t but x0_hat clamped to [-0.5, 0.5].

        Eps is re-derived from the clamped x0_hat, as "clip_denoised" does in the DDPM code
        and its descendants; this keeps every sampler's x0_hat inside the data range.
        """
        _, x0 = self.predict_eps_x0(output, x_t, t)
        x0 = x0.clamp(-0.5, 0.5)
        a = self.alpha_bar_at(t)[:, None, None, None]
        return self.target(x0, (x_t - a.sqrt() * x0) / (1 - a).sqrt(), t)

    def draw_noise(
        self, shape: torch.Size, generator: torch.Generator, device: torch.device
    ) -> dict:
        """The randomness of one training batch of ``shape``: t (B,) in 1..T-1 and eps ~ N(0, I).

        t ~ U{1..T-1} (the notebook's), or with ``t_sampling = lognormal`` the t whose noise
        level sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) is nearest (in ln sigma) to a draw
        of ln sigma ~ N(t_lognormal_mean, t_lognormal_std^2) (Karras et al. 2022, sec. 5).
        Drawn for the whole (global) batch so that data-parallel ranks, each taking a slice, see
        exactly the numbers a single process would.
        """
        if self.t_sampling == "uniform":
            t = torch.randint(1, self.T, (shape[0],), device=device, generator=generator)
        else:
            z = torch.randn(shape[0], device=device, generator=generator)
            t = self.nearest_t(self.t_lognormal_mean + self.t_lognormal_std * z)
        eps = torch.randn(shape, device=device, generator=generator)
        return {"t": t, "eps": eps}

    def nearest_t(self, log_sigma: torch.Tensor) -> torch.Tensor:
        """The t in 1..T-1 (int64, shape of ``log_sigma``) whose ln sigma_t is nearest."""
        a = self.alpha_bar[1 : self.T]
        table = 0.5 * ((1 - a) / a).log()  # ln sigma_t for t = 1..T-1, increasing
        above = torch.searchsorted(table, log_sigma.contiguous()).clamp(1, table.numel() - 1)
        nearer_below = (log_sigma - table[above - 1]) < (table[above] - log_sigma)
        return above + 1 - nearer_below.long()

    def loss(
        self, net: nn.Module, x0: torch.Tensor, noise: dict, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The notebook's objective: MSE(target, net(x_t, t/T)) with x_t from q(x_t | x0);
        with ``loss_weighting = min_snr`` each sample's MSE is weighted by :meth:`snr_weight`."""
        t, eps = noise["t"], noise["eps"]
        x_t = self.q_sample(x0, t, eps)
        output = net(x_t, t / self.T) if y is None else net(x_t, t / self.T, y)
        if self.loss_weighting == "none":
            return F.mse_loss(output, self.target(x0, eps, t))
        per_sample = (output - self.target(x0, eps, t)).pow(2).flatten(1).mean(dim=1)  # (B,)
        return (self.snr_weight(t) * per_sample).mean()

    def snr_weight(self, t: torch.Tensor) -> torch.Tensor:
        """Min-SNR-gamma loss weights (B,) for times t (B,) (Hang et al. 2023, eq. 9-10).

        With SNR_t = alpha_bar_t / (1 - alpha_bar_t), the x0-MSE weight min(SNR_t, gamma) is
        expressed in this process's prediction: divided by SNR_t for eps, by SNR_t + 1 for v.
        """
        a = self.alpha_bar[t]
        snr = a / (1 - a)
        weight = snr.clamp(max=self.min_snr_gamma)
        if self.prediction == "eps":
            return weight / snr
        if self.prediction == "v":
            return weight / (snr + 1)
        return weight
