"""The data a training run sees: the training images of ``data.*``, split train/validation and
moved to the device once (a batch is then one index into a uint8 tensor)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from ..config import Config, DataConfig
from ..data import ImageDataset, data_record, load_data, subset_split
from ..diffusion import make_process
from ..errors import UserError

_DATA_FIELDS = {f.name: f for f in dataclasses.fields(DataConfig)}
VAL_FRACTION_MAX = _DATA_FIELDS["val_fraction"].metadata["max"]  # the largest allowed


@dataclass
class TrainingData:
    train: torch.Tensor  # (N, C, H, W) uint8 on the device
    train_labels: torch.Tensor | None  # (N,) int64 on the device; None: unlabelled data
    val: torch.Tensor
    val_labels: torch.Tensor | None
    provenance: dict


def load_training_data(
    config: Config, device: torch.device, dataset: ImageDataset | None = None
) -> TrainingData:
    """The training images of ``config.data`` (optionally the first ``data.subset``), split 80/20
    as the report; a data set that no network or process here can train on is refused.
    ``dataset``: the images handed over from Python (``data.dataset = memory``), else None."""
    dataset = load_data(config.data) if dataset is None else dataset
    check_trainable(dataset, config)
    check_classes(dataset, config)
    return split_training_data(dataset, config, device)


def check_trainable(dataset: ImageDataset, config: Config) -> None:
    """Refuse, in one sentence naming ``data.dataset``, a data set that ``config`` cannot train
    on: images that are not square (the networks take S x S). Gray or RGB images of any square
    size, labelled or not, train a Gaussian or a cold process; whether a degradation's levels
    fit the size, the process says (``make_process`` with the data's shape, here, before the
    run's folder changes), and whether the network's levels fit it, the network says
    (``models.unet.check_levels``)."""
    spec, name = dataset.spec, config.data.dataset
    if spec.height != spec.width:
        raise UserError(
            f"data.dataset = {name} gives {spec.height}x{spec.width} images; the networks take "
            "square images only (data.image_size resizes them to a square)"
        )
    make_process(config, spec.shape)


def check_classes(dataset: ImageDataset, config: Config) -> None:
    """Refuse a class-conditional model whose ``model.num_classes`` is not the data set's number
    of classes: fewer cannot embed its labels, more learn classes that have no images; on a data
    set without labels only an unconditional model (0) trains."""
    n, classes = config.model.num_classes, dataset.spec.num_classes
    if n and not classes:
        raise UserError(
            f"model.num_classes = {n} needs class labels, and data.dataset = "
            f"{config.data.dataset} has none: give model.num_classes = 0 (unconditional)"
        )
    if n and n != classes:
        raise UserError(
            f"model.num_classes = {n} does not fit data.dataset = {config.data.dataset}, which "
            f"has {classes} classes: give 0 (unconditional) or {classes}"
        )


def split_training_data(
    dataset: ImageDataset, config: Config, device: torch.device
) -> TrainingData:
    """The training split of ``dataset`` (loaded already, for ``config.data``), on ``device``;
    its provenance is :func:`~diffusiontools.data.data_record` with the split's sizes."""
    d = config.data
    images, labels = dataset.train_images, dataset.train_labels  # (N, C, H, W)
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
        **data_record(dataset),
        "subset": config.data.subset,
        "n_train_split": len(train_idx),
        "n_val_split": len(val_idx),
    }
    return TrainingData(
        images[train_idx].to(device),
        None if labels is None else labels[train_idx].to(device),
        images[val_idx].to(device),
        None if labels is None else labels[val_idx].to(device),
        provenance,
    )
