"""Choose the device once, from the config, and pass it explicitly everywhere else."""

from __future__ import annotations

import torch

from .errors import UserError


def resolve_device(name: str = "auto", key: str = "device") -> torch.device:
    """``auto`` means CUDA when present, else CPU; an unavailable device is a one-line error
    naming ``key``, the argument or config key the name came from (``training.device``)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"{key}={name!r} is not a device: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{key}={name!r} but CUDA is not available here; use auto or cpu")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"{key}={name!r} is not supported: use auto, cpu, cuda or cuda:N")
    return device
