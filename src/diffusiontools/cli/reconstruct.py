"""``diffusiontools reconstruct RUN_DIR``: the report's Table 1 reconstruction study (cold runs)."""

from __future__ import annotations

import argparse

from .flags import path_arg, path_text


def _sampler_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "reconstruct",
        help="degrade test images at t = T-1 and score direct and diffusion reconstructions",
    )
    p.add_argument(
        "run_dir",
        type=path_arg,
        help="cold-diffusion run folder from 'diffusiontools train' (or its export folder)",
    )
    p.add_argument(
        "-n", type=int, default=200, help="test images 0..n-1 (default 200, the report's)"
    )
    p.add_argument("--epoch", type=int, help="checkpoint epoch (default: the latest)")
    p.add_argument(
        "--samplers",
        type=_sampler_list,
        default=("naive", "improved"),
        help="comma-separated cold samplers (default naive,improved)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random fields (default 0)")
    p.add_argument(
        "--out",
        type=path_arg,
        help="output folder (default RUN_DIR/reconstruction, the study's own, replaced as a "
        "whole by each study); another that holds a study is refused unless --overwrite",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the study already in --out (all its files, a sampler's figure not drawn "
        "again included); other files stay",
    )
    p.add_argument(
        "--data-dir",
        type=path_text,
        help="where the run's data lie now, if they moved since training: its folder (data.dir; "
        "an NPZ data set's file), whose test images the study degrades (default: the run's "
        "data.dir)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from ..device import resolve_device
    from ..evaluation.reconstruction import markdown_table, reconstruction_study
    from ..training.run_folder import RunFolder

    out = args.out if args.out else RunFolder(args.run_dir).reconstruction
    device = resolve_device(args.device)
    result = reconstruction_study(
        args.run_dir,
        args.n,
        args.epoch,
        args.samplers,
        args.seed,
        device,
        out,
        args.overwrite,
        args.data_dir,
    )
    print(markdown_table(result), end="")
    print(
        f"reconstruction: {out / 'reconstruction.json'}, {out / 'reconstruction.md'}, "
        f"triplets_<sampler>.png in {out}"
    )
