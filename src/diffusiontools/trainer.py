"""The training loop: it takes a forward process and a network and knows nothing else about either.

One epoch = one pass over the in-memory training split in shuffled batches (drop_last), each a
single index into a uint8 tensor. After each epoch: a validation loss on fixed randomness (so
epochs are comparable), a row in ``metrics.csv``, the learning curve, and an atomic checkpoint. A
checkpoint also records the position inside an epoch, so an interrupted run resumes at the exact
step and, on CPU with the same seed, reproduces the uninterrupted run's losses and weights.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from . import checkpoint as ckpt_io
from . import distributed, run_folder
from .config import Config, to_ini
from .data import load_mnist, shuffled_batches, to_model, train_val_split
from .device import resolve_device
from .errors import UserError
from .figures import save_learning_curve, save_sample_grid
from .networks import make_network
from .processes import make_process
from .sampling import IMAGE_SHAPE, generate

VALIDATION_SEED_OFFSET = 1_000_003  # validation randomness is fixed, and apart from training's


class NonFiniteLoss(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainState:
    """Everything that changes during training and must survive a resume."""

    epoch: int = 0  # the epoch in progress (or the next to start when batch == 0)
    batch: int = 0  # batches of ``epoch`` already done
    step: int = 0  # optimiser steps so far
    loss_sum: float = 0.0  # sum of this epoch's batch losses so far
    epoch_seconds: float = 0.0  # time spent in this epoch so far
    data_rng_at_epoch_start: torch.Tensor | None = None
    history: list[dict] = field(default_factory=list)


@dataclass
class TrainingData:
    train: torch.Tensor  # (N, 28, 28) uint8 on the device
    train_labels: torch.Tensor  # (N,) int64 on the device
    val: torch.Tensor
    val_labels: torch.Tensor
    provenance: dict


def load_training_data(config: Config, device: torch.device) -> TrainingData:
    """MNIST training images (optionally the first ``data.subset``), split 80/20 as the report."""
    mnist = load_mnist(config.data.dir, config.data.source)
    images, labels = mnist.train_images, mnist.train_labels
    if config.data.subset is not None:
        images, labels = images[: config.data.subset], labels[: config.data.subset]
    train_idx, val_idx = train_val_split(
        len(images), config.data.val_fraction, config.data.split_seed
    )
    if config.training.batch_size > len(train_idx):
        raise UserError(
            f"training.batch_size={config.training.batch_size} is larger than the "
            f"{len(train_idx)} training images; lower it or raise data.subset"
        )
    provenance = {
        **mnist.provenance,
        "subset": config.data.subset,
        "n_train_split": len(train_idx),
        "n_val_split": len(val_idx),
    }
    return TrainingData(
        images[train_idx].to(device),
        labels[train_idx].to(device),
        images[val_idx].to(device),
        labels[val_idx].to(device),
        provenance,
    )


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked between steps, so a kill finishes the step,
    writes a checkpoint and exits with the conventional code (128 + signal number)."""

    def __init__(self):
        self.signum: int | None = None

    def __enter__(self) -> StopRequest:
        self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame) -> None:
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)


def _labels_for_guidance(
    y: torch.Tensor, config: Config, generator: torch.Generator
) -> torch.Tensor | None:
    """Class labels with a fraction dropped to the null label (classifier-free guidance)."""
    m = config.model
    if not m.num_classes:
        return None
    drop = torch.rand(y.shape, device=y.device, generator=generator) < m.class_dropout
    return torch.where(drop, torch.full_like(y, m.num_classes), y)


