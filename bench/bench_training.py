"""Benchmark: training throughput of our faithful step against the starter notebook's loop.

Run as ``python bench/bench_training.py [--steps 30] [--threads N]``. Everything is measured
side by side in one run, on one machine, so only the ratios are meaningful:

- notebook: a plain re-creation of the starter notebook's loop — a ``Dataset`` that converts each
  image with a per-item transform (``ToTensor`` + ``Normalize((0.5,), (1.0,))``, written out here
  because torchvision is not a dependency), a ``DataLoader`` (batch 128, shuffle, 4 workers,
  drop_last) and the DDPM forward + Adam step;
- ours: one index into the in-memory uint8 tensor per batch, then the same maths (same network,
  same schedule, same loss, same optimiser), optionally with channels_last;
- the machine's fp32 matmul rate, and each loop's share of it given the network's FLOPs per image
  (counted by ``torch.utils.flop_counter``; training = forward + backward).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from diffusiontools.config import Config, DiffusionConfig
from diffusiontools.data import load_mnist, shuffled_batches, to_model
from diffusiontools.diffusion.gaussian import GaussianDiffusion
from diffusiontools.models import make_network

BATCH = 128


class NotebookMNIST(Dataset):
    """MNIST with the notebook's per-item transform: uint8 (28, 28) -> float (1, 28, 28) - 0.5."""

    def __init__(self, images: torch.Tensor):
        self.images = images.numpy()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        x = torch.from_numpy(self.images[i]).float().div(255).unsqueeze(0)  # ToTensor
        return (x - 0.5) / 1.0  # Normalize((0.5,), (1.0,))


def _step_fn(channels_last: bool = False):
    torch.manual_seed(0)
    net = make_network(Config().model)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    process = GaussianDiffusion.from_config(DiffusionConfig())
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-4)
    generator = torch.Generator().manual_seed(0)

    def step(x0: torch.Tensor) -> None:
        if channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        loss = process.training_loss(net, x0, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _images_per_s(batches, step, steps: int, warmup: int = 3) -> float:
    it = iter(batches)
    for x0 in itertools.islice(it, warmup):
        step(x0)
    start = time.perf_counter()
    for x0 in itertools.islice(it, steps):
        step(x0)
    return steps * BATCH / (time.perf_counter() - start)


def notebook_loop(images: torch.Tensor, steps: int) -> float:
    loader = DataLoader(
        NotebookMNIST(images),
        batch_size=BATCH,
        shuffle=True,
        num_workers=4,
        drop_last=True,
        persistent_workers=False,
    )
    return _images_per_s(loader, _step_fn(), steps)


def our_loop(images: torch.Tensor, steps: int, channels_last: bool = False) -> float:
    generator = torch.Generator().manual_seed(0)
    batches = (
        to_model(images[idx])
        for idx in shuffled_batches(torch.arange(len(images)), BATCH, generator)
    )
    return _images_per_s(batches, _step_fn(channels_last), steps)


def training_flops_per_image() -> float:
    net = make_network(Config().model)
    x, t = torch.zeros(BATCH, 1, 28, 28), torch.rand(BATCH)
    with FlopCounterMode(display=False) as counter:
        net(x, t).square().mean().backward()
    return counter.get_total_flops() / BATCH


def matmul_gflops(n: int = 1024, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed optimiser steps per loop")
    parser.add_argument("--repeats", type=int, default=3, help="alternating repeats (median)")
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="torch threads"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    images = load_mnist(None, "auto").train_images
    results: dict[str, list[float]] = {"notebook": [], "ours": [], "ours+channels_last": []}
    for _ in range(args.repeats):  # alternate so that machine noise hits every variant alike
        results["notebook"].append(notebook_loop(images, args.steps))
        results["ours"].append(our_loop(images, args.steps))
        results["ours+channels_last"].append(our_loop(images, args.steps, channels_last=True))
    flops = training_flops_per_image()
    peak = matmul_gflops()
    base = statistics.median(results["notebook"])
    print(
        f"training, faithful CNN (16,32,32,16), batch {BATCH}, {args.threads} threads, "
        f"{args.steps} steps x {args.repeats} repeats (median):"
    )
    print(
        f"  machine fp32 matmul: {peak:.1f} GFLOP/s; "
        f"network: {flops / 1e6:.1f} MFLOP per image (fwd+bwd)"
    )
    for name, values in results.items():
        rate = statistics.median(values)
        share = rate * flops / 1e9 / peak
        print(
            f"  {name:20s} {rate:7.1f} img/s  {rate / base:5.2f}x notebook  "
            f"{share:6.1%} of matmul peak"
        )


if __name__ == "__main__":
    main()
