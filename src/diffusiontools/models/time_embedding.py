"""Sinusoidal encoding of the diffusion time t in [0, 1], as in the course's starter notebook."""

from __future__ import annotations

import math

import torch
from torch import nn


class TimeEmbedding(nn.Module):
    """t (B,) in [0, 1] -> (B, out_features): 16 fixed frequencies, then a 4-layer GELU MLP.

    Frequencies are ``[0] + [2*pi*1.5**i for i in range(15)]`` and the features
    ``[sin(t f), cos(t f) - 1]``; the ``- 1`` makes the encoding of t = 0 all zeros.
    """

    def __init__(self, out_features: int, n_frequencies: int = 16, width: int = 128):
        super().__init__()
        frequencies = torch.tensor([0.0] + [2 * math.pi * 1.5**i for i in range(n_frequencies - 1)])
        self.register_buffer("frequencies", frequencies)
        self.mlp = nn.Sequential(
            nn.Linear(2 * n_frequencies, width),
            nn.GELU(),
            nn.Linear(width, width),
            nn.GELU(),
            nn.Linear(width, width),
            nn.GELU(),
            nn.Linear(width, out_features),
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        phases = t[:, None] * self.frequencies[None, :]  # (B, F)
        features = torch.cat((torch.sin(phases), torch.cos(phases) - 1), dim=1)  # (B, 2F)
        return self.mlp(features)