@torch.no_grad()
def validation_loss(process, net: nn.Module, data: TrainingData, config: Config, device) -> float:
    """Mean loss over the validation split with the same t and noise every epoch."""
    net.eval()
    generator = torch.Generator(device).manual_seed(config.training.seed + VALIDATION_SEED_OFFSET)
    batch_size = config.training.batch_size
    n_batches = max(1, len(data.val) // batch_size)
    if config.training.val_batches:
        n_batches = min(n_batches, config.training.val_batches)
    total = torch.zeros((), device=device)
    for b in range(n_batches):
        sl = slice(b * batch_size, (b + 1) * batch_size)
        y = _labels_for_guidance(data.val_labels[sl], config, generator)
        total += process.training_loss(net, to_model(data.val[sl]), generator, y)
    net.train()
    return float(total) / n_batches


def _make_optimizer(net: nn.Module, config: Config, device: torch.device) -> torch.optim.Optimizer:
    """Adam with default betas, no weight decay (the notebook); fused kernels on CUDA."""
    fused = device.type == "cuda"
    return torch.optim.Adam(net.parameters(), lr=config.training.lr, fused=fused)


def _make_ema(net: nn.Module, decay: float):
    if not decay:
        return None
    return torch.optim.swa_utils.AveragedModel(
        net, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay)
    )


def _rng_state(data_gen: torch.Generator, step_gen: torch.Generator) -> dict:
    return {"data": data_gen.get_state(), "step": step_gen.get_state()}


def _save(
    path: Path, config: Config, state: TrainState, net, ema, optimizer, data_gen, step_gen
) -> None:
    """Write a checkpoint; a full disk or a vanished folder becomes a one-line error, and the
    atomic write leaves the previous checkpoint under ``path`` as it was."""
    try:
        ckpt_io.save_atomic(
            _checkpoint(config, state, net, ema, optimizer, data_gen, step_gen), path
        )
    except OSError as exc:
        raise UserError(
            f"could not write checkpoint {path}: {exc.strerror or exc}; the previous checkpoint "
            f"(if any) is kept; free space or fix the folder, then continue with --resume"
        ) from None


def _checkpoint(config: Config, state: TrainState, net, ema, optimizer, data_gen, step_gen) -> dict:
    return {
        "format_version": ckpt_io.FORMAT_VERSION,
        "config": config.to_dict(),
        "epoch": state.epoch,
        "batch": state.batch,
        "step": state.step,
        "loss_sum": state.loss_sum,
        "epoch_seconds": state.epoch_seconds,
        "data_rng_at_epoch_start": state.data_rng_at_epoch_start,
        "model": net.state_dict(),
        "ema": None if ema is None else ema.module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": _rng_state(data_gen, step_gen),
        "history": state.history,
    }


def train(
    config: Config,
    run_dir: Path,
    resume: bool = False,
    overwrite: bool = False,
) -> Path:
    """Train ``config`` into ``run_dir``; returns the run folder. See the module docstring.

    Under torchrun, every process calls this; rank 0 owns the folder (see ``distributed``).
    """
    run_dir = Path(run_dir)
    device = resolve_device(config.training.device)
    ranks = distributed.from_environment(device)
    try:
        with contextlib.ExitStack() as stack:
            if ranks.is_main:
                run_folder.ensure_writable(run_dir)
                # Lock first: --overwrite must never delete the checkpoints of a running training.
                stack.enter_context(run_folder.RunLock(run_dir))
            stop = stack.enter_context(StopRequest())
            if ranks.is_main:
                run_folder.prepare(run_dir, resume, overwrite)
                ckpt_io.remove_stale_temporaries(run_dir)  # left by a kill mid-write
            ranks.barrier()  # the other ranks start once the folder is ready
            return _train_locked(config, run_dir, resume, stop, ranks, ranks.device(device))
    finally:
        distributed.shutdown(ranks)


