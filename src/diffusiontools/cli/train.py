"""``diffusiontools train CONFIG``: train a model from an INI config into a run folder."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..config import config_path
from ..training.signals import TrainingStopped
from .flags import keys_given_as_flags, path_text

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a model from an INI config")
    p.add_argument("config", type=path_text, help="INI config file, e.g. configs/quickstart.ini")
    p.add_argument("--out", type=path_text, help="run folder (default: runs/<config name>)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config key (an empty VALUE unsets it: --set data.source=); repeatable",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in the folder from its latest checkpoint",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a run already in the folder")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from ..evaluation.quality_probe import quality_probe
    from ..training.checkpoint import recorded_config
    from ..training.run_config import load_config
    from ..training.trainer import train

    name = config_path(args.config).stem  # the config's name, as load_config gives it
    run_dir = Path(args.out) if args.out else Path("runs") / name
    # a resume: the run's own config.ini may hold every key an earlier version wrote
    recorded = recorded_config(run_dir) if args.resume else None
    config = load_config(args.config, args.overrides, recorded=recorded)
    probe = quality_probe(config)  # training.eval_every: the quality curve, None when off
    try:
        with keys_given_as_flags({"run_dir": "--out"}):  # the folder, given or runs/<name>
            train(config, run_dir, resume=args.resume, overwrite=args.overwrite, probe=probe)
    except TrainingStopped as exc:
        if exc.reported:
            logger.info("continue with --resume")
        raise
    print(f"run folder: {run_dir}")
