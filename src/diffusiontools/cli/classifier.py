"""``diffusiontools classifier train``: regenerate the committed MNIST classifier's weights."""

from __future__ import annotations

import argparse
from pathlib import Path

from .flags import keys_given_as_flags


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "classifier", help="the MNIST classifier behind the evaluation metrics"
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = actions.add_parser("train", help="train the classifier on MNIST and save its weights")
    t.add_argument(
        "--epochs", type=int, default=3, help="passes over the 60,000 training images (default 3)"
    )
    t.add_argument(
        "--seed", type=int, default=0, help="seed for initialisation, order and shifts (default 0)"
    )
    t.add_argument(
        "--out",
        help="where to write the weights, replaced if it exists (default mnist_classifier.pt in "
        "the current folder, which is never replaced: name it with --out to replace it; the "
        "committed copy is diffusiontools/assets/)",
    )
    t.add_argument(
        "--data-dir", help="MNIST folder (default: $DIFFUSIONTOOLS_DATA, then the cache)"
    )
    t.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    t.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from ..config import DataConfig
    from ..data import load_data
    from ..device import resolve_device
    from ..evaluation.classifier_training import train_classifier
    from ..outputs.safe_writes import check_output_file, refuse_existing

    out = args.out
    if out is None:  # a default in the current folder: never replaces earlier weights
        out = Path("mnist_classifier.pt")
        refuse_existing([out], "name the file with --out to replace it")
    check_output_file(out, "out", "the weights", ending=".pt")  # before any training
    given = {"data.dir": "--data-dir"} if args.data_dir is not None else {}
    with keys_given_as_flags(given):  # name the flag typed, not the key it sets
        data = load_data(DataConfig(dir=args.data_dir, source="mnist"))
    device = resolve_device(args.device)
    accuracy = train_classifier(data, args.epochs, args.seed, device, out)
    print(f"test accuracy {accuracy:.4f}; weights written to {out}")
