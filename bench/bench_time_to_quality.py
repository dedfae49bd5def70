"""Benchmark (on demand, long): sample quality against training wall time, at equal budget.

Run as ``python -m bench.bench_time_to_quality [--budget-min 10] [--evals 5] [--n 500]``. The
faithful config (model 1: notebook CNN, eps, T = 1000) and the quickstart config (small UNet, EMA,
class-conditional with guidance, clipped x0) each train for the same wall-clock budget, in
``--evals`` chunks (resumed runs); after every chunk ``--n`` samples are drawn with DDIM, 50 steps
(both models: the faithful 1000-step sampler alone would cost more than the training) and scored
by the classifier Fréchet distance against the 10,000 MNIST test images. Training time counts the
whole ``train`` call (validation and checkpoints included), sampling time is not counted. Both
train on full MNIST (set ``DIFFUSIONTOOLS_DATA``), which the faithful config requires.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from diffusiontools.data import load_mnist, to_model
from diffusiontools.evaluation.classifier import load_classifier
from diffusiontools.evaluation.feature_metrics import frechet_distance
from diffusiontools.sampling.generation import generate
from diffusiontools.training.run_config import load_config
from diffusiontools.training.trained_model import load_trained
from diffusiontools.training.trainer import train

from .machine import describe, recorded

CONFIGS = {"faithful (model1)": "configs/model1.ini", "quickstart": "configs/quickstart.ini"}
PROBE_STEPS = 30  # the first chunk, which also measures seconds per step


@torch.no_grad()
def features(classifier, images: torch.Tensor) -> torch.Tensor:
    return torch.cat(
        [classifier.features(images[i : i + 1000]) for i in range(0, len(images), 1000)]
    )


def quality(run_dir: Path, n: int, classifier, test_features) -> float:
    model = load_trained(run_dir, None, torch.device("cpu"))
    images = generate(
        model.net,
        model.process,
        model.config,
        n,
        0,
        torch.device("cpu"),
        "ddim",
        50,
        shape=model.shape,
    )
    return frechet_distance(features(classifier, images.clamp(-0.5, 0.5)).numpy(), test_features)


def curve(name: str, path: str, args, out: Path, classifier, test_features) -> list[tuple]:
    """(steps, training seconds, Fréchet distance) after each chunk of ``name``'s training."""
    run_dir, budget = out / name.split()[0], args.budget_min * 60
    points, steps, spent = [], 0, 0.0
    for chunk in range(args.evals + 1):
        if chunk == 0:
            target = PROBE_STEPS
        else:  # size the chunk from the speed so far, to end on the chunk's share of the budget
            share = budget * chunk / args.evals
            target = steps + max(1, int((share - spent) * steps / spent))
        config = load_config(path, [f"training.max_steps={target}", "training.epochs=1000"])
        started = time.perf_counter()
        train(config, run_dir, resume=chunk > 0, overwrite=chunk == 0)
        spent += time.perf_counter() - started
        steps = target
        if chunk > 0:
            fd = quality(run_dir, args.n, classifier, test_features)
            points.append((steps, spent, fd))
            print(f"{name:>18}: {steps:6d} steps, {spent / 60:5.1f} min, Fréchet {fd:8.2f}")
    return points


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-min", type=float, default=10.0, help="training minutes each")
    parser.add_argument("--evals", type=int, default=5, help="quality measurements per config")
    parser.add_argument("--n", type=int, default=500, help="samples per measurement")
    args = parser.parse_args(argv)
    classifier = load_classifier("cpu")
    test_features = features(classifier, to_model(load_mnist(None, "mnist").test_images)).numpy()
    print(describe())
    with tempfile.TemporaryDirectory(prefix="bench-ttq-") as scratch, recorded("time to quality"):
        curves = {
            name: curve(name, path, args, Path(scratch), classifier, test_features)
            for name, path in CONFIGS.items()
        }
    print("\nat equal budget (each config's last point):")
    for name, points in curves.items():
        steps, spent, fd = points[-1]
        print(f"{name:>18}: Fréchet {fd:8.2f} after {spent / 60:.1f} min ({steps} steps)")
    ratio = curves["faithful (model1)"][-1][2] / curves["quickstart"][-1][2]
    print(f"Fréchet distance, faithful / quickstart: {ratio:.1f}x")


if __name__ == "__main__":
    main()
