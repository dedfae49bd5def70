"""``diffusiontools evaluate RUN_DIR ...``: report and classifier metrics of runs, side by side."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from .flags import data_overrides, keys_given_as_flags, path_arg, path_text


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="score samples of one or more runs (or NPZ files) in one table"
    )
    p.add_argument(
        "run_dirs",
        nargs="*",
        type=path_arg,
        metavar="RUN_DIR",
        help="run folders written by 'diffusiontools train', or export folders written by "
        "'diffusiontools export'",
    )
    p.add_argument(
        "--n-samples",
        type=int,
        default=None,
        help="samples per set, 10..10000 (default: 200 per run, as the report; every image of "
        "an NPZ, at most 10000)",
    )
    p.add_argument("--epoch", type=int, help="checkpoint epoch of every run (default: the latest)")
    p.add_argument("--sampler", help="sampler name (default: each run's config)")
    p.add_argument("--steps", type=int, help="network evaluations for few-step samplers")
    p.add_argument(
        "--npz",
        nargs="+",
        action="extend",
        type=path_arg,
        default=[],
        metavar="FILE",
        help="score samples from NPZ files (images uint8 of the data's shape: (N, H, W) gray or "
        "(N, C, H, W)) instead of runs; repeatable",
    )
    p.add_argument(
        "--label",
        nargs="+",
        action="extend",
        default=[],
        metavar="NAME",
        help="column names, one per RUN_DIR then per NPZ (default: folder/file names)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of sampling, t-SNE, mixtures, KID and bootstrap (default 0)",
    )
    p.add_argument(
        "--tsne-reference",
        type=int,
        help="test images in the joint t-SNE (default: every test image, at most 10000; "
        "MNIST's 10000 are the report's)",
    )
    p.add_argument(
        "--tsne-samples",
        metavar="images|unclamped",
        help="what of each set the joint t-SNE (and every KL) embeds: images, the images as "
        "shown (default), or unclamped, the samples as drawn, as the report's t-SNE did (every "
        "set must hold them: runs, and NPZ files written by sample --unclamped)",
    )
    p.add_argument(
        "--test-reference",
        type=int,
        help="test images behind the classifier metrics and memorisation baseline (default: "
        "every test image, at most 10000)",
    )
    p.add_argument(
        "--n-boot",
        type=int,
        default=1000,
        help="bootstrap resamples of the per-sample means: confidence, recognisable fraction, "
        "memorisation (default 1000)",
    )
    p.add_argument(
        "--n-boot-set",
        type=int,
        default=100,
        help="half-samples (N/2 distinct samples each) of the set-level metrics: total variance, "
        "Fréchet distance, KID, precision/recall, class entropy (default 100, at least 2)",
    )
    p.add_argument(
        "--out",
        type=path_arg,
        default=Path("evaluation"),
        help="output folder (default ./evaluation); one that holds an evaluation is refused "
        "unless --overwrite",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the evaluation (or --reconstruction study) in --out: its files are "
        "replaced, other files stay",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="data.KEY=VALUE",
        help="set one [data] key of the data NPZ files are scored against (default MNIST), e.g. "
        "data.dataset=digits8; repeatable; RUN_DIRs use the [data] settings stored in their "
        "checkpoints, which the keys given must then equal",
    )
    p.add_argument(
        "--data-dir",
        type=path_text,
        help="the data's folder, data.dir, for NPZ files (MNIST default: $DIFFUSIONTOOLS_DATA or "
        "the cache); for RUN_DIRs, where their data lie now if they moved since training (their "
        "stored [data] settings with this data.dir; the data found must be theirs)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--reconstruction",
        action="store_true",
        help="instead, run 'diffusiontools reconstruct' on each (cold) RUN_DIR, with "
        "-n = --n-samples, into OUT/reconstruction_<run name>",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from ..config import read_config
    from ..device import resolve_device
    from ..errors import UserError
    from ..evaluation.comparison import evaluate
    from ..evaluation.settings import RUN_SAMPLES, EvaluationSettings

    if args.reconstruction and (args.sampler or args.steps is not None):
        raise UserError(
            "--sampler and --steps do not apply to --reconstruction, which runs the naive and "
            "improved cold samplers over all T steps"
        )
    if not args.run_dirs and (args.sampler or args.steps is not None or args.epoch is not None):
        raise UserError("--sampler, --steps and --epoch apply to RUN_DIRs; no RUN_DIR was given")
    if args.reconstruction:
        from ..evaluation.reconstruction import markdown_table, reconstruction_studies
        from ..outputs.safe_writes import check_output_folder

        if not args.run_dirs or args.npz:
            raise UserError("--reconstruction needs RUN_DIRs of cold runs and no --npz")
        check_output_folder(args.out, "out", "the reconstruction studies")  # as typed
        outs = [args.out / f"reconstruction_{run_dir.name}" for run_dir in args.run_dirs]
        try:
            results = reconstruction_studies(
                args.run_dirs,
                RUN_SAMPLES if args.n_samples is None else args.n_samples,
                args.epoch,
                seed=args.seed,
                device=resolve_device(args.device),
                out_dirs=outs,
                overwrite=args.overwrite,
                data_dir=args.data_dir,
            )
        except UserError as exc:  # the study's n is --n-samples here, not -n
            raise UserError(re.sub(r"(?<![\w.\-])n=", "n_samples=", str(exc))) from None
        for run_dir, out, result in zip(args.run_dirs, outs, results, strict=True):
            print(f"{run_dir}:\n{markdown_table(result)}reconstruction: {out}")
        return
    flags = {"data.dir": (args.data_dir, "--data-dir"), "sampling.steps": (args.steps, "--steps")}
    given = {key: flag for key, (value, flag) in flags.items() if value is not None}
    overrides = data_overrides(args.overrides, args.data_dir, "evaluate")
    with keys_given_as_flags(given):  # name the flag typed, not the key it sets
        data, written = read_config(None, overrides)
        npz_data = {
            key: getattr(data.data, key) for _, key in sorted(k.split(".") for k in written)
        }
        # RUN_DIRs: their own [data] settings, read where data.dir says their data lie now.
        data_dir = npz_data.pop("dir", None) if args.run_dirs else None
        settings = EvaluationSettings(
            n_samples=args.n_samples,
            sampler=args.sampler,
            steps=args.steps,
            seed=args.seed,
            tsne_reference=args.tsne_reference,
            test_reference=args.test_reference,
            n_boot=args.n_boot,
            n_boot_set=args.n_boot_set,
            **({} if args.tsne_samples is None else {"tsne_samples": args.tsne_samples}),
        )
        results = evaluate(
            args.run_dirs,
            args.npz,
            args.label,
            args.out,
            settings,
            args.epoch,
            resolve_device(args.device),
            npz_data or None,
            args.overwrite,
            data_dir,
        )
    for label, result in results["runs"].items():
        source = result["source"]
        whole = f" of {source['npz_images']} in {source['npz']}" if "npz" in source else ""
        print(f"{label}: {result['n_samples']} samples{whole}")
    print(
        f"metrics: {args.out / 'metrics.json'} and {args.out / 'metrics.md'}; figures in {args.out}"
    )
