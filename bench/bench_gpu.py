"""Benchmark (GPU, prepared): training and sampling speed, then faithful model 1 in the time left.

Run through ``bash bench/gpu.sh [OUT_DIR]``, which installs the package first and keeps the whole
run under 8 minutes; or as ``python -m bench.bench_gpu OUT_DIR [--budget-s 450] [--smoke]``.
``--smoke`` runs every part with tiny sizes on whatever device there is (the CPU included), to
check that the script works; its figures mean nothing. Four parts, each within its share of the
budget, the results written to ``OUT_DIR/gpu_results.json`` after each part:

1. training images/s of one optimiser step (the trainer's: noise, DDPM loss, backward, Adam),
   batch 128 as both configs train, for the faithful CNN (model 1) and the quickstart UNet, in
   fp32, bf16 autocast, ``torch.compile`` and CUDA graphs (``torch.compile`` mode
   "reduce-overhead"); the batches come from a uint8 tensor on the device, as in the trainer;
   compiling is timed apart from the timed steps. Variants that do not fit the part's share of
   the budget are recorded as skipped;
2. sampling: network evaluations on batches of 1,000 images, in image-evals/s, fp32 and bf16;
3. faithful model 1 (``configs/model1.ini``, fp32, the trainer unchanged) on full MNIST from
   ``$DIFFUSIONTOOLS_DATA`` (else the embedded subset, said so in the results), trained in
   resumed chunks for as many whole epochs as fit before the budget's end less a reserve for 4;
4. 1,000 samples of it with its own sampler (the 1000-step ancestral one), scored by the
   project's MNIST classifier against the test set (Fréchet distance, class entropy,
   recognisable fraction); the first 64 as ``model1_samples.png``, beside the run's
   ``model1_metrics.csv`` and ``model1_learning_curve.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from diffusiontools.config import Config, DiffusionConfig, ModelConfig
from diffusiontools.data import load_mnist, to_model
from diffusiontools.diffusion.gaussian import GaussianDiffusion
from diffusiontools.errors import DiffusionToolsError
from diffusiontools.evaluation.class_metrics import (
    class_entropy,
    class_histogram,
    recognisable_fraction,
)
from diffusiontools.evaluation.classifier import load_classifier
from diffusiontools.evaluation.feature_metrics import classifier_features, frechet_distance
from diffusiontools.models import make_network
from diffusiontools.outputs.figures import save_sample_grid
from diffusiontools.sampling.generation import generate
from diffusiontools.training.run_config import load_config
from diffusiontools.training.trained_model import load_trained
from diffusiontools.training.trainer import _make_optimizer, train

from .machine import describe, recorded

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Sizes:
    batch: int  # training batch (the configs': 128)
    steps: int  # timed training steps per variant
    eval_batch: int  # images per network evaluation when sampling
    evals: int  # timed evaluations per variant
    n_samples: int  # samples of model 1, scored
    overrides: tuple[str, ...]  # model 1's config changes (none but the device in a full run)
    reserve_s: float  # seconds kept for part 4


FULL = Sizes(128, 50, 1000, 20, 1000, (), 60.0)
SMOKE = Sizes(
    8,
    2,
    16,
    2,
    16,
    ("data.subset=200", "training.batch_size=16", "diffusion.T=20", "training.save_every=1"),
    10.0,
)
# (name, autocast to bf16, torch.compile mode or None): cheapest first, so a short budget keeps
# the baseline of both networks and drops the slowest to compile.
VARIANTS = [
    ("fp32", False, None),
    ("bf16 autocast", True, None),
    ("torch.compile, bf16", True, "default"),
    ("CUDA graphs (compile reduce-overhead), bf16", True, "reduce-overhead"),
    ("torch.compile, fp32", False, "default"),
    ("CUDA graphs (compile reduce-overhead), fp32", False, "reduce-overhead"),
]
NETWORKS = {"faithful CNN (model 1)": "model1", "quickstart UNet": "quickstart"}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, bf16: bool):
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def training_step(
    model: ModelConfig, device: torch.device, batch: int, bf16: bool, mode: str | None
) -> Callable[[], None]:
    """One training step as the trainer takes it, on stand-in uint8 images held on the device
    (speed does not depend on the pixel values); labels for a class-conditional network."""
    net = make_network(model, seed=0, shape=(1, 28, 28)).to(device)
    process = GaussianDiffusion.from_config(DiffusionConfig()).to(device)
    optimizer = _make_optimizer(net, Config(model=model), device)
    if mode:
        torch._dynamo.reset()  # each variant compiles afresh, never hitting the recompile limit
    step_net = torch.compile(net, mode=mode) if mode else net
    generator = torch.Generator(device).manual_seed(0)
    images = torch.randint(0, 256, (batch, 28, 28), dtype=torch.uint8, device=device)
    labels = torch.arange(batch, device=device) % 10 if model.num_classes else None

    def step() -> None:
        x0 = to_model(images)
        noise = process.draw_noise(x0.shape, generator, device)
        with autocast(device, bf16):
            loss = process.loss(step_net, x0, noise, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def timed(fn: Callable[[], None], n: int, device: torch.device) -> float:
    """Seconds for ``n`` calls of ``fn``, the device synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(n):
        fn()
    synchronize(device)
    return time.perf_counter() - start


