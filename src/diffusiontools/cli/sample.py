"""``diffusiontools sample RUN_DIR``: samples as a grid PNG and an NPZ, trajectories, epochs."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..errors import UserError


def _epoch_list(text: str) -> list[int]:
    try:
        epochs = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        epochs = []
    if not epochs:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of epochs")
    return epochs


IMAGE_FORMATS = ("png", "jpg", "jpeg", "pdf", "svg")  # what the grid may be saved as


def _as_flags(message: str, options: dict) -> str:
    """``sampling.eta=0.5 ...`` -> ``--eta 0.5 ...`` for the options given as flags."""
    for key, value in options.items():
        if value is not None:
            flag = "--" + key.replace("_", "-")
            message = message.replace(f"sampling.{key}=", f"{flag} ")
    return message


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("sample", help="draw samples from a trained run")
    p.add_argument("run_dir", help="run folder written by 'diffusiontools train'")
    p.add_argument("--epoch", type=int, help="checkpoint epoch (default: the latest)")
    p.add_argument("-n", type=int, default=16, help="number of samples (default 16)")
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
        help="grid PNG path (default: RUN_DIR/samples/sample_grid.png); trajectory.png and "
        "epochs.png go beside it",
    )
    p.add_argument("--npz", help="NPZ path for the images (default: RUN_DIR/samples/samples.npz)")
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
    import torch  # here, not at the top: --help and bad flags answer without loading torch

    from ..device import resolve_device
    from ..reporting.figures import save_image_rows, save_sample_grid
    from ..reporting.samples_io import save_samples
    from ..sampling.generation import generate, resolve_settings, trajectory
    from ..training.checkpoint import checkpoint_for
    from ..training.run_folder import ensure_writable
    from ..training.trained_model import load_trained

    if args.n < 1:
        raise UserError(f"-n {args.n} is not a number of samples: give at least 1")
    device = resolve_device(args.device)
    run_dir = Path(args.run_dir)
    # Every figure goes beside the grid: RUN_DIR/samples, or the folder of --out.
    out_dir = Path(args.out).parent if args.out else run_dir / "samples"
    # The checkpoint first: a mistyped run folder must not be created by the writability probe.
    model = load_trained(run_dir, args.epoch, device, use_ema=not args.no_ema)
    for epoch in args.epochs or ():  # before any drawing, so a typo costs no sampling time
        try:
            checkpoint_for(run_dir, epoch)
        except UserError as exc:
            raise UserError(f"in --epochs, {exc}") from None
    # Every setting checked before any drawing; the NPZ records these, not the flags as typed.
    options = {"sampler": args.sampler, "guidance": args.guidance, "eta": args.eta}
    options.update(clip_x0=args.clip_x0, start=args.start, timestep_spacing=args.timestep_spacing)
    try:
        config = model.sampling_config(**options)
        settings = resolve_settings(config, args.sampler, args.steps, args.digit)
    except UserError as exc:  # name the flag the user typed, not the config key it sets
        raise UserError(_as_flags(str(exc), options)) from None
    if args.eta is not None and settings.eta is None:
        raise UserError(
            f"--eta {args.eta} applies to the ddim sampler only, not {settings.sampler}"
        )
    if args.timestep_spacing is not None and settings.timestep_spacing is None:
        raise UserError(
            f"--timestep-spacing {args.timestep_spacing} applies to the ddim and dpm_solver "
            f"samplers only, not {settings.sampler}"
        )
    if args.out and Path(args.out).suffix.lower().lstrip(".") not in IMAGE_FORMATS:
        raise UserError(
            f"--out {args.out}: the grid is an image; end the name in one of "
            f"{', '.join('.' + f for f in sorted(IMAGE_FORMATS))}"
        )
    ensure_writable(out_dir)

    def draw(m, n: int) -> torch.Tensor:
        c = m.sampling_config(**options)
        return generate(
            m.net, m.process, c, n, args.seed, device, args.sampler, args.steps, args.digit
        )

    images = draw(model, args.n)
    grid_path = Path(args.out) if args.out else out_dir / "sample_grid.png"
    npz_path = Path(args.npz) if args.npz else out_dir / "samples.npz"
    title = f"{model.config.name}, epoch {model.epoch}"
    save_sample_grid(images, grid_path, title=f"{title}, n={args.n}")
    save_samples(
        npz_path,
        images,
        run=str(run_dir),
        epoch=model.epoch,
        seed=args.seed,
        **dataclasses.asdict(settings),
    )
    print(f"samples: {grid_path} and {npz_path}")
    if args.trajectory:
        n = min(args.n, 8)  # samples 0..n-1 of the grid: sample i depends only on seed and i
        times, states = trajectory(
            model.net,
            model.process,
            config,
            n,
            args.seed,
            device,
            args.sampler,
            args.steps,
            args.digit,
        )
        path = out_dir / "trajectory.png"
        save_image_rows(
            [torch.stack([s[k] for s in states]) for k in range(n)],
            [f"#{k}" for k in range(n)],
            [f"t={t}" for t in times],
            path,
            title=f"{title}, {settings.sampler} sampler, {settings.steps} steps",
        )
        print(f"trajectory: {path}")
    if args.epochs:
        n = min(args.n, 8)
        rows = [
            draw(load_trained(run_dir, e, device, use_ema=not args.no_ema), n) for e in args.epochs
        ]
        path = out_dir / "epochs.png"
        save_image_rows(
            rows,
            [f"epoch {e}" for e in args.epochs],
            [],
            path,
            title=f"{model.config.name}: samples 0..{n - 1} at stages of training",
        )
        print(f"samples across epochs: {path}")
