"""``diffusiontools sample RUN_DIR``: samples as a grid PNG and an NPZ, trajectories, epochs
(``training/sample_files.py``)."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path

from ..config import SamplingConfig
from ..errors import UserError
from ..sampling.registry import OPTIONS, SAMPLERS, takers
from .flags import keys_given_as_flags, path_text

SAMPLING_FIELDS = {f.name: f for f in dataclasses.fields(SamplingConfig)}
SAMPLING_TYPES = typing.get_type_hints(SamplingConfig)


def _epoch_list(text: str) -> list[int]:
    try:
        epochs = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        epochs = []
    if not epochs:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of epochs")
    return epochs


def add_sampling_flags(p: argparse.ArgumentParser) -> None:
    """--sampler, --steps, --label (--digit) and one flag per sampling option, each with the
    help, type and choices of the sampler registry and the SamplingConfig fields."""
    samplers = "; ".join(f"{name} ({s.kind}): {s.help}" for name, s in SAMPLERS.items())
    p.add_argument(
        "--sampler",
        help=f"left out: the run's sampling.sampler; default: the report's for the model's kind "
        f"(ancestral, naive); or one of: {samplers}",
    )
    defaults = ", ".join(
        f"{name} {s.default_steps}" for name, s in SAMPLERS.items() if s.default_steps
    )
    p.add_argument(
        "--steps",
        type=int,
        help=f"sampler steps, 1..T (default: the run's, else all T; {defaults})",
    )
    p.add_argument(
        "--label",
        type=int,
        help="class to draw, 0..num_classes - 1 (class-conditional models only)",
    )
    p.add_argument("--digit", type=int, help="the digit to draw: --label for digit data sets")
    for name, option in OPTIONS.items():
        flag = "--" + name.replace("_", "-")
        text = f"{option.help}; taken by {', '.join(takers(name))}"
        if SAMPLING_TYPES[name] is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, help=text)
        else:
            choices = SAMPLING_FIELDS[name].metadata.get("choices")
            p.add_argument(flag, type=SAMPLING_TYPES[name], choices=choices, help=text)


def typed_flag(name: str, value: object) -> str:
    """The flag that gave option ``name`` its ``value``: ``--steps``, ``--clip-x0``, and for a
    boolean option's False ``--no-clip-x0`` (argparse.BooleanOptionalAction)."""
    return ("--no-" if value is False else "--") + name.replace("_", "-")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "sample",
        help="draw samples from a trained run or an export folder",
        description="Writes the files named by --out and --npz, replacing them if they exist. "
        "Files not named go beside the grid (samples.npz, trajectory.png, epochs.png); "
        "RUN_DIR/samples, sample's own folder, is replaced as a whole by each call that writes "
        "there, but elsewhere a file not named that exists is refused before anything is drawn, "
        "unless --overwrite. The files appear once all are drawn: an interrupted call leaves "
        "every folder as it was. The n samples are drawn and written 500 at a time, so memory "
        "stays small whatever -n.",
    )
    p.add_argument(
        "run_dir",
        type=path_text,
        help="run folder written by 'diffusiontools train', or an export folder written by "
        "'diffusiontools export'",
    )
    p.add_argument("--epoch", type=int, help="checkpoint epoch (default: the latest)")
    p.add_argument(
        "-n",
        type=int,
        default=16,
        help="number of samples (default 16), all in the NPZ and the first 256 in the grid; at "
        "most what the NPZ's disk holds (C x H x W bytes a sample before compression: 784 "
        "for MNIST)",
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    add_sampling_flags(p)
    p.add_argument(
        "--no-ema", action="store_true", help="use raw weights even if the run kept EMA weights"
    )
    p.add_argument(
        "--out",
        type=path_text,
        help="grid image path, replaced if it exists (default: RUN_DIR/samples/sample_grid.png); "
        "samples.npz (without --npz), trajectory.png and epochs.png go beside it",
    )
    p.add_argument(
        "--npz",
        type=path_text,
        help="NPZ path for the images, replaced if it exists (default: samples.npz beside the "
        "grid)",
    )
    p.add_argument(
        "--unclamped",
        action="store_true",
        help="also keep the samples as drawn in the NPZ ('unclamped', float32, 4 bytes a value): "
        "values beyond [-0.5, 0.5], which the images saturate, count at their full size in "
        "evaluate's unclamped total variance, the report's",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the files sample names itself (samples.npz, trajectory.png, epochs.png) "
        "beside an --out grid outside RUN_DIR/samples",
    )
    p.add_argument(
        "--trajectory",
        action="store_true",
        help="also draw the reverse process at fractions 1, 0.5, 0.1, 0.05, 0 of T",
    )
    p.add_argument(
        "--epochs",
        type=_epoch_list,
        help="comma-separated epochs, e.g. 20,40,60: draw samples at those stages of training",
    )
    p.add_argument(
        "--data-dir",
        type=path_text,
        help="where the run's data lie now, if they moved since training: its folder (data.dir; "
        "an NPZ data set's file), which a cold model samples from (default: the run's data.dir)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from ..device import resolve_device

    device = resolve_device(args.device)
    folder = Path(args.run_dir)
    use_ema = not args.no_ema
    options = {name: getattr(args, name) for name in OPTIONS}
    given = {"sampler": args.sampler, "steps": args.steps, **options}
    given = {f"sampling.{k}": typed_flag(k, v) for k, v in given.items() if v is not None}
    if args.data_dir is not None:
        given["data.dir"] = "--data-dir"
    # Errors name the flag the user typed, not the key it sets.
    with keys_given_as_flags(given):
        _sample(args, folder, device, use_ema, options)


def _sample(args, folder: Path, device, use_ema: bool, options: dict) -> None:
    """The sample command once its flags are read: load, check, draw, write, say where."""
    from ..training.run_folder import RunFolder
    from ..training.sample_files import check_draw, sample_files, sample_to_files
    from ..training.trained_model import load_model

    # The model first: a mistyped folder must not be created by the writability probe.
    model = load_model(folder, args.epoch, device, use_ema=use_ema, data_dir=args.data_dir)
    if args.data_dir is not None and model.process.kind != "cold":
        raise UserError(  # an option that cannot take effect is refused, not ignored
            f"--data-dir applies to cold models, which start from their data's images; {folder} "
            f"is a {model.process.kind} model, whose sampling reads no data"
        )
    if args.epochs and RunFolder(model.folder).is_export:  # a shipped model's name: its export
        raise UserError(
            f"--epochs applies to run folders; the export {model.folder} holds the weights of "
            "one epoch"
        )
    epoch_models = []
    for epoch in args.epochs or ():  # every one loaded before any drawing
        try:
            epoch_models.append(
                load_model(folder, epoch, device, use_ema=use_ema, data_dir=args.data_dir)
            )
        except UserError as exc:
            raise UserError(f"in --epochs, {exc}") from None
    draw = (args.sampler, args.steps, args.digit, epoch_models)
    check_draw(model, args.n, *draw, label=args.label, **options)  # the request, then the files
    files = sample_files(
        folder, args.out, args.npz, args.trajectory, bool(args.epochs), args.overwrite
    )
    sample_to_files(
        model,
        files,
        args.n,
        args.seed,
        *draw,
        unclamped=args.unclamped,
        label=args.label,
        **options,
    )
    print(f"samples: {files.grid} and {files.npz}")
    if files.trajectory is not None:
        print(f"trajectory: {files.trajectory}")
    if files.epochs is not None:
        print(f"samples across epochs: {files.epochs}")
