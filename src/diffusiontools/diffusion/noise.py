"""Seeded randomness for a batch of samples: one ``torch.Generator``, or one generator per sample.

Samplers and start states draw through :func:`randn`, :func:`randint` and :func:`choice`. Given one
generator, the batch's numbers come from it in sequence (training, and the unit tests of a single
sampler). Given a list, row b comes from generator b, so a sample's randomness does not depend on
which other samples share its batch. ``sampling.generate`` seeds one generator per sample index
with :func:`sample_generators`, which makes sample i a function of the seed and i alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

Generators = torch.Generator | Sequence[torch.Generator]


def sample_generators(seed: int, first: int, n: int, device: torch.device) -> list[torch.Generator]:
    """Generators of samples first..first+n-1, each seeded from (seed, its index) alone."""
    return [
        torch.Generator(device).manual_seed(_derived_seed(seed, i)) for i in range(first, first + n)
    ]


def _derived_seed(seed: int, index: int) -> int:
    # A hash, not seed * K + index: no two (seed, index) pairs share a stream by coincidence.
    digest = hashlib.sha256(f"{seed}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def randn(shape: Sequence[int], generator: Generators, device: torch.device) -> torch.Tensor:
    """N(0, I) of ``shape`` (B, ...); with one generator per sample, row b from generator b."""
    if isinstance(generator, torch.Generator):
        return torch.randn(tuple(shape), device=device, generator=generator)
    _check_rows(shape[0], generator)
    return torch.stack(
        [torch.randn(tuple(shape[1:]), device=device, generator=g) for g in generator]
    )


def randint(high: int, n: int, generator: Generators, device: torch.device) -> torch.Tensor:
    """(n,) int64 uniform on [0, high). With one generator per sample, n is the batch size (one
    number each) or 1 (one number for the whole batch, from its first sample's generator)."""
    if isinstance(generator, torch.Generator):
        return torch.randint(0, high, (n,), device=device, generator=generator)
    if n != 1:
        _check_rows(n, generator)
    return torch.cat(
        [torch.randint(0, high, (1,), device=device, generator=g) for g in generator[:n]]
    )


def choice(weights: torch.Tensor, n: int, generator: Generators) -> torch.Tensor:
    """(n,) indices drawn with replacement from the categorical ``weights`` (K,)."""
    if isinstance(generator, torch.Generator):
        return torch.multinomial(weights, n, replacement=True, generator=generator)
    _check_rows(n, generator)
    return torch.cat([torch.multinomial(weights, 1, generator=g) for g in generator])


def _check_rows(rows: int, generators: Sequence[torch.Generator]) -> None:
    if rows != len(generators):
        raise ValueError(f"{len(generators)} per-sample generators for a batch of {rows}")
