"""Euler ancestral (k-diffusion's ``sample_euler_ancestral``) against two oracles: diffusers'
``EulerAncestralDiscreteScheduler`` on the same noise levels and the same noise, and the
closed-form moments of its output for Gaussian data, which tend to the data's mean and standard
deviation as the steps grow; plus guidance and clip_x0 through ``generate`` (the contract of
``test_fast_samplers`` covers it too, through the registry)."""

from __future__ import annotations

import math

import pytest
import torch
from oracles import process64
from tiny_runs import single_thread  # noqa: F401 (autouse: many tiny steps)

from diffusiontools.config import DiffusionConfig
from diffusiontools.diffusion.gaussian import GaussianDiffusion
from diffusiontools.sampling.euler_ancestral import sample_euler_ancestral
from diffusiontools.sampling.karras import karras_sigmas

NOTEBOOK = DiffusionConfig(T=1000, beta1=1e-4, beta2=0.02)
SHORT = DiffusionConfig(T=100, beta1=1e-3, beta2=0.2)
COSINE = DiffusionConfig(T=1000, schedule="cosine")
FLOAT32_ULP = 2.0**-24


@pytest.mark.parametrize(
    "config, prediction",
    [(NOTEBOOK, "eps"), (SHORT, "eps"), (COSINE, "eps"), (SHORT, "v")],
    ids=["notebook", "short", "cosine", "short-v"],  # diffusers' has no x0 prediction
)
@pytest.mark.parametrize("steps", [1, 5, 20, 50])
def test_equals_diffusers_euler_ancestral_on_the_same_sigmas_and_noise(
    config, prediction, steps, float64
):
    """diffusers on our betas, its sigmas and timesteps set to ours (``test_karras`` checks
    both against its own functions), the same stand-in network, x_T and per-sample generators:
    it draws its noise as ours does (row b from generator b), once more at the last step, where
    sigma_up = 0. Its step() casts the sample to float32, so the two agree to float32 rounding
    of the largest state, x at sigma_T (sigma_T |x_T|, up to 5e4 for the cosine schedule):
    asserted within 4 ulps of it. Measured: at most 3.7e-7 of it in one step, where the last
    step's x - sigma eps cancels; 1.6e-7 absolute (outputs about 1) from 5 steps on, 6e-6 for
    the cosine schedule's 5 steps."""
    pytest.importorskip("diffusers")
    from diffusers import EulerAncestralDiscreteScheduler
    from test_diffusers_oracle import StandIn, generators, scheduler, x_T_64

    process = process64(config, prediction)
    net, x_T = StandIn(process), x_T_64()
    ours = sample_euler_ancestral(net, process, x_T, generators(), steps=steps)
    s = scheduler(EulerAncestralDiscreteScheduler, process)
    s.set_timesteps(steps)
    sigmas = karras_sigmas(process, steps)
    s.sigmas = torch.tensor(sigmas)
    s.timesteps = torch.tensor([process.sigma_to_t(sigma) for sigma in sigmas[:-1]])
    x, theirs_g = x_T / process.alpha_bar[process.T].sqrt(), generators()
    for t in s.timesteps:
        x = s.step(net(s.scale_model_input(x, t), t), t, x, generator=theirs_g).prev_sample
    largest = sigmas[0] * x_T.abs().max().item()
    torch.testing.assert_close(ours, x, rtol=0, atol=4 * FLOAT32_ULP * largest)


def moments(process: GaussianDiffusion, m: float, s: float, steps: int) -> tuple[float, float]:
    """Mean and standard deviation of the output per pixel for data N(m, s^2), in float64.

    The exact denoiser is D(x; sigma) = m + s^2 (x - m) / (s^2 + sigma^2), so each step is
    x' - m = c (x - m) + sigma_up N(0, 1) with c = 1 + (sigma_down - sigma) sigma /
    (s^2 + sigma^2), from x = x_T / sqrt(alpha_bar_T) ~ N(0, 1 / alpha_bar_T)."""
    sigmas = karras_sigmas(process, steps)
    mean, var = 0.0, 1 / process.alpha_bar[process.T].item()
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:], strict=True):
        up2 = sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2
        c = 1 + (math.sqrt(sigma_next**2 - up2) - sigma) * sigma / (s**2 + sigma**2)
        mean, var = m + c * (mean - m), c**2 * var + up2
    return mean, math.sqrt(var)


def gaussian_data(process: GaussianDiffusion, m: float, s: float):
    """The exact eps of data N(m, s^2 I): sqrt(1 - a) (x_t - sqrt(a) m) / (a s^2 + 1 - a)."""

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = process.alpha_bar_at(t).double()[:, None, None, None]
        return (1 - a).sqrt() * (x_t - a.sqrt() * m) / (a * s**2 + 1 - a)

    return model


@pytest.mark.parametrize("steps", [10, 50])
def test_samples_have_the_closed_form_mean_and_std_of_gaussian_data(steps, float64):
    """80,000 values (20,000 samples of 2 x 2 pixels) against ``moments``, within 4 standard
    errors. The mean is the data's (but for 1e-6 left of x_T's mean 0); the std falls short of
    s by a first-order bias of the Euler steps (0.059 at 50 steps on this schedule, 0.033 at
    100), which the next test shows vanishing."""
    process, m, s, n = process64(SHORT), 0.3, 0.5, 80_000
    x_T = torch.randn(n // 4, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    model = gaussian_data(process, m, s)
    x0 = sample_euler_ancestral(model, process, x_T, torch.Generator().manual_seed(3), steps)
    mean, std = moments(process, m, s, steps)
    assert mean == pytest.approx(m, abs=1e-5)
    assert x0.mean().item() == pytest.approx(mean, abs=4 * std / math.sqrt(n))
    assert x0.std().item() == pytest.approx(std, abs=4 * std / math.sqrt(2 * n))


def test_the_closed_form_tends_to_the_data_at_first_order():
    """On the notebook schedule (T = 1000): the output's std tends to s (times the last
    step's x0_hat shrinkage s / sqrt(s^2 + sigma_1^2), 0.9996 here): the gap halves as the
    steps double, as Euler's first order says."""
    process, m, s = process64(NOTEBOOK), 0.3, 0.5
    sigma_1 = math.sqrt((1 - process.alpha_bar[1].item()) / process.alpha_bar[1].item())
    target = s * s / math.sqrt(s**2 + sigma_1**2)
    gap = {n: target - moments(process, m, s, n)[1] for n in (250, 500, 1000)}
    assert 0 < gap[1000] < 0.004
    assert 1.8 < gap[250] / gap[500] < 2.2 and 1.8 < gap[500] / gap[1000] < 2.2
