"""End to end on data sets other than MNIST: train -> sample -> evaluate with the data's classifier.

Run as ``python -m bench.bench_end_to_end_datasets [--datasets digits8,coloured_mnist]
[--steps 300] [--n-samples 200] [--classifier-epochs N] [--out bench_end_to_end]``. For each data
set (``data.dataset``; ``digits8`` is 8x8 gray, ``coloured_mnist`` 32x32 RGB, both offline):

1. train a model with ``dt.train``: the quickstart's settings (conditional UNet predicting x0,
   log-normal times, EMA, DDIM 50 with guidance) with ``--steps`` steps and ``--base`` channels,
   the UNet's levels chosen from the data's size (:data:`LEVELS`);
2. ``dt.load`` it back and draw ``--n-samples`` samples, checking their shape is the data's;
3. train the data's classifier with the command line, ``diffusiontools classifier train --set
   data.dataset=NAME`` (kept in the user cache, keyed by the data's fingerprint; set
   ``XDG_CACHE_HOME`` to keep it elsewhere);
4. ``dt.evaluate`` the model's samples against the data's test split, scored by that
   classifier.

Each stage prints its wall time and ``ok``, or ``STOPPED`` with the error's sentence; a stopped
stage skips the rest of that data set and the next data set goes on. Exit status 1 when any
stage stopped. Prints the machine and the load average around each data set.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

import diffusiontools as dt
from diffusiontools.data import DatasetSpec
from diffusiontools.data.sources import load_dataset

from .machine import describe, recorded

# model.channel_mults per image size: as many levels as the size halves into, up to three
# (8 -> 4 -> 2; 32 -> 16 -> 8 -> 4)
LEVELS = {8: (1, 2, 2), 28: (1, 2, 2), 32: (1, 2, 2, 2)}


def overrides(dataset: str, steps: int, base: int, spec: DatasetSpec) -> dict:
    """The quickstart's settings (``configs/quickstart.ini``) on ``dataset``, ``steps`` long; its
    [data] section names MNIST's source, so they are written here."""
    return {
        "data.dataset": dataset,
        "model.network": "unet",
        "model.base_channels": base,
        "model.channel_mults": LEVELS[spec.height],
        "model.num_classes": spec.num_classes,
        "diffusion.kind": "gaussian",
        "diffusion.prediction": "x0",
        "diffusion.t_sampling": "lognormal",
        "training.max_steps": steps,
        "training.batch_size": 64,
        "training.lr": 1e-3,
        "training.ema_decay": 0.9975,
        "training.val_batches": 5,
        "sampling.sampler": "ddim",
        "sampling.steps": 50,
        "sampling.eta": 0.5,
        "sampling.guidance": 1.1,
        "sampling.clip_x0": True,
    }


class Stages:
    """Runs named stages in order, printing each one's time and outcome; after one stops, the
    rest are skipped."""

    def __init__(self, dataset: str):
        self.dataset = dataset
        self.stopped: str | None = None

    def run(self, name: str, action):
        if self.stopped is not None:
            print(f"  {self.dataset:15s} {name:20s} skipped (stopped at {self.stopped})")
            return None
        start = time.perf_counter()
        try:
            result = action()
        except Exception as e:  # any error: the bench reports where the pipeline stops
            self.stopped = name
            print(
                f"  {self.dataset:15s} {name:20s} STOPPED after "
                f"{time.perf_counter() - start:.1f} s: {_sentence(e)}"
            )
            return None
        print(f"  {self.dataset:15s} {name:20s} ok in {time.perf_counter() - start:.1f} s")
        return result


def classifier_command(dataset: str, epochs: int | None) -> list[str]:
    command = [sys.executable, "-m", "diffusiontools", "classifier", "train"]
    command += ["--set", f"data.dataset={dataset}"]
    return command + ([] if epochs is None else ["--epochs", str(epochs)])


def end_to_end(dataset: str, args: argparse.Namespace) -> bool:
    """The stages on ``dataset``; True when all of them finished."""
    spec = load_dataset(dataset).spec
    print(f"{dataset}: {spec.height}x{spec.width}x{spec.channels}, {spec.num_classes} classes")
    run_dir = args.out / dataset / "run"
    stages = Stages(dataset)
    config = stages.run(
        "config", lambda: dt.load_config(None, overrides(dataset, args.steps, args.base, spec))
    )
    stages.run("train", lambda: dt.train(config, run_dir, overwrite=True))
    model = stages.run("load", lambda: dt.load(run_dir, device="cpu"))

    def sample() -> torch.Tensor:
        images = model.sample(args.n_samples, seed=0)
        if tuple(images.shape) != (args.n_samples, *spec.shape):
            raise dt.DiffusionToolsError(
                f"samples have shape {tuple(images.shape)}, not (n, *{spec.shape})"
            )
        return images

    stages.run("sample", sample)
    trained = stages.run(
        "classifier train",
        lambda: subprocess.run(
            classifier_command(dataset, args.classifier_epochs),
            check=True,
            capture_output=True,
            text=True,
        ),
    )
    if trained is not None:
        print(f"    {trained.stdout.strip().splitlines()[-1]}")  # the CLI's summary line
    result = stages.run(
        "evaluate",
        lambda: dt.evaluate(
            {dataset: model},
            n_samples=args.n_samples,
            out=args.out / dataset / "evaluation",
            device="cpu",
            overwrite=True,
        ),
    )
    if result is not None:
        print(result.table())
    return stages.stopped is None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets", default="digits8,coloured_mnist", help="data.dataset names, comma-separated"
    )
    parser.add_argument("--steps", type=int, default=300, help="training steps per model")
    parser.add_argument("--base", type=int, default=16, help="the UNet's base_channels")
    parser.add_argument("--n-samples", type=int, default=200, help="samples drawn and scored")
    parser.add_argument(
        "--classifier-epochs",
        type=int,
        help="the classifier's epochs (default: the command's, enough for 1,400 steps)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench_end_to_end"), help="folder")
    args = parser.parse_args(argv)
    print(describe())
    finished = []
    for dataset in args.datasets.split(","):
        with recorded(f"end_to_end {dataset}"):
            finished.append(end_to_end(dataset, args))
    if not all(finished):
        sys.exit(1)


def _sentence(error: Exception) -> str:
    """The error's message; for a failed command, the last line it wrote to stderr."""
    if isinstance(error, subprocess.CalledProcessError):
        lines = (error.stderr or "").strip().splitlines()
        return f"exit {error.returncode}: {lines[-1] if lines else ''}"
    return f"{type(error).__name__}: {error}"


if __name__ == "__main__":
    main()