def _restore(path: Path, net, ema, optimizer, data_gen, step_gen) -> TrainState:
    """Load a checkpoint's weights, optimiser, EMA and generators in place; return its state.

    Loaded onto the CPU: generator states must be CPU byte tensors even for a CUDA generator, and
    ``load_state_dict`` copies everything else onto the parameters' device.
    """
    ckpt = ckpt_io.load_checkpoint(path, map_location="cpu")
    ckpt_io.load_weights(net, ckpt["model"], path)
    try:
        optimizer.load_state_dict(ckpt["optimizer"])
        state = TrainState(
            ckpt["epoch"],
            ckpt["batch"],
            ckpt["step"],
            ckpt["loss_sum"],
            ckpt["epoch_seconds"],
            ckpt["data_rng_at_epoch_start"],
            ckpt["history"],
        )
        if ema is not None and ckpt["ema"] is not None:  # else the average starts now
            ema.module.load_state_dict(ckpt["ema"])
            # AveragedModel copies the weights on its first update (n_averaged == 0): restore the
            # count, one update per step, or the average would restart from the current weights.
            ema.n_averaged.fill_(state.step)
        data_gen.set_state(ckpt["rng"]["data"])
        step_gen.set_state(ckpt["rng"]["step"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"checkpoint {path} cannot be resumed: it lacks or garbles {exc}") from None
    return state


def _train_locked(
    config: Config,
    run_dir: Path,
    resume: bool,
    stop: StopRequest,
    ranks: distributed.Ranks,
    device: torch.device,
) -> Path:
    tc = config.training
    ranks.check_batch(tc.batch_size)
    torch.manual_seed(tc.seed)  # network initialisation
    net = make_network(config.model).to(device)
    process = make_process(config).to(device)
    optimizer = _make_optimizer(net, config, device)
    ema = _make_ema(net, tc.ema_decay)
    data_gen = torch.Generator().manual_seed(tc.seed)  # batch order, on CPU: identical everywhere
    step_gen = torch.Generator(device).manual_seed(tc.seed + 1)  # t and noise, on the device
    state = TrainState()

    if resume:
        state = _restore(ckpt_io.latest_path(run_dir), net, ema, optimizer, data_gen, step_gen)
        if ranks.is_main:
            print(f"resuming {run_dir} at epoch {state.epoch}, step {state.step}", file=sys.stderr)

    data = load_training_data(config, device)
    if ranks.is_main:
        (run_dir / run_folder.CONFIG_FILE).write_text(to_ini(config))
        run_folder.write_json(run_dir / run_folder.DATA_FILE, data.provenance)
    if config.training.channels_last:
        net = net.to(memory_format=torch.channels_last)
    step_net = ranks.wrap(net, device)
    step_net = torch.compile(step_net) if tc.compile else step_net
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if tc.amp == "bf16" and device.type == "cuda"
        else contextlib.nullcontext()
    )
    train_idx = torch.arange(len(data.train))
    steps_per_epoch = len(train_idx) // tc.batch_size

    def save(path: Path) -> None:
        if ranks.is_main:
            _save(path, config, state, net, ema, optimizer, data_gen, step_gen)

    while state.epoch < tc.epochs and not _reached_max_steps(state, tc):
        if state.batch == 0:
            state.data_rng_at_epoch_start = data_gen.get_state()
        else:  # resuming mid-epoch: replay this epoch's permutation and skip what is done
            data_gen.set_state(state.data_rng_at_epoch_start)
        batches = list(shuffled_batches(train_idx, tc.batch_size, data_gen))
        recent = torch.zeros(min(100, steps_per_epoch), device=device)  # last-100 running mean
        first_bad = torch.full((), -1, dtype=torch.long, device=device)  # step of the first NaN/inf
        loss_sum = torch.tensor(state.loss_sum, device=device, dtype=torch.float64)
        started, first_batch, signum = time.perf_counter(), state.batch, 0
        bar = tqdm(
            total=steps_per_epoch,
            initial=state.batch,
            desc=f"epoch {state.epoch}",
            leave=False,
            dynamic_ncols=True,
            file=sys.stderr,
            disable=not ranks.is_main,
        )
        with bar:  # closed on an error too, so that the error line is the last thing printed
            for idx in batches[state.batch :]:
                # The global batch's labels and noise, drawn whole on every rank, then sliced.
                y = _labels_for_guidance(data.train_labels[idx], config, step_gen)
                noise = process.draw_noise((len(idx), *IMAGE_SHAPE), step_gen, device)
                x0 = to_model(data.train[ranks.shard(idx)])
                if tc.channels_last:
                    x0 = x0.contiguous(memory_format=torch.channels_last)
                y = None if y is None else ranks.shard(y)
                noise = {name: ranks.shard(value) for name, value in noise.items()}
                with autocast:
                    loss = process.loss(step_net, x0, noise, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if ema is not None:
                    ema.update_parameters(net)
                detached = loss.detach()
                # Tracked on the device, read every 20 steps: a sync per step would cost GPU speed.
                first_bad = torch.where(
                    (first_bad < 0) & ~torch.isfinite(detached), state.step + 1, first_bad
                )
                loss_sum += detached
                recent[state.batch % len(recent)] = detached
                state.batch += 1
                state.step += 1
                bar.update(1)
                if state.batch % 20 == 0 or state.batch == steps_per_epoch:
                    _check_finite(first_bad, state, run_dir)
                    elapsed = time.perf_counter() - started
                    n_recent = min(state.batch, len(recent))
                    bar.set_postfix(
                        loss=f"{float(recent[:n_recent].mean()):.4f}",
                        img_s=f"{(state.batch - first_batch) * tc.batch_size / elapsed:.0f}",
                    )
                # Ranks agree on a stop (a collective, so every 20 steps when several train).
                if not ranks.active or state.batch % 20 == 0:
                    signum = ranks.max(stop.signum or 0, device)
                if signum or _reached_max_steps(state, tc):
                    break
        _check_finite(first_bad, state, run_dir)
        state.loss_sum = float(ranks.mean(loss_sum))
        state.epoch_seconds += time.perf_counter() - started
        if signum:
            save(ckpt_io.latest_path(run_dir))
            if ranks.is_main:
                print(
                    f"stopped by signal {signum} at step {state.step}; checkpoint written to "
                    f"{ckpt_io.latest_path(run_dir)}; continue with --resume",
                    file=sys.stderr,
                )
            raise SystemExit(128 + signum)
        _finish_epoch(config, state, process, net, ema, data, device, run_dir, save, ranks)
    if ranks.is_main:
        print(f"done: {run_dir} ({state.step} steps)", file=sys.stderr)
    return run_dir


def _reached_max_steps(state: TrainState, tc) -> bool:
    return tc.max_steps is not None and state.step >= tc.max_steps


def _check_finite(first_bad: torch.Tensor, state: TrainState, run_dir: Path) -> None:
    step = int(first_bad)
    if step >= 0:
        raise NonFiniteLoss(
            f"the training loss became non-finite at step {step} (epoch {state.epoch}); "
            f"the last good checkpoint in {run_dir} is kept; try a lower training.lr"
        )


def _finish_epoch(
    config, state: TrainState, process, net, ema, data, device, run_dir, save, ranks
) -> None:
    """Validation, metrics row, learning curve, sample grid and checkpoints for one epoch.

    Every rank validates (the same numbers) and keeps the history; only rank 0 writes.
    """
    tc = config.training
    batches_done = max(state.batch, 1)
    eval_net = net if ema is None else ema.module
    val = validation_loss(process, eval_net, data, config, device)
    if not math.isfinite(val):
        raise NonFiniteLoss(
            f"the validation loss is non-finite after epoch {state.epoch}; "
            f"the last good checkpoint in {run_dir} is kept"
        )
    row = {
        "epoch": state.epoch,
        "step": state.step,
        "train_loss": state.loss_sum / batches_done,
        "val_loss": val,
        "images_per_s": batches_done * tc.batch_size / max(state.epoch_seconds, 1e-9),
        "epoch_seconds": state.epoch_seconds,
    }
    state.history.append(row)
    finished_epoch = state.epoch
    state.epoch, state.batch, state.loss_sum, state.epoch_seconds = state.epoch + 1, 0, 0.0, 0.0
    if not ranks.is_main:
        return
    print(
        f"epoch {finished_epoch}: train {row['train_loss']:.5f} val {val:.5f} "
        f"({row['images_per_s']:.0f} img/s)",
        file=sys.stderr,
    )
    run_folder.write_metrics(run_dir, state.history)
    save_learning_curve(state.history, run_dir / "learning_curve.png", title=config.name)
    last = state.epoch >= tc.epochs or _reached_max_steps(state, tc)
    if finished_epoch % tc.save_every == 0 or last:
        save(ckpt_io.epoch_path(run_dir, finished_epoch))
    save(ckpt_io.latest_path(run_dir))
    every = config.sampling.sample_every
    if every and (finished_epoch % every == 0 or last):
        images = generate(
            eval_net,
            make_process(config).to(device),
            config,
            config.sampling.n_samples,
            seed=tc.seed,
            device=device,
        )
        save_sample_grid(images, run_dir / "samples" / f"epoch_{finished_epoch:04d}.png")
