"""Benchmark (on demand): Bansal et al.'s cold-diffusion table at CPU scale, and their generation.

Run as ``python -m bench.bench_cold_table RUNS [--n 1000] [--n-gen 1000] [--out FILE.json]
[--only NAME ...]``, with RUNS a folder holding the trained runs (commands in
docs/cold_diffusion.md):

1. Reconstruction, for ``blur_bansal``, ``pixelate_bansal`` and ``mask_bansal``: MNIST test
   images 0..n-1 degraded to t = T (``test_consistent`` start, seed 0), then the degraded input
   itself, the direct reconstruction (one application of R at t = T), Algorithm 1 and
   Algorithm 2, each scored by RMSE and SSIM against the originals and by the classifier
   Fréchet distance against all 10,000 test images. Images are clamped to the pixel range first,
   as a saved image would be; RMSE and SSIM use [0, 1] units (SSIM: torchmetrics, 11 x 11
   Gaussian window, data range 1), RMSE the mean over images of each image's RMSE.
2. Generation, for ``blur_bansal`` and ``pixel_swap_unet`` (runs without a gmm start are
   skipped): ``--n-gen`` samples from the ``gmm`` start with each sampler, and the ``quickstart``
   Gaussian run with its own settings, scored by the classifier metrics: Fréchet distance,
   class entropy (ln 10 = 2.303 is uniform), precision and recall (k = 3) against the test set.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
from torchmetrics.image import StructuralSimilarityIndexMeasure

from diffusiontools.data import load_mnist, to_model
from diffusiontools.evaluation.class_metrics import class_entropy, class_histogram
from diffusiontools.evaluation.classifier import load_classifier
from diffusiontools.evaluation.feature_metrics import (
    classifier_features,
    frechet_distance,
    precision_recall,
)
from diffusiontools.sampling.generation import generate, model_fn
from diffusiontools.sampling.registry import get_sampler
from diffusiontools.training.trained_model import load_trained

from .machine import describe, recorded

RECONSTRUCTION_RUNS = ("blur_bansal", "pixelate_bansal", "mask_bansal")
GENERATION_RUNS = ("blur_bansal", "pixel_swap_unet")
BATCH = 500
CPU = torch.device("cpu")


def per_image_rmse(x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """(N,) RMSE of each image; x, x0 (N, 1, 28, 28) in [-0.5, 0.5] (an interval of width 1)."""
    return (x - x0).pow(2).flatten(1).mean(dim=1).sqrt()


def ssim(x: torch.Tensor, x0: torch.Tensor) -> float:
    """Mean SSIM of x against x0, (N, 1, 28, 28) in [-0.5, 0.5], computed in [0, 1]."""
    metric = StructuralSimilarityIndexMeasure(data_range=1.0)
    for i in range(0, len(x), BATCH):
        metric.update(x[i : i + BATCH] + 0.5, x0[i : i + BATCH] + 0.5)
    return float(metric.compute())


@torch.no_grad()
def reconstruct(run_dir: Path, x0: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    """Degraded input, direct, Algorithm 1 and Algorithm 2 for x0 (N, 1, 28, 28), one start."""
    model = load_trained(run_dir, None, CPU)
    process, R = model.process, model_fn(model.net, model.process.T)
    out: dict[str, list[torch.Tensor]] = {k: [] for k in ("degraded", "direct", "alg1", "alg2")}
    generator = torch.Generator().manual_seed(seed)
    for i in range(0, len(x0), BATCH):
        start = process.start_from(x0[i : i + BATCH], "test_consistent", generator)
        t_T = torch.full((len(start.x),), start.t, dtype=torch.long)
        out["degraded"].append(start.x)
        out["direct"].append(R(start.x, t_T))
        out["alg1"].append(get_sampler("naive", "cold")(R, process, start, generator))
        out["alg2"].append(get_sampler("improved", "cold")(R, process, start, generator))
    return {k: torch.cat(v).clamp(-0.5, 0.5) for k, v in out.items()}


def class_scores(classifier, images: torch.Tensor, test_feats: np.ndarray) -> dict[str, float]:
    """Fréchet distance, class entropy, precision and recall of images against the test set."""
    feats, probs = classifier_features(classifier, images.clamp(-0.5, 0.5), CPU)
    precision, recall = precision_recall(test_feats, feats, k=3)
    return {
        "frechet": frechet_distance(feats, test_feats),
        "class_entropy": class_entropy(class_histogram(probs)),
        "precision": precision,
        "recall": recall,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, help="folder with the trained runs, one per name")
    parser.add_argument("--n", type=int, default=1000, help="test images reconstructed")
    parser.add_argument("--n-gen", type=int, default=1000, help="samples generated per row")
    parser.add_argument("--seed", type=int, default=0, help="seed of starts and samplers")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    parser.add_argument(
        "--only", nargs="+", default=None, help="measure only these run names (default: all)"
    )
    args = parser.parse_args(argv)

    def wanted(name: str) -> bool:
        return (args.runs / name).is_dir() and (args.only is None or name in args.only)

    torch.manual_seed(args.seed)
    test = to_model(load_mnist(None, "mnist").test_images)  # (10000, 1, 28, 28)
    classifier = load_classifier(CPU)
    test_feats, _ = classifier_features(classifier, test, CPU)
    x0 = test[: args.n]
    results: dict = {"n": args.n, "n_gen": args.n_gen, "seed": args.seed, "table": {}, "gen": {}}

    print(describe())
    with recorded("cold table") as load:
        print("| degradation | method | RMSE | SSIM | Fréchet |\n|---|---|---|---|---|")
        for name in RECONSTRUCTION_RUNS:
            if not wanted(name):
                continue
            started = time.perf_counter()
            rows = {}
            for method, x in reconstruct(args.runs / name, x0, args.seed).items():
                feats, _ = classifier_features(classifier, x, CPU)
                rows[method] = {
                    "rmse": float(per_image_rmse(x, x0).mean()),
                    "ssim": ssim(x, x0),
                    "frechet": frechet_distance(feats, test_feats),
                }
                r = rows[method]
                scores = f"{r['rmse']:.4f} | {r['ssim']:.3f} | {r['frechet']:.1f}"
                print(f"| {name} | {method} | {scores} |")
            rows["seconds"] = round(time.perf_counter() - started, 1)
            results["table"][name] = rows

        print("\n| run | start, sampler | Fréchet | class entropy | precision | recall |")
        print("|---|---|---|---|---|---|")
        settings = [
            (name, sampler) for name in GENERATION_RUNS for sampler in ("naive", "improved")
        ]
        for name, sampler in [*settings, ("quickstart", None)]:
            if not wanted(name):
                continue
            model = load_trained(args.runs / name, None, CPU)
            config = model.config
            if model.process.kind == "cold":
                config = dataclasses.replace(
                    config, sampling=dataclasses.replace(config.sampling, start="gmm")
                )
            images = generate(
                model.net,
                model.process,
                config,
                args.n_gen,
                args.seed,
                CPU,
                sampler,
                shape=model.shape,
            )
            label = f"gmm, {sampler}" if sampler else "noise, its own settings"
            scores = class_scores(classifier, images, test_feats)
            results["gen"][f"{name} ({label})"] = scores
            print(
                f"| {name} | {label} | {scores['frechet']:.1f} | {scores['class_entropy']:.3f} | "
                f"{scores['precision']:.3f} | {scores['recall']:.3f} |"
            )
    results["load_average"] = {"before": load.before, "after": load.after, "busy": load.busy}
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
