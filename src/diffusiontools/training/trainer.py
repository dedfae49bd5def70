"""The training loop: it takes a forward process and a network and knows nothing else about either.

One epoch = one pass over the in-memory training split in shuffled batches (drop_last), each a
single index into a uint8 tensor. After each epoch: a validation loss on fixed randomness (so
epochs are comparable), a row in ``metrics.csv``, the learning curve, and an atomic checkpoint;
then, on their epochs, the quality probe and a sample grid (``_EpochEnd``). A checkpoint also
records the position inside an epoch, so an interrupted run resumes at the exact step and, on
CPU with the same seed, reproduces the uninterrupted run's losses, weights and metrics.csv.
With ``training.log = tensorboard`` the same numbers and figures also go to TensorBoard
(``tensorboard_log``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from pathlib import Path
from typing import Protocol

import torch
from torch import nn
from tqdm import tqdm

from ..config import Config
from ..data import shuffled_batches, to_model
from ..device import resolve_device
from ..diffusion import make_process
from ..diffusion.process import training_loss
from ..errors import UserError
from ..models import make_network
from ..outputs.figures import learning_curve_figure, save_figure, save_sample_grid
from ..sampling.generation import IMAGE_SHAPE, generate
from . import checkpoint as ckpt_io
from . import distributed, run_folder
from .checkpoint import TrainState
from .lr_schedule import check_schedule_covers, lr_at, set_lr
from .resume_rules import check_same_data, resumed_config
from .run_config import check_config, to_ini
from .signals import Interrupted, StopRequest, TrainingStopped
from .tensorboard_log import TensorBoardLog
from .training_data import TrainingData, load_training_data

logger = logging.getLogger(__name__)
VALIDATION_SEED_OFFSET = 1_000_003  # validation randomness is fixed, and apart from training's


class NonFiniteLoss(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def _labels_for_guidance(
    y: torch.Tensor, config: Config, generator: torch.Generator
) -> torch.Tensor | None:
    """Class labels with a fraction dropped to the null label (classifier-free guidance)."""
    m = config.model
    if not m.num_classes:
        return None
    drop = torch.rand(y.shape, device=y.device, generator=generator) < m.class_dropout
    return torch.where(drop, torch.full_like(y, m.num_classes), y)


def validation_batches(data: TrainingData, config: Config) -> int:
    """Batches the validation loss runs over: every full batch of the validation split (at
    least one), at most ``training.val_batches``; the remainder of fewer than ``batch_size``
    images is left out, so every batch has the training batch's shape."""
    n_batches = max(1, len(data.val) // config.training.batch_size)
    if config.training.val_batches:
        n_batches = min(n_batches, config.training.val_batches)
    return n_batches


@torch.no_grad()
def validation_loss(process, net: nn.Module, data: TrainingData, config: Config, device) -> float:
    """Mean loss of ``net`` over the first :func:`validation_batches` batches of the validation
    split, with the same t and noise every epoch (fixed seed)."""
    net.eval()
    generator = torch.Generator(device).manual_seed(config.training.seed + VALIDATION_SEED_OFFSET)
    batch_size = config.training.batch_size
    n_batches = validation_batches(data, config)
    total = torch.zeros((), device=device)
    for b in range(n_batches):
        sl = slice(b * batch_size, (b + 1) * batch_size)
        y = _labels_for_guidance(data.val_labels[sl], config, generator)
        total += training_loss(process, net, to_model(data.val[sl]), generator, y)
    net.train()
    return float(total) / n_batches


def _make_optimizer(net: nn.Module, config: Config, device: torch.device) -> torch.optim.Optimizer:
    """Adam with default betas, no weight decay (the notebook); fused kernels on CUDA.

    Elsewhere the multi-tensor (``foreach``) path: it computes bit for bit what torch's default
    per-tensor loop computes, with a few calls for all tensors instead of a dozen per tensor
    (docs/benchmarks.md#training-throughput). The fused CPU kernel is faster still but rounds
    differently, so it is not used: the faithful runs keep the notebook's numbers exactly.
    """
    if device.type == "cuda":
        return torch.optim.Adam(net.parameters(), lr=config.training.lr, fused=True)
    return torch.optim.Adam(net.parameters(), lr=config.training.lr, foreach=True)


def _make_ema(net: nn.Module, decay: float):
    if not decay:
        return None
    return torch.optim.swa_utils.AveragedModel(
        net, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay)
    )


