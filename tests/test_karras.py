"""Sigma space for our discrete process (``sampling/karras.py``, ``GaussianDiffusion``'s real
times): EDM's grid and the sigma -> t mapping against diffusers' own code for them, and the
real-time alpha_bar that inverts the mapping while leaving the integer times as they were."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffusiontools.config import DiffusionConfig
from diffusiontools.diffusion.gaussian import GaussianDiffusion
from diffusiontools.diffusion.schedules import alpha_bar_from_beta
from diffusiontools.sampling.karras import karras_sigmas, sigma_at

NOTEBOOK = DiffusionConfig(T=1000, beta1=1e-4, beta2=0.02)
SHORT = DiffusionConfig(T=100, beta1=1e-3, beta2=0.2)
COSINE = DiffusionConfig(T=1000, schedule="cosine")  # alpha_bar_0 = 1: sigma_0 = 0
CONFIGS = pytest.mark.parametrize(
    "config", [NOTEBOOK, SHORT, COSINE], ids=["notebook", "short", "cosine"]
)


def process64(config: DiffusionConfig) -> GaussianDiffusion:
    beta = GaussianDiffusion.from_config(config).beta.double()
    return GaussianDiffusion(beta, alpha_bar_from_beta(beta))


@CONFIGS
def test_integer_times_read_the_table_and_real_times_invert_sigma_to_t(config):
    process = GaussianDiffusion.from_config(config)
    t = torch.arange(0, process.T + 1)
    assert torch.equal(process.alpha_bar_at(t), process.alpha_bar)  # the samplers' old path
    process = process64(config)
    for sigma in karras_sigmas(process, 37)[:-1]:
        t = process.sigma_to_t(sigma)
        assert 1 <= t <= process.T
        a = process.alpha_bar_at(torch.tensor([t], dtype=torch.float64)).item()
        assert math.sqrt((1 - a) / a) == pytest.approx(sigma, rel=1e-12)
    # The ends of the grid are the schedule's own times T and 1.
    assert process.sigma_to_t(sigma_at(process, process.T)) == process.T
    assert process.sigma_to_t(sigma_at(process, 1)) == pytest.approx(1, abs=1e-12)


@CONFIGS
@pytest.mark.parametrize("steps", [1, 10, 37])
def test_grid_and_times_are_diffusers_own(config, steps):
    """EDM eq. 5 as diffusers computes it (``_convert_to_karras``) from sigma_T to sigma_1, and
    each sigma's time as its ``_sigma_to_t`` interpolates it, on the same betas in float64."""
    diffusers = pytest.importorskip("diffusers")
    process = process64(config)
    s = diffusers.HeunDiscreteScheduler(
        num_train_timesteps=process.T + 1, trained_betas=process.beta.float().numpy()
    )
    ours = karras_sigmas(process, steps)
    assert len(ours) == steps + 1 and ours[-1] == 0
    ends = np.array([sigma_at(process, process.T), sigma_at(process, 1)])
    theirs = s._convert_to_karras(in_sigmas=ends, num_inference_steps=steps)
    np.testing.assert_allclose(ours[:-1], theirs, rtol=1e-13)
    a = process.alpha_bar.numpy()
    with np.errstate(divide="ignore", invalid="ignore"):  # the cosine schedule's sigma_0 = 0
        log_sigmas = np.log(np.sqrt((1 - a) / a))
        times = [float(s._sigma_to_t(np.array(sigma), log_sigmas)) for sigma in ours[:-1]]
    for sigma, t in zip(ours[:-1], times, strict=True):
        if math.isnan(t):  # diffusers interpolates from ln sigma_0 = -inf there; ours from t = 1
            assert config is COSINE and sigma == ours[-2] and process.sigma_to_t(sigma) == 1
            continue
        assert process.sigma_to_t(sigma) == pytest.approx(t, abs=1e-9)
