"""The image side a config's ``[data]`` section fixes before any file is read.

A rule that depends on the size (a degradation's largest level) is checked when the config is
loaded wherever the section already says the size: ``data.image_size`` resizes every data set
to its side, and without it every image of the MNIST family is 28 px, CIFAR-10's and coloured
MNIST's 32, and scikit-learn's digits 8.
Where only the files can tell (``npz`` or a folder without ``data.image_size``), the rule waits
for the data (``training_data.check_trainable``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import cifar10, coloured_mnist, idx_family

if TYPE_CHECKING:  # an annotation only: the data layer reads the section, it builds none
    from ..config import DataConfig

DIGITS8_SIDE = 8  # scikit-learn's digits are 8x8
FIXED_SIDES = {
    "mnist": idx_family.SIZE,
    "fashion_mnist": idx_family.SIZE,
    "kmnist": idx_family.SIZE,
    "cifar10": cifar10.SIZE,
    "digits8": DIGITS8_SIDE,
    "coloured_mnist": coloured_mnist.SIZE,
}


def declared_side(data: DataConfig) -> int | None:
    """The side S of the S x S images ``data`` loads, where the config alone says it; else None."""
    if data.image_size is not None:
        return data.image_size
    return FIXED_SIDES.get(data.dataset)
