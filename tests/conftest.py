"""Shared fixtures: a tiny config and MNIST from ../shared when present (else the embedded set)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"

torch.set_num_threads(2)


@pytest.fixture(autouse=True, scope="session")
def _mnist_location():
    """Point DIFFUSIONTOOLS_DATA at the shared MNIST copy when the caller has not set it."""
    if "DIFFUSIONTOOLS_DATA" not in os.environ and SHARED_MNIST.is_dir():
        os.environ["DIFFUSIONTOOLS_DATA"] = str(SHARED_MNIST)
    yield


TINY_INI = """
[data]
source = auto
subset = 640

[model]
network = cnn
n_hidden = 8, 8

[diffusion]
kind = gaussian
T = 20
beta1 = 1e-3
beta2 = 0.2

[training]
epochs = 2
batch_size = 64
lr = 1e-3
save_every = 1
val_batches = 2
"""


@pytest.fixture
def tiny_ini(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.ini"
    path.write_text(TINY_INI)
    return path
