"""A trained model loaded back from a run folder: its config, network and forward process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import checkpoint as ckpt_io
from .config import Config, config_from_dict
from .networks import make_network
from .processes import make_process


@dataclass
class TrainedModel:
    config: Config
    net: nn.Module
    process: object
    epoch: int  # the last finished epoch whose weights these are (0-based, like the report)
    path: Path


def load_trained(
    run_dir: Path, epoch: int | None, device: torch.device, use_ema: bool = True
) -> TrainedModel:
    """Load the checkpoint of ``epoch`` (None: latest); EMA weights when the run kept them."""
    path = ckpt_io.checkpoint_for(Path(run_dir), epoch)
    ckpt = ckpt_io.load_checkpoint(path, map_location=device)
    config = config_from_dict(ckpt["config"])
    net = make_network(config.model).to(device)
    weights = ckpt["ema"] if use_ema and ckpt.get("ema") is not None else ckpt["model"]
    ckpt_io.load_weights(net, weights, path)
    net.eval()
    finished = ckpt["epoch"] - 1 if ckpt["batch"] == 0 else ckpt["epoch"]
    return TrainedModel(config, net, make_process(config).to(device), finished, path)
