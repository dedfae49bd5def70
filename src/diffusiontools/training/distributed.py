"""Data-parallel training on torch.distributed, as started by ``torchrun``.

Every rank holds the whole (small) dataset in memory and draws the same shuffled global batches
and the same noise from the same seeds; each then takes its contiguous slice of the batch
(``shard``). DistributedDataParallel averages the gradients, and with equal slices the average
of the ranks' mean losses is the global batch's mean loss, so N ranks take exactly the optimiser
steps one process would take with the same global batch. Only rank 0 writes files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn

from ..errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job; the defaults describe a plain single-process run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.world:
            raise UserError(
                f"training.batch_size={batch_size} is the global batch and must divide evenly "
                f"over the {self.world} processes; use a multiple of {self.world}"
            )

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global batch (dim 0)."""
        if not self.active:
            return batch
        size = batch.shape[0] // self.world
        return batch[self.rank * size : (self.rank + 1) * size]

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of ``value`` over the ranks (a copy; the identity for one process)."""
        value = value.clone()
        if self.active:
            dist.all_reduce(value)
            value /= self.world
        return value

    def max(self, value: int, device: torch.device) -> int:
        """The largest of the ranks' values, e.g. a signal number seen by any rank."""
        if not self.active:
            return value
        tensor = torch.tensor(value, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return int(tensor)

    def all_succeed(self, step: Callable[[], T], device: torch.device) -> T:
        """``step()`` on this rank; if it raised UserError on any rank, raise on every rank.

        A collective (so also a barrier): no rank goes on to wait at a later collective for a
        rank that has stopped. A failing rank raises its own error, the others say one failed.
        """
        if not self.active:
            return step()
        error, result = None, None
        try:
            result = step()
        except UserError as exc:
            error = exc
        if self.max(int(error is not None), device):
            raise error or UserError(
                "another process of this torchrun job stopped with an error (it prints it)"
            )
        return result

    def device(self, device: torch.device) -> torch.device:
        """One GPU per rank (``cuda:LOCAL_RANK``) when training on CUDA."""
        if self.active and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def wrap(self, net: nn.Module, device: torch.device) -> nn.Module:
        """``net`` inside DistributedDataParallel when several ranks train it."""
        if not self.active:
            return net
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(net, device_ids=ids)


def from_environment(device: torch.device) -> Ranks:
    """Join the job torchrun describes in WORLD_SIZE / RANK / LOCAL_RANK (NCCL on CUDA, gloo on
    CPU); a plain ``python -m diffusiontools`` run is one rank and needs no process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Ranks()
    ranks = Ranks(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(ranks.local_rank)
        dist.init_process_group(backend)
    return ranks


def shutdown(ranks: Ranks) -> None:
    if ranks.active and dist.is_initialized():
        dist.destroy_process_group()
