"""The data a training run sees: the MNIST training images of ``data.*``, split train/validation
and moved to the device once (a batch is then one index into a uint8 tensor)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from ..config import Config, DataConfig
from ..data import MnistData, load_mnist, subset_split
from ..errors import UserError

_DATA_FIELDS = {f.name: f for f in dataclasses.fields(DataConfig)}
VAL_FRACTION_MAX = _DATA_FIELDS["val_fraction"].metadata["max"]  # the largest allowed


@dataclass
class TrainingData:
    train: torch.Tensor  # (N, 28, 28) uint8 on the device
    train_labels: torch.Tensor  # (N,) int64 on the device
    val: torch.Tensor
    val_labels: torch.Tensor
    provenance: dict


def load_training_data(config: Config, device: torch.device) -> TrainingData:
    """MNIST training images (optionally the first ``data.subset``), split 80/20 as the report."""
    return split_training_data(load_mnist(config.data.dir, config.data.source), config, device)


def split_training_data(mnist: MnistData, config: Config, device: torch.device) -> TrainingData:
    """The training split of ``mnist`` (loaded already, for ``config.data``), on ``device``."""
    d = config.data
    images, labels = mnist.train_images, mnist.train_labels
    train_idx, val_idx = subset_split(len(images), d.subset, d.val_fraction, d.split_seed)
    # Advise only what can help: a larger data.subset while it leaves images out, a larger
    # data.val_fraction while its maximum would hold out an image.
    more_images = d.subset is not None and d.subset < len(images)
    if len(val_idx) == 0:
        used = len(train_idx)
        helps = ["data.subset"] if more_images else []
        if math.floor(used * VAL_FRACTION_MAX) >= 1:
            helps.append("data.val_fraction")
        raise UserError(
            f"data.subset={d.subset} with data.val_fraction={d.val_fraction} leaves no "
            f"validation images (of {used}); raise {' or '.join(helps)}"
        )
    if config.training.batch_size > len(train_idx):
        or_subset = " or raise data.subset" if more_images else ""
        raise UserError(
            f"training.batch_size={config.training.batch_size} is larger than the "
            f"{len(train_idx)} training images; give at most {len(train_idx)}{or_subset}"
        )
    provenance = {
        **mnist.provenance,
        "subset": config.data.subset,
        "n_train_split": len(train_idx),
        "n_val_split": len(val_idx),
    }
    return TrainingData(
        images[train_idx].to(device),
        labels[train_idx].to(device),
        images[val_idx].to(device),
        labels[val_idx].to(device),
        provenance,
    )
