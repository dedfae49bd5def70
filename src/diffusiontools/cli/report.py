"""``diffusiontools report RUN_DIR ...``: self-contained HTML pages of runs and their evaluation."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("report", help="write one HTML page per run, and a comparison page")
    p.add_argument(
        "run_dirs",
        nargs="+",
        type=Path,
        metavar="RUN_DIR",
        help="run folders written by 'diffusiontools train'",
    )
    p.add_argument(
        "--eval",
        type=Path,
        metavar="DIR",
        help="folder written by 'diffusiontools evaluate': adds its metrics and t-SNE",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("report"),
        help="output folder (default ./report); pages already there are refused unless --overwrite",
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
    from ..evaluation.report_html import write_reports

    device = resolve_device(args.device)
    for path in write_reports(args.run_dirs, args.out, args.eval, device, args.overwrite):
        print(f"report: {path}")
