"""Sigma space for our discrete process (``sampling/karras.py``, ``GaussianDiffusion``'s real
times): EDM's grid and the sigma -> t mapping against diffusers' own code for them, and the
real-time alpha_bar that inverts the mapping while leaving the integer times as they were."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from diffusiontools.config import Config, DiffusionConfig, ModelConfig, SamplingConfig
from diffusiontools.diffusion.gaussian import GaussianDiffusion
from diffusiontools.diffusion.schedules import alpha_bar_from_beta
from diffusiontools.sampling.generation import generate
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


class Labelled(torch.nn.Module):
    """A conditional stand-in whose x0 prediction overshoots the pixel range by far."""

    def forward(self, x, t, y=None):
        out = 3 * torch.tanh(x) + t[:, None, None, None]
        return out if y is None else out + (y[:, None, None, None] - 4.5) / 2


@pytest.mark.parametrize("sampler", ["euler_ancestral", "heun"])
def test_guidance_and_clip_x0_act_on_the_sigma_space_samplers_as_on_every_gaussian_one(sampler):
    config = Config(
        model=ModelConfig(num_classes=10),
        diffusion=dataclasses.replace(SHORT, prediction="x0"),
        sampling=SamplingConfig(sampler=sampler, steps=6),
    )
    process = GaussianDiffusion.from_config(config.diffusion)
    cpu = torch.device("cpu")

    def draw(**sampling) -> torch.Tensor:
        c = dataclasses.replace(config, sampling=dataclasses.replace(config.sampling, **sampling))
        return generate(Labelled(), process, c, 4, 0, cpu, shape=(1, 28, 28))

    plain, clipped = draw(), draw(clip_x0=True)
    # The last step returns x0_hat, as x + (0 - sigma) (x - x0_hat) / sigma: to float rounding.
    assert plain.abs().max() > 1 and clipped.abs().max() <= 0.5 + 1e-6
    assert not torch.equal(draw(guidance=3.0), plain)
    # guidance 0 samples the unconditional model: the labels drop out
    unconditional = dataclasses.replace(config, model=ModelConfig(num_classes=0))
    assert torch.equal(
        draw(guidance=0.0),
        generate(Labelled(), process, unconditional, 4, 0, cpu, shape=(1, 28, 28)),
    )