def measure_training(
    sizes: Sizes, device: torch.device, deadline: float, compile_off_cuda: bool = False
) -> dict:
    """Part 1: images/s of every variant that fits before ``deadline``."""
    out: dict = {}
    for name, bf16, mode in VARIANTS:
        for label, config in NETWORKS.items():
            key = f"{label}, {name}"
            if mode and device.type != "cuda" and not compile_off_cuda:
                out[key] = "skipped: torch.compile variants are measured on CUDA only"
                continue
            if time.monotonic() > deadline:
                out[key] = "skipped: past this part's share of the budget"
                continue
            try:
                step = training_step(load_config(config).model, device, sizes.batch, bf16, mode)
                warmup_s = timed(step, 3, device)  # compiles, captures graphs, tunes cuDNN
                seconds = timed(step, sizes.steps, device)
            except Exception as exc:  # a variant that fails here is a figure, not a crash
                out[key] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            else:
                out[key] = {
                    "images_per_s": sizes.steps * sizes.batch / seconds,
                    "warmup_s": warmup_s,
                }
            print(f"  train  {key:60s} {_show(out[key])}", flush=True)
    return out


def _forward(net, x: torch.Tensor, t: torch.Tensor, device: torch.device, bf16: bool):
    def evaluate() -> None:
        with autocast(device, bf16):
            net(x, t)

    return evaluate


@torch.no_grad()
def measure_sampling(sizes: Sizes, device: torch.device) -> dict:
    """Part 2: image-evals/s of each network's forward pass on sampling-sized batches."""
    out: dict = {}
    for label, config in NETWORKS.items():
        net = make_network(load_config(config).model, seed=0, shape=(1, 28, 28)).to(device).eval()
        x = torch.randn(sizes.eval_batch, 1, 28, 28, device=device)
        t = torch.rand(sizes.eval_batch, device=device)
        for name, bf16 in (("fp32", False), ("bf16 autocast", True)):
            evaluate = _forward(net, x, t, device, bf16)
            timed(evaluate, 2, device)
            seconds = timed(evaluate, sizes.evals, device)
            key = f"{label}, {name}"
            out[key] = {"image_evals_per_s": sizes.evals * sizes.eval_batch / seconds}
            print(f"  sample {key:60s} {_show(out[key])}", flush=True)
    return out


def data_source() -> str:
    """``mnist`` when the full MNIST files are on this machine, else ``embedded``."""
    try:
        load_mnist(None, "mnist", download=False)
        return "mnist"
    except DiffusionToolsError:
        return "embedded"


def train_model1(sizes: Sizes, device: torch.device, run_dir: Path, deadline: float) -> dict:
    """Part 3: faithful model 1 in resumed chunks of whole epochs until ``deadline``."""
    source = data_source()
    overrides = [f"training.device={device}", f"data.source={source}", *sizes.overrides]
    path = REPO / "configs" / "model1.ini"
    done, epoch_s, started = 0, None, time.monotonic()
    while True:
        left = deadline - time.monotonic()
        if epoch_s is None:
            target = 1  # the first epoch measures an epoch's cost, set-up included
        elif left < epoch_s:
            break
        else:
            target = done + int(0.9 * left / epoch_s) if left > 2 * epoch_s else done + 1
        config = load_config(path, [*overrides, f"training.epochs={target}"])
        chunk_start = time.monotonic()
        with contextlib.redirect_stderr(io.StringIO()):  # the progress bar; the log lines stay
            train(config, run_dir, resume=done > 0, overwrite=done == 0)
        epoch_s = (time.monotonic() - chunk_start) / (target - done)
        done = target
        print(f"  model 1: {done} epochs, {epoch_s:.1f} s per epoch in the last chunk", flush=True)
    return {
        "data_source": source,
        "overrides": overrides,
        "epochs": done,
        "training_s": time.monotonic() - started,
        "last_seconds_per_epoch": epoch_s,
    }


