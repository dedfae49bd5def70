"""``diffusiontools classifier train``: train a data set's evaluation classifier — MNIST's
committed weights (``--out``), or another data set's, stored in the user cache where ``evaluate``
and the quality probe look it up."""

from __future__ import annotations

import argparse
from pathlib import Path

from .flags import data_overrides, keys_given_as_flags, path_text


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "classifier", help="the data set's classifier behind the evaluation metrics"
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = actions.add_parser(
        "train",
        help="train the classifier of a data set (default MNIST) on its training split; "
        "another data set's is stored in the user cache, keyed by the data's checksum",
    )
    t.add_argument(
        "--data",
        type=path_text,
        metavar="CONFIG",
        help="INI config (or packaged name) whose [data] section names the data set",
    )
    t.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="data.KEY=VALUE",
        help="set one [data] key, e.g. data.dataset=fashion_mnist; repeatable",
    )
    t.add_argument(
        "--epochs",
        type=int,
        help="passes over the training images (default: enough for 1,400 steps of 128 images, "
        "at least 3; MNIST: 3)",
    )
    t.add_argument(
        "--seed", type=int, default=0, help="seed for initialisation, order and shifts (default 0)"
    )
    t.add_argument(
        "--out",
        type=path_text,
        help="MNIST only: where to write the weights, replaced if it exists (default "
        "mnist_classifier.pt in the current folder, which is never replaced: name it with --out "
        "to replace it; the committed copy is diffusiontools/assets/)",
    )
    t.add_argument(
        "--data-dir",
        type=path_text,
        help="the data set's folder, data.dir (MNIST default: $DIFFUSIONTOOLS_DATA, then the "
        "cache)",
    )
    t.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    t.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    import dataclasses

    from ..config import read_config
    from ..data import load_data
    from ..device import resolve_device
    from ..errors import UserError
    from ..evaluation.classifier_store import SHIPPED, train_for_dataset
    from ..evaluation.classifier_training import train_classifier
    from ..outputs.safe_writes import check_output_file, refuse_existing

    overrides = data_overrides(args.overrides, args.data_dir, "classifier train")
    given = {"data.dir": "--data-dir"} if args.data_dir is not None else {}
    with keys_given_as_flags(given):  # name the flag typed, not the key it sets
        data = read_config(args.data, overrides)[0].data
    device = resolve_device(args.device)
    if data.dataset != SHIPPED:
        if args.out is not None:
            raise UserError(
                f"--out names the file of MNIST's shipped weights; the classifier of "
                f"{data.dataset} is stored in the user cache, where evaluate finds it: drop --out"
            )
        with keys_given_as_flags(given):
            record = train_for_dataset(data, args.epochs, args.seed, device)
        accuracy, weights = record["test_accuracy"], record["weights"]
        n_test = record["n_test"]
        print(f"test accuracy {accuracy:.4f} on {n_test} test images; weights written to {weights}")
        return

    out = args.out
    if out is None:  # a default in the current folder: never replaces earlier weights
        out = Path("mnist_classifier.pt")
        refuse_existing([out], "name the file with --out to replace it")
    check_output_file(out, "out", "the weights", ending=".pt")  # before any training
    with keys_given_as_flags(given):
        # the committed weights are trained on the MNIST files, never the embedded subset
        dataset = load_data(dataclasses.replace(data, source="mnist"))
    accuracy = train_classifier(dataset, args.epochs, args.seed, device, out)
    n_test = len(dataset.test_images)
    print(f"test accuracy {accuracy:.4f} on {n_test} test images; weights written to {out}")
