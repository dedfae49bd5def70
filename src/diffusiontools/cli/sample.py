"""``diffusiontools sample RUN_DIR``: samples as a grid PNG and an NPZ, trajectories, epochs
(``training/sample_files.py``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from .flags import keys_given_as_flags


def _epoch_list(text: str) -> list[int]:
    try:
        epochs = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        epochs = []
    if not epochs:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of epochs")
    return epochs


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
        help="run folder written by 'diffusiontools train', or an export folder written by "
        "'diffusiontools export'",
    )
    p.add_argument("--epoch", type=int, help="checkpoint epoch (default: the latest)")
    p.add_argument(
        "-n",
        type=int,
        default=16,
        help="number of samples (default 16), all in the NPZ and the first 256 in the grid; at "
        "most what the NPZ's disk holds (784 bytes a sample before compression)",
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--sampler", help="sampler name (default: the run's config, else the report's)")
    p.add_argument("--steps", type=int, help="network evaluations for few-step samplers")
    p.add_argument("--digit", type=int, help="class to draw (class-conditional models only)")
    p.add_argument("--eta", type=float, help="DDIM stochasticity in [0, 1] (ddim only)")
    p.add_argument(
        "--timestep-spacing",
        choices=("ours", "trailing", "leading", "linspace"),
        help="time grid of ddim / dpm_solver: ours, or diffusers' spacing of that name (to "
        "reproduce its scheduler's run exactly)",
    )
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (1 = none)")
    p.add_argument(
        "--clip-x0",
        action=argparse.BooleanOptionalAction,
        help="clamp every step's x0 prediction to the pixel range (Gaussian models)",
    )
    p.add_argument(
        "--start",
        choices=("auto", "test", "test_consistent", "gmm"),
        help="a cold model's x_T (default: the run's sampling.start)",
    )
    p.add_argument(
        "--no-ema", action="store_true", help="use raw weights even if the run kept EMA weights"
    )
    p.add_argument(
        "--out",
        help="grid image path, replaced if it exists (default: RUN_DIR/samples/sample_grid.png); "
        "samples.npz (without --npz), trajectory.png and epochs.png go beside it",
    )
    p.add_argument(
        "--npz",
        help="NPZ path for the images, replaced if it exists (default: samples.npz beside the "
        "grid)",
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
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from ..device import resolve_device
    from ..training.export import is_export
    from ..training.sample_files import sample_files, sample_to_files
    from ..training.trained_model import load_model

    device = resolve_device(args.device)
    folder = Path(args.run_dir)
    use_ema = not args.no_ema
    # The model first: a mistyped folder must not be created by the writability probe.
    model = load_model(folder, args.epoch, device, use_ema=use_ema)
    if args.epochs and is_export(folder):
        raise UserError(
            f"--epochs applies to run folders; the export {folder} holds the weights of one epoch"
        )
    epoch_models = []
    for epoch in args.epochs or ():  # every one loaded before any drawing
        try:
            epoch_models.append(load_model(folder, epoch, device, use_ema=use_ema))
        except UserError as exc:
            raise UserError(f"in --epochs, {exc}") from None
    files = sample_files(
        folder, args.out, args.npz, args.trajectory, bool(args.epochs), args.overwrite
    )
    options = {"guidance": args.guidance, "eta": args.eta, "clip_x0": args.clip_x0}
    options.update(start=args.start, timestep_spacing=args.timestep_spacing)
    given = {"sampler": args.sampler, **options}
    given = {f"sampling.{k}": "--" + k.replace("_", "-") for k, v in given.items() if v is not None}
    with keys_given_as_flags(given):  # name the flag the user typed, not the key it sets
        sample_to_files(
            model,
            files,
            args.n,
            args.seed,
            args.sampler,
            args.steps,
            args.digit,
            epoch_models,
            **options,
        )
    print(f"samples: {files.grid} and {files.npz}")
    if files.trajectory is not None:
        print(f"trajectory: {files.trajectory}")
    if files.epochs is not None:
        print(f"samples across epochs: {files.epochs}")
