"""``diffusiontools pages RUN_DIR ...``: self-contained HTML pages of runs and their evaluation.

``report`` is the same command under the name scripts may still call; it says so on stderr.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .flags import path_arg

logger = logging.getLogger(__name__)

FORMER_NAME = "report"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "pages",
        aliases=[FORMER_NAME],
        help="write one HTML page per run, and a comparison page",
    )
    p.add_argument(
        "run_dirs",
        nargs="+",
        type=path_arg,
        metavar="RUN_DIR",
        help="run folders written by 'diffusiontools train'",
    )
    p.add_argument(
        "--eval",
        type=path_arg,
        metavar="DIR",
        help="folder written by 'diffusiontools evaluate': adds its metrics and t-SNE",
    )
    p.add_argument(
        "--out",
        type=path_arg,
        default=Path("pages"),
        help="output folder (default ./pages); pages already there are refused unless --overwrite",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace the pages (and their figures) in --out"
    )
    p.add_argument(
        "--device",
        default="auto",
        help="auto, cpu, cuda or cuda:N, for samples drawn from checkpoints",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from ..device import resolve_device
    from ..evaluation.run_pages import write_pages

    if args.command == FORMER_NAME:
        logger.warning("`diffusiontools report` is now `diffusiontools pages`")
    device = resolve_device(args.device)
    for path in write_pages(args.run_dirs, args.out, args.eval, device, args.overwrite):
        print(f"page: {path}")
