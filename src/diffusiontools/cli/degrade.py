"""``diffusiontools degrade``: draw a cold degradation at five strengths (the report's Figure 9)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ..errors import UserError
from .flags import keys_as_flags, path_arg


def _levels(text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not two levels like 0.035,0.2") from None
    return low, high


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "degrade",
        help="draw a cold degradation at t = T, 0.75T, 0.5T, 0.25T, 0 on four test images",
    )
    p.add_argument("--degradation", help="pixel_swap, blur, pixelate or mask (default: --config's)")
    p.add_argument(
        "--levels",
        type=_levels,
        metavar="MIN,MAX",
        help="levels at t = 0 and t = T (default: --config's where it has this degradation, "
        "else the degradation's own)",
    )
    p.add_argument("--T", type=int, help="number of steps (default: --config's, else 100)")
    p.add_argument(
        "--config",
        type=path_arg,
        help="take degradation, levels, T and data from this INI (of a Gaussian config: its "
        "data only)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random fields (default 0)")
    p.add_argument(
        "--out",
        type=path_arg,
        help="image path (.png, .jpg, .jpeg, .pdf or .svg), replaced if it exists (default "
        "degradation_<name>.png in the current folder, which is never replaced: name it with "
        "--out to replace it)",
    )
    p.set_defaults(run=run)


def _as_flags(message: str, args: argparse.Namespace) -> str:
    """A config error in the flags given: ``diffusion.T=0`` -> ``--T 0``, the two levels ->
    ``--levels MIN,MAX``, the upper one alone -> ``MAX of --levels``."""
    if args.levels is not None:
        message = re.sub(
            r"diffusion\.level_min=(\S+), diffusion\.level_max=(\S+) are",
            r"--levels \1,\2 are",
            message,
        )
        message = message.replace("diffusion.level_max = ", "MAX of --levels = ")
        message = message.replace("level_min < level_max", "MIN < MAX")
    flags = {"diffusion.T": "--T", "diffusion.degradation": "--degradation"}
    given = {key: flag for key, flag in flags.items() if getattr(args, flag[2:]) is not None}
    return keys_as_flags(message, given)


def _base_config(args: argparse.Namespace) -> tuple[Path | None, list[str]]:
    """The INI the figure's config starts from and the overrides that carry over from it: a
    cold ``--config`` itself (its levels unset where ``--degradation`` names another
    degradation, whose own levels then apply); of a Gaussian one only the ``[data]`` keys it
    writes (its process has no degradation to draw), which needs ``--degradation``."""
    from ..config import ini_value, read_config, value_of

    if args.config is None:
        return None, []
    config, written = read_config(args.config)
    if config.diffusion.kind == "cold":
        if args.degradation not in (None, config.diffusion.degradation) and args.levels is None:
            return args.config, ["diffusion.level_min=", "diffusion.level_max="]
        return args.config, []
    if args.degradation is None:
        raise UserError(
            f"--config {args.config} is a Gaussian config, which has no degradation to draw: "
            "name one with --degradation NAME (the config's data are used)"
        )
    data_keys = sorted(key for key in written if key.startswith("data."))
    return None, [f"{key}={ini_value(value_of(config, key))}" for key in data_keys]


def run(args: argparse.Namespace) -> None:
    from ..outputs.degradation_figure import degradation_figure
    from ..outputs.safe_writes import check_output_file, refuse_existing
    from ..training.run_config import load_config

    if args.degradation is None and args.config is None:
        raise UserError("name a degradation with --degradation NAME or give --config INI")
    try:
        base, overrides = _base_config(args)
        overrides.append("diffusion.kind=cold")
        if args.degradation is not None:
            overrides.append(f"diffusion.degradation={args.degradation}")
        if args.levels is not None:
            overrides += [
                f"diffusion.level_min={args.levels[0]}",
                f"diffusion.level_max={args.levels[1]}",
            ]
        if args.T is not None or base is None:
            overrides.append(f"diffusion.T={100 if args.T is None else args.T}")
        config = load_config(base, overrides)
    except UserError as exc:  # name the flags typed, not the config keys they set
        raise UserError(_as_flags(str(exc), args)) from None
    out = args.out
    if out is None:  # a default in the current folder: never replaces an earlier figure
        out = Path(f"degradation_{config.diffusion.degradation}.png")
        refuse_existing([out], "name the file with --out to replace it")
    check_output_file(out, "out", "the figure", image=True)  # before the data are read
    print(f"degradation figure: {degradation_figure(config, out, args.seed)}")
