"""Benchmark (on demand, long): sample quality per sampler on one trained Gaussian model.

Run as ``python -m bench.bench_sampler_quality RUN_DIR [--n 300]``. Every sampler starts from the
same seed and uses the run's own sampling settings (guidance, x0 clipping, balanced labels);
quality is the classifier Fréchet distance of ``--n`` samples against the 10,000 MNIST test
images, time is the sampling wall time. The 1000-step ancestral sampler is the reference the
few-step samplers must match (within 10%) at a fraction of the cost.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from diffusiontools.data import load_mnist, to_model
from diffusiontools.evaluation.classifier import load_classifier
from diffusiontools.evaluation.feature_metrics import frechet_distance
from diffusiontools.sampling.generation import generate
from diffusiontools.training.trained_model import load_trained

from .bench_time_to_quality import features
from .machine import describe, recorded

SETTINGS = [("ancestral", None), ("ddim", 50), ("dpm_solver", 50), ("dpm_solver", 20)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a trained Gaussian run folder")
    parser.add_argument("--n", type=int, default=300, help="samples per sampler")
    args = parser.parse_args(argv)
    device = torch.device("cpu")
    model = load_trained(args.run_dir, None, device)
    classifier = load_classifier(device)
    test = features(classifier, to_model(load_mnist(None, "mnist").test_images)).numpy()
    rows = []
    print(describe())
    with recorded("sampler quality"):
        for sampler, steps in SETTINGS:
            started = time.perf_counter()
            images = generate(
                model.net,
                model.process,
                model.config,
                args.n,
                0,
                device,
                sampler,
                steps,
                shape=model.shape,
            )
            seconds = time.perf_counter() - started
            fd = frechet_distance(features(classifier, images.clamp(-0.5, 0.5)).numpy(), test)
            rows.append((sampler, steps or model.process.T, seconds, fd))
    _, _, base_seconds, base_fd = rows[0]
    header = ("sampler", "steps", "seconds", "speed-up", "Fréchet", "vs ancestral")
    print("{:>10} {:>5} {:>8} {:>8} {:>8} {:>12}".format(*header))
    for sampler, steps, seconds, fd in rows:
        print(
            f"{sampler:>10} {steps:5d} {seconds:8.1f} {base_seconds / seconds:7.1f}x "
            f"{fd:8.2f} {fd / base_fd - 1:+11.0%}"
        )


if __name__ == "__main__":
    main()
