"""``diffusiontools export RUN_DIR``: a run's model as safetensors or as a diffusers folder."""

from __future__ import annotations

import argparse

from .flags import path_text


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="write a run's model as safetensors or as a folder diffusers loads"
    )
    p.add_argument("run_dir", type=path_text, help="run folder written by 'diffusiontools train'")
    p.add_argument(
        "--format",
        required=True,
        help="safetensors (weights + diffusiontools.json; any run) or diffusers (unet/ and "
        "scheduler/ for from_pretrained; Gaussian runs of model.network = unet2d_diffusers)",
    )
    p.add_argument("--epoch", type=int, help="checkpoint epoch (default: the latest)")
    p.add_argument(
        "--ema",
        action=argparse.BooleanOptionalAction,
        help="--ema: the EMA weights (refused for a run without them); --no-ema: the raw "
        "weights (default: the EMA weights where the run kept them, else the raw ones)",
    )
    p.add_argument(
        "--out", type=path_text, help="export folder (default: RUN_DIR/exports/FORMAT[_epoch_NNNN])"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from ..training.trained_model import export_run  # here: --help answers without torch

    out = export_run(args.run_dir, args.out, args.format, args.epoch, args.ema)
    print(f"export folder: {out}")
