"""``diffusiontools reproduce``: the report's four models trained, sampled, evaluated and drawn."""

from __future__ import annotations

import argparse
from pathlib import Path

from .flags import path_arg


def add_parser(subparsers) -> None:
    from ..reproduce.scales import SCALES

    p = subparsers.add_parser(
        "reproduce",
        help="re-run the report's study end to end and compare with its numbers",
    )
    p.add_argument(
        "--scale",
        default="cpu",
        help="; ".join(f"{name}: {s.summary}" for name, s in SCALES.items()) + " (default cpu)",
    )
    p.add_argument(
        "--out",
        type=path_arg,
        help="output folder (default reproduction-<scale>); re-run to resume",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of sampling and evaluation")
    p.add_argument(
        "--skip-training",
        action="store_true",
        help="evaluate the models shipped in the package instead of training them (minutes; "
        "--scale report only)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="how many models train at once, each in a process of its own with its share of "
        "torch's threads (default 1: one after the other); 2 on a 2-core machine about halves "
        "the wall time of --scale report",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from ..device import resolve_device
    from ..reproduce.pipeline import PAGES_STAGE, reproduce
    from ..reproduce.scales import get_scale

    scale = get_scale(args.scale)
    default_out = f"reproduction-{scale.name}" + ("-shipped" if args.skip_training else "")
    out = args.out if args.out else Path(default_out)
    path = reproduce(
        scale, out, resolve_device(args.device), args.seed, args.skip_training, args.jobs
    )
    pages = "" if args.skip_training else f"; pages in {out / PAGES_STAGE}"
    print(f"reproduction: {path}{pages}; figures in {out / 'figures'}")