def sample_and_score(sizes: Sizes, device: torch.device, run_dir: Path, out_dir: Path) -> dict:
    """Part 4: samples of the trained model 1 with its own sampler, scored and drawn."""
    model = load_trained(run_dir, None, device)
    started = time.monotonic()
    images = generate(
        model.net, model.process, model.config, sizes.n_samples, 0, device, shape=model.shape
    )
    sampling_s = time.monotonic() - started
    save_sample_grid(
        images[:64].cpu(), out_dir / "model1_samples.png", title=f"model 1, epoch {model.epoch}"
    )
    for name in ("metrics.csv", "learning_curve.png"):
        if (run_dir / name).exists():
            shutil.copy(run_dir / name, out_dir / f"model1_{name}")
    classifier = load_classifier(device)
    source = model.data.get("source", "mnist") if model.data else "mnist"
    test = to_model(load_mnist(None, source, download=False).test_images)
    test_feats, _ = classifier_features(classifier, test, device)
    feats, probs = classifier_features(classifier, images.clamp(-0.5, 0.5), device)
    return {
        "sampler": model.config.sampling.sampler,
        "n": sizes.n_samples,
        "sampling_s": sampling_s,
        "test_images": len(test),
        "frechet": frechet_distance(feats, test_feats) if len(feats) > 1 else None,
        "class_entropy": class_entropy(class_histogram(probs)),
        "recognisable_fraction": recognisable_fraction(probs),
    }


def _show(result) -> str:
    if isinstance(result, str):
        return result
    return ", ".join(f"{k} {v:.1f}" for k, v in result.items())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "out", nargs="?", type=Path, default=None, help="output folder (default: $OUT)"
    )
    parser.add_argument(
        "--budget-s", type=float, default=None, help="seconds for all 4 parts (450; smoke: 60)"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check the script")
    parser.add_argument(
        "--smoke-compile", action="store_true", help="with --smoke: also compile off CUDA"
    )
    args = parser.parse_args(argv)
    out_dir = args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else None)
    if out_dir is None:
        parser.error("give an output folder or set $OUT")
    budget = args.budget_s or (60.0 if args.smoke else 450.0)
    started = time.monotonic()
    deadline = started + budget
    if torch.cuda.is_available():
        device = torch.device("cuda")
    elif args.smoke:
        device = torch.device("cpu")
    else:
        parser.error("no CUDA GPU is visible to torch; --smoke checks the script on the CPU")
    sizes = SMOKE if args.smoke else FULL
    logging.getLogger("diffusiontools").setLevel(logging.INFO)
    logging.basicConfig(format="  %(message)s")
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "machine": describe(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "smoke": args.smoke,
        "budget_s": budget,
    }
    print(f"{results['machine']}; device {results['device']}", flush=True)

    def write() -> None:
        results["elapsed_s"] = time.monotonic() - started
        (out_dir / "gpu_results.json").write_text(json.dumps(results, indent=2) + "\n")

    run_dir = Path(tempfile.mkdtemp(prefix="bench-gpu-model1-"))
    try:
        # On a GPU the bench keeps one CPU thread busy (the launches); on the CPU, torch's threads.
        with recorded("gpu bench", own=1 if device.type == "cuda" else None) as load:
            results["training_images_per_s"] = measure_training(
                sizes, device, started + 0.4 * budget, args.smoke_compile
            )
            write()
            results["sampling"] = measure_sampling(sizes, device)
            write()
            results["model1"] = train_model1(sizes, device, run_dir, deadline - sizes.reserve_s)
            write()
            results["model1"]["samples"] = sample_and_score(sizes, device, run_dir, out_dir)
        results["load_average"] = {"before": load.before, "after": load.after, "busy": load.busy}
        write()
        print(json.dumps(results["model1"], indent=2))
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
