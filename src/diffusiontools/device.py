"""Choose the device once, from the config, and pass it explicitly everywhere else."""

from __future__ import annotations

import os
import platform
from pathlib import Path

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


def describe_machine(device: torch.device) -> str:
    """One line naming the hardware a measurement ran on: the CPU model, its cores and torch's
    threads, and the GPU where ``device`` is CUDA; with torch's version."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    threads = torch.get_num_threads()
    parts = [f"{cpu}, {os.cpu_count()} cores, {threads} torch thread{'s' * (threads != 1)}"]
    if device.type == "cuda":
        parts.append(f"{torch.cuda.get_device_name(device)} ({device})")
    return "; ".join([*parts, f"torch {torch.__version__}"])