def _save(
    path: Path, config: Config, state: TrainState, net, ema, optimizer, data_gen, step_gen, data
) -> None:
    """Write a checkpoint; a full disk or a vanished folder becomes a one-line error, and the
    atomic write leaves the previous checkpoint under ``path`` as it was."""
    try:
        ckpt_io.save_atomic(
            ckpt_io.training_checkpoint(
                config, state, net, ema, optimizer, data_gen, step_gen, data
            ),
            path,
        )
    except OSError as exc:
        raise UserError(
            f"could not write checkpoint {path}: {exc.strerror or exc}; the previous checkpoint "
            f"(if any) is kept; free space or fix the folder, then continue with resume=True"
        ) from None


class QualityProbe(Protocol):
    """Scores a network's samples after an epoch (``training.eval_every``). Built above the
    trainer (``evaluation/quality_probe.py``): the trainer knows nothing of classifiers, it only
    decides when the probe runs and adds what it returns to that epoch's metrics row. It runs
    after the epoch's checkpoint, and a stop request abandons it midway (an exception raised
    wherever it is), so it must change nothing outside itself: only what it returns counts."""

    reference: dict[str, float]  # the test images' own values, drawn beside the curve

    def __call__(self, net: nn.Module, device: torch.device) -> dict[str, float]: ...

    def describe(self) -> str: ...  # what it draws; logged once every check has passed


