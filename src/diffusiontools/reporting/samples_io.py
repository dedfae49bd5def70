"""The NPZ exchange format every command and benchmark reads: ``images`` uint8 (N, 28, 28)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from ..data import to_uint8
from ..errors import UserError


def save_samples(path: Path, images: torch.Tensor, **meta) -> None:
    """Write samples (model range or uint8) and JSON metadata (seed, sampler, epoch, ...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = (images if images.dtype == torch.uint8 else to_uint8(images)).reshape(-1, 28, 28)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, images=array.cpu().numpy(), meta=json.dumps(meta, sort_keys=True))
    os.replace(tmp, path)


def load_samples(path: Path) -> tuple[np.ndarray, dict]:
    """Read ``images`` (N, 28, 28) uint8 and the metadata written by :func:`save_samples`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"samples file {path} does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array
            raise ValueError("it holds one array, not an NPZ archive")
        with loaded as npz:
            images = npz["images"]
            meta = json.loads(str(npz["meta"])) if "meta" in npz else {}
    except (ValueError, KeyError, OSError) as exc:
        raise UserError(f"{path} is not a samples NPZ with an 'images' array: {exc}") from None
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise UserError(
            f"{path}: 'images' must be uint8 (N, 28, 28), got {images.dtype} {images.shape}"
        )
    return images, meta
