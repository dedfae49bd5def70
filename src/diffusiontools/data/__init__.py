"""MNIST in memory: find/verify/load the IDX files, split, batch, and map pixels to model inputs."""

from .idx import read_idx
from .mnist import MnistData, load_mnist
from .pixels import to_model, to_uint8
from .split import shuffled_batches, subset_split, train_val_split

__all__ = [
    "MnistData",
    "load_mnist",
    "read_idx",
    "shuffled_batches",
    "subset_split",
    "to_model",
    "to_uint8",
    "train_val_split",
]
