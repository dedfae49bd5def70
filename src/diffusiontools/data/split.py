"""Deterministic train/validation split and epoch batching by index tensors.

Batches are made by indexing one uint8 tensor with a tensor of indices, never by a per-item
``Dataset``/``DataLoader`` loop: MNIST fits in memory and indexing is orders of magnitude faster.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from ..errors import UserError


def train_val_split(
    n: int, val_fraction: float = 0.2, seed: int = 42
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``range(n)`` into (train, val) int64 index tensors.

    Identical to ``torch.utils.data.random_split(range(n), [n_train, n_val],
    generator=torch.Generator().manual_seed(seed))`` with ``n_val = floor(n * val_fraction)``, so
    splits match runs made with that call (n=60000 gives 48000/12000): one ``randperm`` of ``n``,
    the first ``n_train`` entries are train, the rest validation.
    """
    if n < 1:
        raise UserError(f"cannot split {n} images; need at least 1")
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"val_fraction={val_fraction} is invalid; use a value in [0, 1)")
    n_val = math.floor(n * val_fraction)
    n_train = n - n_val
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[:n_train], perm[n_train:]


def subset_split(
    n: int, subset: int | None, val_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) indices into the first ``subset`` of ``n`` training images (None: all n),
    split by :func:`train_val_split`: the ``data.subset`` / ``data.val_fraction`` /
    ``data.split_seed`` split that training and the cold prior share."""
    used = n if subset is None else min(subset, n)  # as images[:subset]; config keeps subset >= 1
    return train_val_split(used, val_fraction, seed)


def shuffled_batches(
    indices: torch.Tensor, batch_size: int, generator: torch.Generator, drop_last: bool = True
) -> Iterator[torch.Tensor]:
    """Yield one epoch of index batches (each (batch_size,) int64) from a fresh permutation.

    Each index appears at most once per epoch; with ``drop_last`` the final short batch is skipped
    so every step sees the same batch size, as in the reference training loop. ``generator``
    advances, so successive epochs differ yet a seeded run repeats exactly.
    """
    if batch_size < 1:
        raise UserError(f"batch_size={batch_size} is invalid; use a positive integer")
    order = indices[torch.randperm(len(indices), generator=generator)]
    stop = len(order) - len(order) % batch_size if drop_last else len(order)
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]
