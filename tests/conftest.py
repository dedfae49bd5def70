"""Shared fixtures. The suite is hermetic: what a test sees is data the suite writes itself.

Set here at import, before any test module is collected, so every test and every subprocess it
starts inherits it:

- ``$DIFFUSIONTOOLS_DATA`` names a folder of the four MNIST IDX files (uncompressed, so no
  published md5 applies) that the suite writes from the embedded subset: 4,000 training and 1,000
  test images. ``data.source = auto`` and ``mnist`` find it; ``embedded`` reads the same images.
- ``$XDG_CACHE_HOME`` is a fresh empty folder: the user cache (``~/.cache``) is never read.
- ``$DIFFUSIONTOOLS_OFFLINE`` forbids downloads: no test touches the network.

The caller's ``DIFFUSIONTOOLS_DATA``, ``~/.cache`` and any folder outside the clone are never read.
The few tests that need the real 60,000-image MNIST (published checksums, class counts, values
measured on it) take its folder from ``$DIFFUSIONTOOLS_TEST_MNIST`` through the ``real_mnist``
fixture, carry the ``real_mnist`` marker (``pytest -m real_mnist`` runs just them) and skip,
saying so, where it is not set.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusiontools.config import DataConfig
from diffusiontools.data import idx_family, load_data, mnist
from diffusiontools.data.embedded import embedded_mnist

REAL_MNIST_VAR = "DIFFUSIONTOOLS_TEST_MNIST"

# Two threads, as CI's 2 cores, unless the caller chose: OMP_NUM_THREADS=1 runs the suite on one.
if "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(min(2, os.cpu_count() or 1))


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic 0x0000080<ndim>, big-endian sizes, payload."""
    header = struct.pack(">I", 0x800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_folder(folder: Path, arrays: list[np.ndarray]) -> Path:
    """Write train images, train labels, test images, test labels as the four raw IDX files."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in zip(idx_family.STEMS.values(), arrays, strict=True):
        (folder / stem).write_bytes(idx_bytes(array))
    return folder


def _hermetic_environment() -> Path:
    """The suite's own data folder and empty cache, in a temporary folder removed at exit."""
    root = Path(tempfile.mkdtemp(prefix="diffusiontools-tests-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    train_images, train_labels, test_images, test_labels, _ = embedded_mnist()
    data = write_idx_folder(root / "mnist", [train_images, train_labels, test_images, test_labels])
    os.environ[mnist.ENV_VAR] = str(data)
    os.environ["XDG_CACHE_HOME"] = str(root / "cache")
    os.environ[mnist.OFFLINE_VAR] = "1"
    return data


SUITE_MNIST = _hermetic_environment()


def _load_suite_mnist_once() -> None:
    """The suite's MNIST is the embedded subset written as uncompressed IDX files, which no
    published checksum vouches for, and ``load_data`` warns of such files once per process: load
    them here, quietly, so that no test's captured output depends on which test came first."""
    logger = logging.getLogger("diffusiontools.data.load")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        load_data(DataConfig())
    finally:
        logger.setLevel(level)


_load_suite_mnist_once()


@pytest.fixture
def real_mnist() -> Path:
    """The real MNIST folder from ``$DIFFUSIONTOOLS_TEST_MNIST``; skips where it is not set."""
    folder = os.environ.get(REAL_MNIST_VAR)
    if not folder:
        pytest.skip(f"needs the real 60,000-image MNIST: set {REAL_MNIST_VAR} to its folder")
    if mnist.find_files(Path(folder)) is None:  # else load_mnist would look elsewhere: ours
        pytest.fail(f"{REAL_MNIST_VAR}={folder} does not hold the four MNIST IDX files")
    return Path(folder)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that takes ``real_mnist`` carries the marker, so ``-m real_mnist`` selects it."""
    for item in items:
        if "real_mnist" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.real_mnist)


@pytest.fixture
def float64():
    """torch's default dtype float64 for the test: our randn draws in it, diffusers' in the
    sample's, so float64 oracles compare the same noise."""
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(dtype)


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