def train(
    config: Config,
    run_dir: Path,
    resume: bool = False,
    overwrite: bool = False,
    probe: QualityProbe | None = None,
) -> Path:
    """Train ``config`` into ``run_dir``; returns the run folder. See the module docstring.

    ``probe``: what ``training.eval_every`` runs (``evaluation.quality_probe.quality_probe``
    builds it; ``dt.train`` and ``diffusiontools train`` pass it); required when that key is on.

    Every check (config, device, world size, batch, data, the folder's state and, on resume, the
    checkpoint's config and data) runs before anything in ``run_dir`` changes. ``overwrite`` moves
    the old run aside and deletes it only once the new run has written its first checkpoint; if
    the new run dies before that, the next training in the folder puts the old run back.
    Under torchrun, every process calls this; rank 0 owns the folder (see ``distributed``).
    """
    run_dir = Path(run_dir)
    check_config(config)  # a Config built in code has not been through load_config's checks
    if config.training.eval_every and probe is None:
        raise UserError(
            f"training.eval_every={config.training.eval_every} needs the quality probe that "
            "dt.train and `diffusiontools train` build; pass probe=quality_probe(config) "
            "(diffusiontools.evaluation.quality_probe) or set training.eval_every=0"
        )
    device = resolve_device(config.training.device, key="training.device")
    ranks = distributed.from_environment(device)
    try:
        board = TensorBoardLog(config, ranks.is_main)  # refuses a missing package now
        if config.training.amp == "bf16" and device.type != "cuda":
            raise UserError(
                f"training.amp=bf16 applies on CUDA only; this run trains on {device.type}: "
                "set training.amp=off"
            )
        ranks.check_batch(config.training.batch_size)
        device = ranks.device(device)
        data = load_training_data(config, device)
        # The run's length is known once the data is: refuse a schedule that ends before it.
        check_schedule_covers(config.training, len(data.train) // config.training.batch_size)
        with contextlib.ExitStack() as stack:

            def check_folder() -> None:
                if ranks.is_main:
                    run_folder.ensure_writable(run_dir)
                    # Lock first: --overwrite must never touch the files of a running training.
                    stack.enter_context(run_folder.RunLock(run_dir))
                    run_folder.recover(run_dir)  # an overwrite killed before its first checkpoint
                    run_folder.check_intent(run_dir, resume, overwrite)

            ranks.all_succeed(check_folder, device)  # the others read the folder once it is checked
            trainee = _Trainee(config, device)
            if resume:
                path = ckpt_io.latest_path(run_dir)
                config = ranks.all_succeed(
                    lambda: trainee.restore(path, config, data, run_dir), device
                )
            # Every rank has passed every check: only now may the folder change, and only now
            # may the log state a setting (a refused run announces nothing it will not do).
            stop = stack.enter_context(StopRequest())
            if ranks.is_main:
                if probe is not None and config.training.eval_every:
                    logger.info(
                        "quality probe every %d epochs: %s",
                        config.training.eval_every,
                        probe.describe(),
                    )
                if overwrite and run_folder.holds_run(run_dir):
                    run_folder.move_aside(run_dir)
                ckpt_io.remove_stale_temporaries(run_dir)  # left by a kill mid-write
                (run_dir / run_folder.CONFIG_FILE).write_text(to_ini(config))
                run_folder.write_json(run_dir / run_folder.DATA_FILE, data.provenance)
            try:
                # closed before a recovery
                with board.open(run_dir, trainee.state.tensorboard_step):
                    return _train_loop(
                        config, run_dir, trainee, data, stop, ranks, device, board, probe
                    )
            finally:
                if ranks.is_main:
                    run_folder.recover(run_dir)  # died before its first checkpoint: old run back
    finally:
        distributed.shutdown(ranks)


class _Trainee:
    """What training changes: the network, its average, the optimiser, the two generators and
    the position (``state``); built from the config alone, or restored from a checkpoint."""

    def __init__(self, config: Config, device: torch.device):
        tc = config.training
        self.net = make_network(config.model, seed=tc.seed, T=config.diffusion.T).to(device)
        self.process = make_process(config).to(device)
        self.optimizer = _make_optimizer(self.net, config, device)
        self.ema = _make_ema(self.net, tc.ema_decay)
        self.data_gen = torch.Generator().manual_seed(tc.seed)  # batch order: CPU everywhere
        self.step_gen = torch.Generator(device).manual_seed(tc.seed + 1)  # t and noise
        self.state = TrainState()
        self.changed = False  # resumed with settings other than the checkpoint's

    def restore(self, path: Path, requested: Config, data: TrainingData, run_dir: Path) -> Config:
        """Load a checkpoint in place and return the config the run goes on with.

        The checkpoint's config and data must match the requested ones except for the keys that
        may change on resume (``resume_rules``). Loaded onto the CPU: generator states are CPU
        byte tensors even for a CUDA generator; ``load_state_dict`` copies the rest over.
        """
        ckpt = ckpt_io.load_checkpoint(path, map_location="cpu")
        try:
            stored = ckpt_io.stored_config(ckpt, path)
            config = resumed_config(stored, requested, run_dir)
            check_same_data(ckpt.get("data"), data.provenance, run_dir)
            ckpt_io.load_weights(self.net, ckpt["model"], path)
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.state = state = ckpt_io.stored_state(ckpt)
            if self.ema is not None and ckpt["ema"] is not None:  # else the average starts now
                self.ema.module.load_state_dict(ckpt["ema"])
                # AveragedModel copies the weights on its first update (n_averaged == 0): restore
                # the count, one update per step, or the average would restart from the weights.
                self.ema.n_averaged.fill_(state.step)
            self.data_gen.set_state(ckpt["rng"]["data"])
            self._restore_step_generator(ckpt["rng"], config.training.seed, state.step)
            self.changed = config != stored
        except UserError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError):  # torch's text would not help
            raise UserError(
                f"checkpoint {path} cannot be resumed: its training state (position, optimiser "
                f"or generators) is missing or garbled; {ckpt_io.EXPECTED}"
            ) from None
        _check_not_below(config, state)
        logger.info("resuming %s at epoch %d, step %d", run_dir, state.epoch, state.step)
        return config

    def _restore_step_generator(self, rng: dict, seed: int, step: int) -> None:
        """The t/noise generator's state, or, when it was saved by another kind of device (a
        CUDA generator's state does not fit a CPU one), a deterministic re-seed from the step."""
        saved_on = rng.get("step_device")
        here = self.step_gen.device.type
        if saved_on in (None, here):
            try:
                self.step_gen.set_state(rng["step"])
                return
            except RuntimeError:  # a checkpoint from before step_device was recorded
                saved_on = "another device"
        self.step_gen.manual_seed(reseeded(seed, step))
        logger.warning(
            "the checkpoint's noise generator comes from %s and this run trains on %s: it is "
            "re-seeded from step %d, so the run goes on deterministically but no longer draws "
            "the noise an uninterrupted run on %s would",
            saved_on,
            here,
            step,
            saved_on,
        )


