"""Benchmark: training throughput of our UNet against diffusers' UNet2DModel on RGB 32x32 images.

Run as ``python -m bench.bench_unet_rgb32_vs_diffusers [--batch 32] [--steps 5] [--repeats 3]``.
Both networks are sized as a user would size them for CIFAR-10's 32x32x3 and made about equally
large: four resolutions 32 -> 16 -> 8 -> 4 with widths ``base_channels`` x (1, 2, 2, 2), our UNet
at base 40 and ``UNet2DModel`` (``model.network = unet2d_diffusers``: one ResNet block per level
down, two up, no attention) at base 32, whose extra blocks the narrower widths pay for; both
parameter counts are printed, with the FLOPs per image (forward + backward,
``torch.utils.flop_counter``). Each step is the same work for both: forward + backward + Adam
step of the Gaussian process's loss (T = 1000, eps, 10 classes) on the same batch of coloured
MNIST (``data.dataset = coloured_mnist``, made offline). The networks alternate inside each
repeat, so that machine noise hits both alike; the median images/s and the ratio are printed,
with torch's thread count and the load average around the measurement. Needs the diffusers
extra.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from diffusiontools.config import DiffusionConfig, ModelConfig
from diffusiontools.data import shuffled_batches, to_model
from diffusiontools.data.sources import load_dataset
from diffusiontools.diffusion.gaussian import GaussianDiffusion
from diffusiontools.diffusion.process import training_loss
from diffusiontools.models import make_network

from .machine import describe, recorded, spread

T = 1000
MULTS = (1, 2, 2, 2)  # 32 -> 16 -> 8 -> 4
BASE = {"unet": 40, "unet2d_diffusers": 32}  # about 1.5 million parameters each
WARM_UP = 2  # untimed steps per network before the first repeat


class Trainer:
    """One network with its Adam, stepping the Gaussian loss on given batches."""

    def __init__(self, name: str, shape: tuple[int, int, int], num_classes: int):
        config = ModelConfig(
            network=name, base_channels=BASE[name], channel_mults=MULTS, num_classes=num_classes
        )
        self.net = make_network(config, seed=0, T=T, shape=shape)
        self.params = sum(p.numel() for p in self.net.parameters())
        self.process = GaussianDiffusion.from_config(DiffusionConfig(T=T))
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=1e-4)
        x, t, y = torch.zeros(2, *shape), torch.rand(2), torch.arange(2)
        with FlopCounterMode(display=False) as counter:
            self.net(x, t, y).square().mean().backward()
        self.net.zero_grad(set_to_none=True)
        self.mflop = counter.get_total_flops() / 2 / 1e6  # per image, forward + backward

    def step(self, x0: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> None:
        loss = training_loss(self.process, self.net, x0, generator, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def images_per_s(self, batches: list[tuple[torch.Tensor, torch.Tensor]], seed: int) -> float:
        """Images per second over ``batches``, the noise drawn from ``seed``."""
        generator = torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        for x0, y in batches:
            self.step(x0, y, generator)
        return sum(len(x0) for x0, _ in batches) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="images per training step")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per network per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="alternating repeats (median)")
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="torch threads"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_dataset("coloured_mnist")
    generator = torch.Generator().manual_seed(0)
    batches = [
        (to_model(data.train_images[idx]), data.train_labels[idx])
        for idx, _ in zip(
            shuffled_batches(torch.arange(len(data.train_images)), args.batch, generator),
            range(args.steps),
            strict=False,
        )
    ]
    if len(batches) < args.steps:
        parser.error(f"--steps {args.steps} x --batch {args.batch} needs more training images")
    trainers = {name: Trainer(name, data.spec.shape, data.spec.num_classes) for name in BASE}
    print(describe())
    print(
        f"training step (forward + backward + Adam) on coloured MNIST {data.spec.shape}, batch "
        f"{args.batch}, widths base x {MULTS}, 10 classes, {torch.get_num_threads()} torch "
        f"threads, {args.steps} steps x {args.repeats} alternating repeats (median, min-max):"
    )
    for trainer in trainers.values():
        trainer.images_per_s(batches[:WARM_UP], seed=0)
    rates: dict[str, list[float]] = {name: [] for name in trainers}
    with recorded("unet_rgb32_vs_diffusers", own=torch.get_num_threads()):
        for repeat in range(args.repeats):
            for name, trainer in trainers.items():
                rates[name].append(trainer.images_per_s(batches, seed=repeat))
    ours = statistics.median(rates["unet"])
    for name, trainer in trainers.items():
        rate = statistics.median(rates[name])
        print(
            f"  {name:17s} base {BASE[name]:2d} {trainer.params:9,d} params "
            f"{trainer.mflop:7.1f} MFLOP/img (fwd + bwd) "
            f"{spread(rates[name])} img/s  {rate / ours:5.2f}x unet's throughput"
        )


if __name__ == "__main__":
    main()
