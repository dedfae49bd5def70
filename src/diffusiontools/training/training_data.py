"""The data a training run sees: the MNIST training images of ``data.*``, split train/validation
and moved to the device once (a batch is then one index into a uint8 tensor)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import Config
from ..data import load_mnist, subset_split
from ..errors import UserError


@dataclass
class TrainingData:
    train: torch.Tensor  # (N, 28, 28) uint8 on the device
    train_labels: torch.Tensor  # (N,) int64 on the device
    val: torch.Tensor
    val_labels: torch.Tensor
    provenance: dict


def load_training_data(config: Config, device: torch.device) -> TrainingData:
    """MNIST training images (optionally the first ``data.subset``), split 80/20 as the report."""
    d = config.data
    mnist = load_mnist(d.dir, d.source)
    images, labels = mnist.train_images, mnist.train_labels
    train_idx, val_idx = subset_split(len(images), d.subset, d.val_fraction, d.split_seed)
    if len(val_idx) == 0:
        raise UserError(
            f"data.subset={config.data.subset} with data.val_fraction="
            f"{config.data.val_fraction} leaves no validation images (of {len(train_idx)}); "
            "raise data.subset or data.val_fraction"
        )
    if config.training.batch_size > len(train_idx):
        raise UserError(
            f"training.batch_size={config.training.batch_size} is larger than the "
            f"{len(train_idx)} training images; lower it or raise data.subset"
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
