"""Benchmark: a training step of our UNet against diffusers' UNet2DModel (``unet2d_diffusers``).

Run as ``python -m bench.bench_networks [--steps 20] [--repeats 3] [--base 16,32]``. Both
networks get the same widths (``base_channels`` x ``channel_mults`` = (1, 2, 2), resolutions
28 -> 14 -> 7), ten classes (the quickstart's conditioning), the same Gaussian process (T =
1000, eps), batch 128 of real MNIST images, Adam. The variants alternate inside each repeat so
that machine noise hits both alike; the median is printed, with each network's parameters and
FLOPs per image (forward + backward, ``torch.utils.flop_counter``). Needs the diffusers extra.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from diffusiontools.config import DiffusionConfig, ModelConfig
from diffusiontools.data import load_mnist, shuffled_batches, to_model
from diffusiontools.diffusion.gaussian import GaussianDiffusion
from diffusiontools.diffusion.process import training_loss
from diffusiontools.models import make_network

BATCH = 128
T = 1000
NETWORKS = ("unet", "unet2d_diffusers")


def _network(name: str, base: int) -> torch.nn.Module:
    config = ModelConfig(network=name, base_channels=base, channel_mults=(1, 2, 2), num_classes=10)
    return make_network(config, seed=0, T=T, shape=(1, 28, 28))


def seconds_per_step(name: str, base: int, images: torch.Tensor, steps: int) -> float:
    net = _network(name, base)
    process = GaussianDiffusion.from_config(DiffusionConfig(T=T))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    batches = shuffled_batches(torch.arange(len(images)), BATCH, generator)
    labels = torch.arange(BATCH) % 10
    for k, idx in enumerate(batches):
        if k == 2:  # two warm-up steps
            start = time.perf_counter()
        loss = training_loss(process, net, to_model(images[idx]), generator, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if k == steps + 1:
            return (time.perf_counter() - start) / steps
    raise ValueError(f"{steps} steps need more than {len(images)} images")


def size(name: str, base: int) -> tuple[int, float]:
    """(parameters, MFLOP per image for forward + backward)."""
    net = _network(name, base)
    x, t, y = torch.zeros(BATCH, 1, 28, 28), torch.rand(BATCH), torch.arange(BATCH) % 10
    with FlopCounterMode(display=False) as counter:
        net(x, t, y).square().mean().backward()
    return sum(p.numel() for p in net.parameters()), counter.get_total_flops() / BATCH / 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed optimiser steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="alternating repeats (median)")
    parser.add_argument("--base", default="16,32", help="base_channels values to compare")
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="torch threads"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    images = load_mnist(None, "auto").train_images
    bases = [int(b) for b in args.base.split(",")]
    print(
        f"training step, batch {BATCH}, channel_mults (1, 2, 2), 10 classes, {args.threads} "
        f"threads, {args.steps} steps x {args.repeats} repeats (median):"
    )
    for base in bases:
        times: dict[str, list[float]] = {name: [] for name in NETWORKS}
        for _ in range(args.repeats):
            for name in NETWORKS:
                times[name].append(seconds_per_step(name, base, images, args.steps))
        ours = statistics.median(times["unet"])
        for name in NETWORKS:
            params, mflop = size(name, base)
            step = statistics.median(times[name])
            print(
                f"  base {base:3d} {name:17s} {params:9,d} params {mflop:7.1f} MFLOP/img "
                f"{step * 1e3:7.1f} ms/step {BATCH / step:6.1f} img/s {step / ours:5.2f}x unet"
            )


if __name__ == "__main__":
    main()
