"""Benchmark (on demand): does a Gaussian run's output look like MNIST? Variants side by side.

Run as ``python -m bench.bench_quickstart_quality RUN_DIR --n 500 [NAME=KEY:VALUE,...] ...``.
Each variant draws ``--n`` samples from seed 0 with the run's sampling settings, overridden by its
keys (``sampler``, ``steps``, ``guidance``, ``eta``, ``clip_x0`` 0/1, ``timestep_spacing``,
``ema`` 0/1, ``epoch``), and is scored by the frame statistics (docs/evaluation.md) and the
classifier metrics against the 10,000 MNIST test images: Fréchet distance, class entropy,
recognisable fraction, precision and recall (k = 3), and the share of frames above 5/255 per class
the classifier reads (in %): MNIST's own 7s reach the border often (17.5% of the test set's, 21%
of the embedded set's), so a per-class rate tells a sampler's fault from the data's. ``test`` as a
variant prints the same frame statistics for all 10,000 test images (the first few hundred are not
representative: the first 500 have 1.4% of frames above 5/255, all 10,000 2.4%).
No variant: the run's own settings. docs/benchmarks.md#quickstart records the figures.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import diffusiontools as dt
from diffusiontools.data import load_mnist
from diffusiontools.evaluation.class_metrics import (
    class_entropy,
    class_histogram,
    recognisable_fraction,
)
from diffusiontools.evaluation.classifier import load_classifier
from diffusiontools.evaluation.feature_metrics import (
    classifier_features,
    frechet_distance,
    precision_recall,
)
from diffusiontools.evaluation.frame_metrics import (
    FRAME_THRESHOLD,
    frame_means,
    frame_statistics,
)

from .machine import describe, recorded

SAMPLE_KEYS = {
    "sampler": str,
    "steps": int,
    "guidance": float,
    "eta": float,
    "clip_x0": lambda text: text == "1",
    "timestep_spacing": str,
}


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """'name=key:value,key:value' -> (name, {key: value})."""
    name, _, options = text.partition("=")
    return name, dict(item.split(":", 1) for item in options.split(",") if item)


def to_uint8(images: torch.Tensor):
    """Model-range samples (N, 1, 28, 28) -> uint8 (N, 28, 28), as the NPZ files store them."""
    return ((images.clamp(-0.5, 0.5) + 0.5) * 255).round().to(torch.uint8).squeeze(1).numpy()


def above_5_by_class(images: np.ndarray, labels: np.ndarray) -> dict[str, list[float]]:
    """Share (%) of each class's uint8 images (N, 28, 28) whose frame mean is above 5/255."""
    above = frame_means(images) > FRAME_THRESHOLD
    shares = [above[labels == c].mean() if (labels == c).any() else np.nan for c in range(10)]
    return {"above_5_by_class": [round(100 * float(share), 1) for share in shares]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a trained Gaussian run folder")
    parser.add_argument("variants", nargs="*", default=["run="], help="NAME=KEY:VALUE,...")
    parser.add_argument("--n", type=int, default=500, help="samples per variant")
    args = parser.parse_intermixed_args(argv)  # --n may stand between the positionals
    classifier = load_classifier("cpu")
    test_u8 = load_mnist(None, "mnist").test_images.numpy()
    test_x = torch.as_tensor(test_u8) / 255.0 - 0.5
    test_features, _ = classifier_features(classifier, test_x, "cpu")
    models = {}
    print(describe())
    with recorded("quickstart quality"):
        for text in args.variants:
            name, options = parse_variant(text)
            if name == "test":
                by_class = above_5_by_class(test_u8, load_mnist(None, "mnist").test_labels.numpy())
                print(json.dumps({"name": "MNIST test", **frame_statistics(test_u8), **by_class}))
                continue
            key = (options.pop("ema", "1") == "1", options.pop("epoch", None))
            if key not in models:
                epoch = None if key[1] is None else int(key[1])
                models[key] = dt.load(args.run_dir, epoch=epoch, device="cpu", ema=key[0])
            kwargs = {k: SAMPLE_KEYS[k](v) for k, v in options.items()}
            started = time.perf_counter()
            images = to_uint8(models[key].sample(args.n, seed=0, **kwargs))
            seconds = time.perf_counter() - started
            features, probabilities = classifier_features(
                classifier, torch.as_tensor(images) / 255.0 - 0.5, "cpu"
            )
            precision, recall = precision_recall(test_features, features)
            row = {
                "name": name,
                **frame_statistics(images),
                "frechet": frechet_distance(test_features, features),
                "class_entropy": class_entropy(class_histogram(probabilities)),
                "recognisable": recognisable_fraction(probabilities),
                "precision": precision,
                "recall": recall,
                "seconds": seconds,
                **above_5_by_class(images, probabilities.argmax(1)),
            }
            rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
            print(json.dumps(rounded))


if __name__ == "__main__":
    main()