def _check_not_below(config: Config, state: TrainState) -> None:
    """A resumed run cannot be told to have stopped before where it already is."""
    tc, finished = config.training, state.epoch  # state.epoch: the epochs already finished
    if tc.max_steps is not None and tc.max_steps < state.step:
        raise UserError(
            f"training.max_steps={tc.max_steps} is below the {state.step} steps this run has "
            f"done; give at least {state.step}"
        )
    if tc.epochs < finished:
        raise UserError(
            f"training.epochs={tc.epochs} is below the {finished} epochs this run has finished; "
            f"give at least {finished}"
        )


def reseeded(seed: int, step: int) -> int:
    """The seed of a noise generator re-seeded at ``step`` (a resume on another device)."""
    return (seed + 1) * 1_000_003 + step


def _train_loop(
    config: Config,
    run_dir: Path,
    trainee: _Trainee,
    data: TrainingData,
    stop: StopRequest,
    ranks: distributed.Ranks,
    device: torch.device,
    board: TensorBoardLog,
    probe: QualityProbe | None = None,
) -> Path:
    tc = config.training
    net, ema, optimizer, process = trainee.net, trainee.ema, trainee.optimizer, trainee.process
    data_gen, step_gen, state = trainee.data_gen, trainee.step_gen, trainee.state
    if tc.channels_last:
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
            board.flush()  # the event files hold every step this checkpoint holds
            if board.enabled:
                state.tensorboard_step = state.step
            _save(path, config, state, net, ema, optimizer, data_gen, step_gen, data)
            run_folder.discard_previous(run_dir)  # a checkpoint of the new run exists now

    eval_net = net if ema is None else ema.module  # what validation, probe and grids use
    epoch_end = _EpochEnd(config, run_dir, state, save, ranks, board, probe, stop, device)
    if trainee.changed:  # the settings changed on resume hold from now: latest.pt says so too
        save(ckpt_io.latest_path(run_dir))
    if state.probe_pending:  # stopped during the last finished epoch's probe: finish that epoch
        epoch_end.finish_pending(eval_net)

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
                set_lr(optimizer, lr_at(tc, state.step))
                optimizer.step()
                if ema is not None:
                    ema.update_parameters(net)
                detached = loss.detach()
                # Tracked on the device, read every 20 steps: a sync per step would cost GPU speed.
                first_bad = torch.where(
                    (first_bad < 0) & ~torch.isfinite(detached), state.step + 1, first_bad
                )
                loss_sum += detached
                # Slots count this loop's steps: a run resumed mid-epoch starts with none filled.
                recent[(state.batch - first_batch) % len(recent)] = detached
                state.batch += 1
                state.step += 1
                board.step_loss(state.step, detached)
                bar.update(1)
                end_of_epoch = state.batch == steps_per_epoch
                if state.batch % 20 == 0 or end_of_epoch:
                    _check_finite(first_bad, state, run_dir)
                    elapsed = time.perf_counter() - started
                    n_recent = min(state.batch - first_batch, len(recent))
                    images_per_s = (state.batch - first_batch) * tc.batch_size / elapsed
                    bar.set_postfix(
                        loss=f"{float(recent[:n_recent].mean()):.4f}", img_s=f"{images_per_s:.0f}"
                    )
                    board.progress(state.step, images_per_s, optimizer.param_groups[0]["lr"])
                # Ranks agree on a stop: a collective, so every 20 steps and at the epoch's end
                # when several train (a signal seen during the last steps stops before validation).
                if not ranks.active or state.batch % 20 == 0 or end_of_epoch:
                    signum = ranks.max(stop.signum or 0, device)
                if signum or _reached_max_steps(state, tc):
                    break
        _check_finite(first_bad, state, run_dir)
        state.loss_sum = float(ranks.mean(loss_sum))
        state.epoch_seconds += time.perf_counter() - started
        if signum or state.batch < steps_per_epoch:
            # Stopped inside the epoch (a signal, or max_steps): the epoch is not finished, so
            # no validation and no metrics row; the checkpoint holds the position in the epoch.
            save(ckpt_io.latest_path(run_dir))
            if signum:
                message = (
                    f"stopped by signal {signum} at step {state.step}; checkpoint written to "
                    f"{ckpt_io.latest_path(run_dir)}; continue with --resume "
                    "(resume=True in Python)"
                )
                if ranks.is_main:
                    logger.info(message)
                raise TrainingStopped(signum, message)
            if ranks.is_main:
                logger.info(
                    "reached training.max_steps=%d inside epoch %d (%d of %d batches): the epoch "
                    "is not finished; raise training.max_steps with --resume to go on",
                    tc.max_steps,
                    state.epoch,
                    state.batch,
                    steps_per_epoch,
                )
            break
        epoch_end(process, net, eval_net, data)
    if ranks.is_main:
        logger.info("done: %s (%d step%s)", run_dir, state.step, "" if state.step == 1 else "s")
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


