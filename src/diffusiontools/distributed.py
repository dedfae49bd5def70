"""Multi-process data parallel on ``torch.distributed``, as launched by ``torchrun``.

Each rank holds the (small) data set in memory, walks the same global batch order and takes its
slice of every global batch; the randomness of a batch (t, noise, keys) is drawn for the whole
global batch and sliced the same way. DDP averages the gradients, so k steps on N ranks give the
weights of k steps of one process with the same global batch, up to float summation order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .device import resolve_device
from .errors import UserError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes checkpoints, logs and figures."""
        return self.rank == 0

    def shard(self, global_batch: int) -> slice:
        """This rank's slice of a global batch."""
        per_rank = global_batch // self.world_size
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)


def setup(device_name: str) -> tuple[DistContext, torch.device]:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1), and pick the device.

    NCCL with one GPU per rank (cuda:LOCAL_RANK) when CUDA is used, gloo on CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistContext(), resolve_device(device_name)
    ctx = DistContext(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return ctx, device


def check_batch(global_batch: int, ctx: DistContext) -> None:
    if global_batch % ctx.world_size:
        raise UserError(
            f"training.batch_size={global_batch} does not split evenly over {ctx.world_size} "
            "processes; use a multiple of the process count"
        )


def wrap(net: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """DDP-wrap ``net`` for training steps when distributed; the bare module otherwise."""
    if not ctx.enabled:
        return net
    return DistributedDataParallel(
        net, device_ids=[device.index] if device.type == "cuda" else None
    )


def mean_over_ranks(value: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The mean of a tensor across ranks (identity for one process)."""
    if not ctx.enabled:
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / ctx.world_size


def any_rank(flag: bool, ctx: DistContext, device: torch.device) -> bool:
    """True on every rank if ``flag`` is true on any: all ranks stop at the same step."""
    if not ctx.enabled:
        return flag
    value = torch.tensor(float(flag), device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value)


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def teardown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
