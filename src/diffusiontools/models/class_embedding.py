"""A learned class embedding with a "no label" entry, for classifier-free guidance."""

from __future__ import annotations

import torch
from torch import nn


class ClassEmbedding(nn.Module):
    """y (B,) in 0..num_classes-1, or None for unconditional -> (B, out_features).

    Index ``num_classes`` is the null label: training drops labels to it at random so that one
    network learns both the conditional and the unconditional model.
    """

    def __init__(self, num_classes: int, out_features: int):
        super().__init__()
        self.num_classes = num_classes
        self.table = nn.Embedding(num_classes + 1, out_features)

    def forward(self, y: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        if y is None:
            y = torch.full((batch,), self.num_classes, dtype=torch.long, device=device)
        return self.table(y)
