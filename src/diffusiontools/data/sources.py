"""One entry point from a data set's name to an ``ImageDataset``: the seam for ``[data] dataset``.

``SOURCES`` maps each name to its loader; :func:`load_dataset` checks the options against the
loader's signature, so a misspelt option is refused in one sentence instead of ignored.
"""

from __future__ import annotations

import inspect
from functools import partial
from typing import Any

from ..errors import UserError
from .bundled import load_digits8, load_mnist_embedded
from .cifar10 import load_cifar10
from .coloured_mnist import load_coloured_mnist
from .dataset import ImageDataset
from .folder import load_folder
from .idx_family import load_idx_dataset
from .memory import load_memory
from .npz import load_npz

SOURCES = {
    "mnist": partial(load_idx_dataset, "mnist"),
    "fashion_mnist": partial(load_idx_dataset, "fashion_mnist"),
    "kmnist": partial(load_idx_dataset, "kmnist"),
    "cifar10": load_cifar10,
    "folder": load_folder,
    "npz": load_npz,
    "memory": load_memory,
    "mnist_embedded": load_mnist_embedded,
    "digits8": load_digits8,
    "coloured_mnist": load_coloured_mnist,
}


def load_dataset(name: str, **options: Any) -> ImageDataset:
    """Load data set ``name`` (a key of ``SOURCES``) with the options its loader takes.

    ``load_dataset("folder", data_dir="~/faces", channels=3, image_size=32)``,
    ``load_dataset("memory", images=x, labels=y)``, ``load_dataset("digits8")``. Raises
    ``UserError`` for an unknown name, an option the loader does not take or one it needs.
    """
    if name not in SOURCES:
        raise UserError(f"data set {name!r} is unknown; use one of {', '.join(SOURCES)}")
    parameters = inspect.signature(SOURCES[name]).parameters
    unknown = sorted(set(options) - set(parameters))
    if unknown:
        raise UserError(
            f"data set {name!r} takes no option {unknown[0]!r}; its options are "
            f"{', '.join(parameters) or 'none'}"
        )
    needed = [key for key, p in parameters.items() if p.default is p.empty and key not in options]
    if needed:
        raise UserError(f"data set {name!r} needs option {needed[0]!r}")
    return SOURCES[name](**options)
