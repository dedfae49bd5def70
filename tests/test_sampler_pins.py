"""Pinned samples: a weighted sum of ``generate``'s output for every sampler and its options, on
a fixed stand-in network, so that a change to the sampling plumbing (the registry, the plan,
generation) that changes a single sample is seen. The values were computed before issue 22's
"one sampler plan" refactor and must survive it; on another machine or torch version float
rounding may move them, hence rel = 1e-6 (float32 samples summed in float64), with one thread.

The stand-in network is a fixed function, not a trained one: eps_hat = 0.3 tanh(conv3x3(x)) (1 +
t) plus a label term, so every sampler's arithmetic, guidance and clipping act on it.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from tiny_runs import single_thread  # noqa: F401 (autouse fixture: one thread)
from torch import nn

from diffusiontools.config import Config, DiffusionConfig, ModelConfig, SamplingConfig
from diffusiontools.diffusion import make_process
from diffusiontools.sampling.generation import generate

CPU = torch.device("cpu")
GAUSSIAN = DiffusionConfig(T=20, beta1=1e-3, beta2=0.2)
V_PRED = dataclasses.replace(GAUSSIAN, prediction="v")
X0_PRED = dataclasses.replace(GAUSSIAN, prediction="x0")
COLD = DiffusionConfig(kind="cold", T=6)


class StandIn(nn.Module):
    """net(x (B,1,28,28), t (B,) in [0, 1], y (B,) or None) -> (B,1,28,28), no parameters."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(7)
        self.register_buffer("kernel", torch.randn(1, 1, 3, 3, generator=g) / 3)
        self.register_buffer("label_map", torch.randn(10, 1, 28, 28, generator=g) / 10)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
        out = 0.3 * torch.tanh(nn.functional.conv2d(x, self.kernel, padding=1))
        out = out * (1 + t)[:, None, None, None]
        if y is not None:
            out = out + self.label_map[y]
        return out


def weighted_sum(x: torch.Tensor) -> float:
    w = torch.linspace(-1, 2, x.numel(), dtype=torch.float64).reshape(x.shape)
    return (x.double() * w).sum().item()


def draw(diffusion: DiffusionConfig, sampling: dict, sampler=None, steps=None, digit=None, **model):
    config = Config(
        diffusion=diffusion, model=ModelConfig(**model), sampling=SamplingConfig(**sampling)
    )
    x = generate(
        StandIn(),
        make_process(config),
        config,
        3,
        11,
        CPU,
        sampler,
        steps,
        digit,
        shape=(1, 28, 28),
    )
    return weighted_sum(x)


# (name, diffusion, [sampling] keys, sampler, steps, digit, [model] keys) -> pinned value
CASES = [
    ("ancestral all T", GAUSSIAN, {}, None, None, None, {}),
    ("ancestral respaced 5", GAUSSIAN, {}, None, 5, None, {}),
    ("ddim 5", GAUSSIAN, {"sampler": "ddim", "steps": 5}, None, None, None, {}),
    ("ddim 5 eta 1", GAUSSIAN, {"sampler": "ddim", "steps": 5, "eta": 1.0}, None, None, None, {}),
    (
        "ddim 5 trailing",
        GAUSSIAN,
        {"sampler": "ddim", "steps": 5, "timestep_spacing": "trailing"},
        None,
        None,
        None,
        {},
    ),
    ("ddim 7 clip", GAUSSIAN, {"sampler": "ddim", "clip_x0": True}, None, 7, None, {}),
    ("dpm_solver default", GAUSSIAN, {"sampler": "dpm_solver"}, None, None, None, {}),
    (
        "dpm_solver 6 leading",
        GAUSSIAN,
        {"sampler": "dpm_solver", "steps": 6, "timestep_spacing": "leading"},
        None,
        None,
        None,
        {},
    ),
    ("dpm_solver picked", GAUSSIAN, {}, "dpm_solver", 4, None, {}),
    ("ancestral guided", GAUSSIAN, {"guidance": 2.0}, None, 5, None, {"num_classes": 10}),
    ("ddim digit 3", GAUSSIAN, {"sampler": "ddim"}, None, 5, 3, {"num_classes": 10}),
    ("v prediction ddim", V_PRED, {}, "ddim", 4, None, {}),
    ("x0 prediction dpm", X0_PRED, {}, "dpm_solver", 4, None, {}),
    ("cold naive", COLD, {}, None, None, None, {}),
    ("cold naive 3", COLD, {}, None, 3, None, {}),
    ("cold improved", COLD, {"sampler": "improved"}, None, None, None, {}),
    ("cold improved 4", COLD, {}, "improved", 4, None, {}),
]  # fmt: skip

PINNED = {
    "ancestral all T": 5.060030398903159,
    "ancestral respaced 5": 44.00144433964539,
    "ddim 5": 101.28553543457566,
    "ddim 5 eta 1": 53.57969268533497,
    "ddim 5 trailing": 98.0300997298221,
    "ddim 7 clip": 9.83881753235324,
    "dpm_solver default": 101.03243779988574,
    "dpm_solver 6 leading": 83.78526586846777,
    "dpm_solver picked": 100.33229770855931,
    "ancestral guided": 66.52781793753144,
    "ddim digit 3": 83.2280446731447,
    "v prediction ddim": 25.66784069933329,
    "x0 prediction dpm": 1.3172625728055483,
    "cold naive": -0.775542807124248,
    "cold naive 3": -19.104015140957536,
    "cold improved": -398.30996094944186,
    "cold improved 4": -397.91484662777617,
}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_samples_are_pinned(case):
    name, diffusion, sampling, sampler, steps, digit, model = case
    value = draw(diffusion, sampling, sampler, steps, digit, **model)
    assert value == pytest.approx(PINNED[name], rel=1e-6)
