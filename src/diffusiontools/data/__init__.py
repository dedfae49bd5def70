"""Image data sets in memory: one seam (``load_data``) from a config's ``[data]`` section to an
``ImageDataset``; find/verify/load the files, split, batch, and map pixels to model inputs."""

from .dataset import DatasetSpec, ImageDataset, Provenance
from .idx import read_idx
from .load import UNRECORDED_SHAPE, data_record, load_data, recorded_shape
from .mnist import MnistData, load_mnist
from .pixels import to_model, to_uint8
from .sources import load_dataset
from .split import shuffled_batches, subset_split, train_val_split

__all__ = [
    "UNRECORDED_SHAPE",
    "DatasetSpec",
    "ImageDataset",
    "MnistData",
    "Provenance",
    "data_record",
    "load_data",
    "load_dataset",
    "load_mnist",
    "read_idx",
    "recorded_shape",
    "shuffled_batches",
    "subset_split",
    "to_model",
    "to_uint8",
    "train_val_split",
]
