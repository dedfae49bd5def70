"""Benchmark: sampling cost per sampler — network evaluations per second and time for 1,000 samples.

Run as ``python -m bench.bench_sampling [--batch 1000] [--evals 3]``. Sampling time is dominated by
network evaluations (each sampler's own arithmetic is a few element-wise ops), so each sampler
is run for a few real steps on a batch of ``--batch`` images, its per-evaluation time measured,
and the time for 1,000 samples reported as evaluations x that time. The faithful notebook CNN
is used throughout; ratios are against the 1000-step ancestral sampler of model 1.
"""

from __future__ import annotations

import argparse
import time

import torch

from diffusiontools.config import Config, DiffusionConfig
from diffusiontools.diffusion.gaussian import GaussianDiffusion
from diffusiontools.models import make_network
from diffusiontools.sampling.generation import model_fn
from diffusiontools.sampling.registry import SAMPLERS

from .machine import describe, recorded

# (sampler, network evaluations used for 1,000 samples at the project's default settings)
SETTINGS = [("ancestral", 1000), ("ddim", 50), ("dpm_solver", 20)]


def seconds_per_evaluation(sampler_name: str, batch: int, evals: int) -> float:
    """Time ``evals`` real sampler steps on ``batch`` images and return seconds per step."""
    torch.manual_seed(0)
    net = make_network(Config().model, shape=(1, 28, 28)).eval()
    process = GaussianDiffusion.from_config(DiffusionConfig(T=evals))  # T = evals: a short run
    sample = SAMPLERS[sampler_name].sample
    generator = torch.Generator().manual_seed(0)
    x_T = torch.randn(batch, 1, 28, 28, generator=generator)
    model = model_fn(net, process.T)
    calls = 0

    def counted(x, t):
        nonlocal calls
        calls += 1
        return model(x, t)

    start = time.perf_counter()
    sample(counted, process, x_T, generator, steps=evals if sampler_name != "ancestral" else None)
    return (time.perf_counter() - start) / calls


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1000, help="images per network evaluation")
    parser.add_argument("--evals", type=int, default=4, help="timed steps per sampler")
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="torch threads"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"sampling, faithful CNN, batch {args.batch}, {args.threads} threads:\n  {describe()}")
    base = None
    with recorded("sampling"):
        for name, evals_for_1000 in SETTINGS:
            per_eval = seconds_per_evaluation(name, args.batch, args.evals)
            wall = evals_for_1000 * per_eval * 1000 / args.batch
            base = base or wall
            print(
                f"  {name:11s} {evals_for_1000:5d} evals  {args.batch / per_eval:8.0f} "
                f"image-evals/s  1,000 samples in {wall:7.1f} s  "
                f"({base / wall:5.1f}x faster than ancestral)"
            )


if __name__ == "__main__":
    main()
