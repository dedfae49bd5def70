"""The notebook's schedule and network against closed forms and pinned numbers."""

from __future__ import annotations

import math

import pytest
import torch

from diffusiontools.config import DiffusionConfig
from diffusiontools.diffusion.gaussian import GaussianDiffusion
from diffusiontools.diffusion.process import training_loss
from diffusiontools.diffusion.schedules import alpha_bar_from_beta, cosine_schedule, linear_schedule
from diffusiontools.models.cnn import CNN


def test_notebook_cnn_has_146961_parameters():
    cnn = CNN((16, 32, 32, 16), image_channels=1, image_size=28)  # MNIST's images
    assert sum(p.numel() for p in cnn.parameters()) == 146_961


def test_layernorm_normalises_each_image_not_channels():
    norm = CNN(image_channels=1, image_size=28).blocks[0].net[1]
    assert tuple(norm.normalized_shape) == (28, 28) and norm.weight.shape == (28, 28)


def test_time_encoding_of_zero_is_zero_features():
    emb = CNN(image_channels=1, image_size=28).time_embed
    phases = torch.zeros(1, 16)
    features = torch.cat((torch.sin(phases), torch.cos(phases) - 1), dim=1)
    assert torch.equal(emb.mlp(features), emb(torch.zeros(1)))
    assert emb.frequencies[1].item() == pytest.approx(2 * math.pi)
    assert emb.frequencies[15].item() == pytest.approx(2 * math.pi * 1.5**14, rel=1e-6)


@pytest.mark.parametrize("beta1, beta2, T", [(1e-4, 0.02, 1000), (1e-3, 0.2, 100)])
def test_linear_schedule_closed_form(beta1, beta2, T):
    beta = linear_schedule(beta1, beta2, T).double()
    assert beta.shape == (T + 1,)
    assert beta[0].item() == pytest.approx(beta1) and beta[T].item() == pytest.approx(beta2)
    t = torch.arange(T + 1, dtype=torch.float64)
    assert torch.allclose(beta, beta1 + (beta2 - beta1) * t / T, rtol=1e-6)
    alpha_bar = alpha_bar_from_beta(linear_schedule(beta1, beta2, T)).double()
    expected = torch.cumprod(1 - beta, dim=0)
    assert torch.allclose(alpha_bar, expected, rtol=1e-4)
    assert alpha_bar[T] < 1e-3  # signal essentially gone at T, as the report intends


def test_cosine_schedule_matches_nichol_dhariwal():
    T = 100
    alpha_bar = alpha_bar_from_beta(cosine_schedule(T)).double()
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 10, 50, 90):
        assert alpha_bar[t].item() == pytest.approx(f(t / T) / f(0), rel=1e-4, abs=1e-6)


def test_training_draws_t_from_1_to_T_minus_1_and_regresses_eps():
    process = GaussianDiffusion.from_config(DiffusionConfig(T=10, beta1=1e-3, beta2=0.2))
    seen, captured = set(), {}

    def oracle(x_t, t_unit):
        seen.update((t_unit * 10).round().long().tolist())
        captured["x_t"], captured["t"] = x_t, (t_unit * 10).round().long()
        return torch.zeros_like(x_t)

    x0 = torch.rand(4096, 1, 2, 2) - 0.5
    g = torch.Generator().manual_seed(0)
    loss = training_loss(process, oracle, x0, g)
    assert seen == set(range(1, 10))
    # With a zero prediction the loss is E[eps^2] = 1.
    assert loss.item() == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_prediction_conversions_recover_eps_and_x0(prediction):
    process = GaussianDiffusion.from_config(
        DiffusionConfig(T=50, beta1=1e-3, beta2=0.2, prediction=prediction)
    )
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(8, 1, 28, 28, generator=g) - 0.5
    eps = torch.randn(8, 1, 28, 28, generator=g)
    t = torch.randint(1, 50, (8,), generator=g)
    x_t = process.q_sample(x0, t, eps)
    eps_hat, x0_hat = process.predict_eps_x0(process.target(x0, eps, t), x_t, t)
    assert torch.allclose(eps_hat, eps, atol=1e-3) and torch.allclose(x0_hat, x0, atol=1e-3)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_clip_output_clamps_x0_hat_and_keeps_in_range_predictions(prediction):
    process = GaussianDiffusion.from_config(
        DiffusionConfig(T=50, beta1=1e-3, beta2=0.2, prediction=prediction)
    )
    g = torch.Generator().manual_seed(2)
    x_t = torch.randn(8, 1, 28, 28, generator=g)
    t = torch.randint(1, 50, (8,), generator=g)
    x0_wild = 2 * torch.randn(8, 1, 28, 28, generator=g)  # far outside [-0.5, 0.5]
    output = process.target(
        x0_wild,
        (x_t - process.alpha_bar[t].sqrt().view(-1, 1, 1, 1) * x0_wild)
        / (1 - process.alpha_bar[t]).sqrt().view(-1, 1, 1, 1),
        t,
    )
    _, x0_hat = process.predict_eps_x0(process.clip_output(output, x_t, t), x_t, t)
    assert torch.allclose(x0_hat, x0_wild.clamp(-0.5, 0.5), atol=1e-4)
    inside = process.target(x0_wild.clamp(-0.4, 0.4), torch.zeros_like(x_t), t)
    x_inside = process.q_sample(x0_wild.clamp(-0.4, 0.4), t, torch.zeros_like(x_t))
    assert torch.allclose(process.clip_output(inside, x_inside, t), inside, atol=1e-4)
