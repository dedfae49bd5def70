"""Uniform random fields that depend only on a per-image key: a counter-based generator.

Cold diffusion needs D(x0, level, key) to be a pure function, so that sampling can degrade an
estimate x0_hat again with the same random field at every step (Bansal et al. 2022, Alg. 1/2),
and so that each image of a batch gets its own field. A stateful torch.Generator can do neither
vectorised across a batch, and its streams differ between CPU and CUDA.

Instead element n of the field of an image with key k is a hash of (k, n), like Philox or
SplitMix: ``bits = h(h(n) ^ seed(k))`` with ``seed(k) = h(h(k mod 2**32) ^ (k >> 32))`` and
h(x) Chris Wellons' "lowbias32" 32-bit integer finaliser of x + 0x9E3779B9 (a bijection on
32-bit words, so one key never repeats a value within a field). The
arithmetic uses int64 tensors kept below 2**63, so it never overflows and is identical on
every device.
"""

from __future__ import annotations

import torch
from torch import Tensor

_MASK32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9  # 2**32 / golden ratio: keeps the all-zero input away from the fixed point 0


def _mul32(x: Tensor, c: int) -> Tensor:
    """(x * c) mod 2**32 for x in [0, 2**32) and a constant c in [0, 2**32), without overflow.

    Split c = c_low + b * 2**31 with c_low < 2**31, so x * c_low < 2**63 fits in int64, and
    (x * 2**31) mod 2**32 is just x's lowest bit moved to bit 31.
    """
    product = x * (c & 0x7FFFFFFF)
    if c >> 31:
        product = product + ((x & 1) << 31)
    return product & _MASK32


def _hash32(x: Tensor) -> Tensor:
    """lowbias32 (https://nullprogram.com/blog/2018/07/31/) of int64 words in [0, 2**32)."""
    x = (x + _GOLDEN) & _MASK32
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def uniform_fields(key: Tensor, shape: tuple[int, ...]) -> Tensor:
    """One field of uniforms in [0, 1) per key.

    key: (B,) int64, any value. Returns (B, *shape) float32 on key's device; row b depends only
    on key[b] (not on the batch it sits in, nor on the device). Values are multiples of 2**-24,
    so float32 holds them exactly and none rounds up to 1.
    """
    key = key.to(torch.int64)
    seed = _hash32(_hash32(key & _MASK32) ^ ((key >> 32) & _MASK32))  # (B,)
    numel = 1
    for size in shape:
        numel *= size
    counter = _hash32(torch.arange(numel, device=key.device))  # (N,)
    bits = _hash32(counter[None, :] ^ seed[:, None])  # (B, N), 32 random bits each
    return ((bits >> 8).to(torch.float32) * 2.0**-24).reshape(key.shape[0], *shape)