class _EpochEnd:
    """What follows an epoch's last step, in this order: validation, the metrics row
    (metrics.csv, learning_curve.png, TensorBoard), the epoch's checkpoints; then the quality
    probe and the sample grid.

    The checkpoints come before the probe, so a stop request during the probe abandons it at
    once (``StopRequest.interrupting``) and loses nothing else: the checkpoint says the probe is
    pending (``probe_pending``), and the resumed run probes that epoch and draws its grid before
    it trains on. A probe that ran only because its epoch was the run's last is dropped once a
    later epoch is finished (``probed_as_last``: a resume to more epochs), so metrics.csv equals
    the straight run's. Every rank validates (the same numbers) and keeps the history; only rank
    0 probes (its own seeded generators: the training generators are untouched) and writes, and
    the ranks agree on a stop after the probe.
    """

    def __init__(self, config, run_dir, state, save, ranks, board, probe, stop, device):
        self.config, self.run_dir, self.state, self.save = config, run_dir, state, save
        self.ranks, self.board, self.probe, self.stop = ranks, board, probe, stop
        self.device = device

    def __call__(self, process, net: nn.Module, eval_net: nn.Module, data: TrainingData) -> None:
        """``net``: the trained weights; ``eval_net``: the weights that sample (their EMA where
        the run keeps one). ``val_loss`` is ``eval_net``'s; with an EMA, ``val_loss_raw`` is
        ``net``'s, the weights the training loss is of; ``val_images`` says over how many."""
        state, tc = self.state, self.config.training
        batches_done = max(state.batch, 1)
        nets = {"val_loss": eval_net} | ({"val_loss_raw": net} if eval_net is not net else {})
        losses = {}
        for key, weights in nets.items():
            losses[key] = validation_loss(process, weights, data, self.config, self.device)
            if not math.isfinite(losses[key]):
                raise NonFiniteLoss(
                    f"the validation loss is non-finite after epoch {state.epoch}; "
                    f"the last good checkpoint in {self.run_dir} is kept"
                )
        val = losses["val_loss"]
        row = {
            "epoch": state.epoch,
            "step": state.step,
            "train_loss": state.loss_sum / batches_done,
            "val_loss": val,
            "val_images": validation_batches(data, self.config) * tc.batch_size,
            "images_per_s": batches_done * tc.batch_size / max(state.epoch_seconds, 1e-9),
            "epoch_seconds": state.epoch_seconds,
            **losses,  # val_loss again, and val_loss_raw where there is an EMA
        }
        if state.probed_as_last:  # its epoch is not the run's last any more: drop the probe's
            previous = state.history[-1]
            state.history[-1] = {k: v for k, v in previous.items() if k in row}
            state.probed_as_last = False
        state.history.append(row)
        finished = state.epoch
        state.epoch, state.batch, state.loss_sum, state.epoch_seconds = state.epoch + 1, 0, 0.0, 0.0
        state.probe_pending = self._probe_due()
        if self.ranks.is_main:
            logger.info(
                "epoch %d: train %.5f val %.5f (%.0f img/s)",
                finished,
                row["train_loss"],
                val,
                row["images_per_s"],
            )
            self.board.epoch(row)
            self._record(figure=not state.probe_pending)  # else drawn with the probe's values
            if finished % tc.save_every == 0 or self._last():
                self.save(ckpt_io.epoch_path(self.run_dir, finished))
            self.save(ckpt_io.latest_path(self.run_dir))
        self._after_checkpoint(eval_net)

    def finish_pending(self, eval_net: nn.Module) -> None:
        """At a resume from a checkpoint whose probe is pending: the probe, if the settings
        resumed with still call for it (a resume to more epochs does not probe an epoch that is
        no longer the last), then the epoch's grid, as the stopped run would have done."""
        if not self._probe_due():
            self.state.probe_pending = False
            if self.ranks.is_main:
                self._record(figure=True)
        self._after_checkpoint(eval_net)

    def _after_checkpoint(self, eval_net: nn.Module) -> None:
        if self.state.probe_pending:
            self._probe(eval_net)
        every = self.config.sampling.sample_every
        finished = self.state.history[-1]["epoch"]
        if self.ranks.is_main and every and (finished % every == 0 or self._last()):
            images = generate(
                eval_net,
                make_process(self.config).to(self.device),
                self.config,
                self.config.sampling.n_samples,
                seed=self.config.training.seed,
                device=self.device,
            )
            save_sample_grid(images, self.run_dir / "samples" / f"epoch_{finished:04d}.png")
            self.board.samples(images, self.state.step)

    def _probe(self, eval_net: nn.Module) -> None:
        """Run the probe on rank 0 and add its values to the last row; a stop request during
        it abandons it and raises TrainingStopped (the epoch's checkpoint is written)."""
        state, row = self.state, self.state.history[-1]
        values = self._run_probe(eval_net) if self.ranks.is_main else {}
        signum = self.ranks.max(self.stop.signum or 0, self.device)  # every rank: one decision
        if signum or values is None:
            latest = ckpt_io.latest_path(self.run_dir)
            message = (
                f"stopped by signal {signum} during the quality probe of epoch {row['epoch']}; "
                f"the epoch's checkpoint is {latest}; continue with --resume (resume=True in "
                f"Python), which probes epoch {row['epoch']} first"
            )
            if self.ranks.is_main:
                logger.info(message)
            raise TrainingStopped(signum, message)
        state.probe_pending = False
        state.probed_as_last = row["epoch"] % self.config.training.eval_every != 0
        if self.ranks.is_main:
            row.update(values)
            self.board.quality(values, row["step"])
            self._record(figure=True)
            self.save(ckpt_io.latest_path(self.run_dir))

    def _run_probe(self, eval_net: nn.Module) -> dict[str, float] | None:
        """The probe's values, or None when a stop request abandoned it."""
        was_training = eval_net.training
        try:
            with self.stop.interrupting():
                return self.probe(eval_net, self.device)
        except Interrupted:
            return None
        finally:
            eval_net.train(was_training)  # an abandoned sampler may not have restored it

    def _record(self, figure: bool) -> None:
        """metrics.csv and learning_curve.png from the history; the curve to TensorBoard too
        when ``figure`` and the epoch's checkpoint is kept."""
        state, tc = self.state, self.config.training
        run_folder.write_metrics(self.run_dir, state.history)
        reference = None if self.probe is None else self.probe.reference
        name, config_name = Path(self.run_dir).name, self.config.name
        title = name if name == config_name else f"{name} ({config_name})"  # the run, its config
        curve = learning_curve_figure(state.history, title, reference)
        save_figure(curve, self.run_dir / "learning_curve.png")
        finished = state.history[-1]["epoch"]
        if figure and (finished % tc.save_every == 0 or self._last()):
            self.board.figure("learning_curve", curve, state.step)

    def _last(self) -> bool:
        """Whether the finished epoch is the run's last (``state`` is past it)."""
        tc = self.config.training
        return self.state.epoch >= tc.epochs or _reached_max_steps(self.state, tc)

    def _probe_due(self) -> bool:
        """The quality curve's epochs: 0, N, 2N, ... and the last (N = training.eval_every)."""
        every, finished = self.config.training.eval_every, self.state.history[-1]["epoch"]
        return bool(every) and (finished % every == 0 or self._last())
