"""Heun's sampler (Karras et al. 2022, Alg. 1) against two oracles: diffusers'
``HeunDiscreteScheduler`` stepped over the same noise levels, and the exact probability-flow ODE
of Gaussian data, which Heun must reach at second order; plus guidance and clip_x0 through
``generate``, as for every Gaussian sampler (the contract of ``test_fast_samplers`` covers it
too, through the registry)."""

from __future__ import annotations

import pytest
import torch
from oracles import process64
from tiny_runs import single_thread  # noqa: F401 (autouse: many tiny steps)

from diffusiontools.config import DiffusionConfig
from diffusiontools.diffusion.gaussian import GaussianDiffusion
from diffusiontools.sampling.heun import sample_heun
from diffusiontools.sampling.karras import karras_sigmas

NOTEBOOK = DiffusionConfig(T=1000, beta1=1e-4, beta2=0.02)
SHORT = DiffusionConfig(T=100, beta1=1e-3, beta2=0.2)
COSINE = DiffusionConfig(T=1000, schedule="cosine")


@pytest.mark.parametrize(
    "config, prediction",
    [(NOTEBOOK, "eps"), (SHORT, "eps"), (COSINE, "eps"), (SHORT, "x0"), (SHORT, "v")],
    ids=["notebook", "short", "cosine", "short-x0", "short-v"],
)
@pytest.mark.parametrize("steps", [1, 5, 18])
def test_heun_equals_diffusers_heun_scheduler_on_the_same_sigmas(
    config, prediction, steps, float64
):
    """diffusers on our betas (``trained_betas``, T + 1 timesteps, alphas_cumprod in float64),
    its sigmas and timesteps set to ours (EDM's grid from sigma_T to sigma_1, each sigma's real
    time; ``test_karras`` checks both against diffusers' own functions), the same stand-in
    network and x_T. HeunDiscreteScheduler steps in the sample's dtype, so both sides are
    float64: measured at most 1.5e-11 (the cosine schedule at 5 steps, samples up to 646:
    relative 2e-14), 1.4e-14 elsewhere; asserted: 1e-12 relative."""
    pytest.importorskip("diffusers")
    from diffusers import HeunDiscreteScheduler
    from test_diffusers_oracle import StandIn, scheduler, x_T_64

    process = process64(config, prediction)
    net, x_T = StandIn(process), x_T_64()
    ours = sample_heun(net, process, x_T, None, steps=steps)
    s = scheduler(HeunDiscreteScheduler, process)
    s.set_timesteps(steps)
    sigmas = torch.tensor(karras_sigmas(process, steps))
    times = torch.tensor([process.sigma_to_t(sigma) for sigma in sigmas[:-1].tolist()])
    # diffusers' layout: each sigma but the ends twice (its first- and second-order halves).
    s.sigmas = torch.cat([sigmas[:1], sigmas[1:-1].repeat_interleave(2), sigmas[-1:]])
    s.timesteps = torch.cat([times[:1], times[1:].repeat_interleave(2)])
    assert len(s.timesteps) == 2 * steps - 1  # network evaluations
    x = x_T / process.alpha_bar[process.T].sqrt()  # sigma space: x_T sqrt(1 + sigma_T^2)
    for t in s.timesteps:
        x = s.step(net(s.scale_model_input(x, t), t), t, x).prev_sample
    scale = max(1.0, x.abs().max().item())
    torch.testing.assert_close(ours, x, rtol=1e-12, atol=1e-12 * scale)


def gaussian_data(process: GaussianDiffusion, m: float, s: float):
    """The exact eps of data N(m, s^2 I): sqrt(1 - a) (x_t - sqrt(a) m) / (a s^2 + 1 - a)."""

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = process.alpha_bar_at(t).double()[:, None, None, None]
        return (1 - a).sqrt() * (x_t - a.sqrt() * m) / (a * s**2 + 1 - a)

    return model


def test_heun_lands_on_the_exact_ode_solution_at_second_order(float64):
    """For data N(m, s^2) the probability-flow ODE keeps (x - m) / sqrt(s^2 + sigma^2) constant
    in sigma space, which gives x at sigma_1 exactly; Heun's last (Euler) step then returns
    D(x; sigma_1) = m + s^2 (x - m) / (s^2 + sigma_1^2). Measured max error over 64 x 16 values:
    3.5e-3 at 80 steps, 8.7e-4 at 160, 2.1e-4 at 320: a quarter per doubling."""
    process = process64(NOTEBOOK)
    m, s = 0.1, 0.4
    x_T = torch.randn(64, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    sigma2 = (1 - process.alpha_bar) / process.alpha_bar
    x = x_T / process.alpha_bar[process.T].sqrt()
    x_1 = m + (x - m) * ((s**2 + sigma2[1]) / (s**2 + sigma2[process.T])).sqrt()
    exact = m + s**2 / (s**2 + sigma2[1]) * (x_1 - m)
    model = gaussian_data(process, m, s)
    error = {n: (sample_heun(model, process, x_T, None, n) - exact).abs().max().item()
             for n in (160, 320, 640)}  # fmt: skip
    assert error[640] < 1e-4
    assert 3.5 < error[160] / error[320] < 4.5 and 3.5 < error[320] / error[640] < 4.5
