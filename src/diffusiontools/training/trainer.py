"""The training loop: it takes a forward process and a network and knows nothing else about either.

One epoch = one pass over the in-memory training split in shuffled batches (drop_last), each a
single index into a uint8 tensor. After each epoch come the epoch-end hooks (``epoch_end``):
validation on fixed randomness (so epochs are comparable), the metrics row, the checkpoint,
then on their epochs the quality probe and a sample grid. The run folder, its checks and the
resume are the session's (``session``). A checkpoint also records the position inside an
epoch, so an interrupted run resumes at the exact step and, on CPU with the same seed,
reproduces the uninterrupted run's losses, weights and metrics.csv. With
``training.log = tensorboard`` the same numbers and figures also go to TensorBoard
(``tensorboard_log``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from pathlib import Path

import torch
from torch import nn

from ..config import Config
from ..data import ImageDataset, recorded_shape, shuffled_batches, to_model
from ..device import resolve_device
from ..diffusion import make_process
from ..errors import UserError
from ..models import make_network
from . import checkpoint as ckpt_io
from . import distributed
from .checkpoint import TrainingState
from .epoch_end import AFTER_CHECKPOINT, EPOCH_END, EpochEnd, QualityProbe
from .lr_schedule import check_schedule_covers, lr_at, set_lr
from .progress import CHECK_EVERY, EpochProgress
from .run_config import check_config
from .session import TrainingSession
from .signals import TrainingStopped
from .tensorboard_log import TensorBoardLog
from .training_data import load_training_data
from .validation import labels_for_guidance

logger = logging.getLogger(__name__)


def train(
    config: Config,
    run_dir: Path,
    resume: bool = False,
    overwrite: bool = False,
    probe: QualityProbe | None = None,
    dataset: ImageDataset | None = None,
) -> Path:
    """Train ``config`` into ``run_dir``; returns the run folder. See the module docstring.

    ``probe``: what ``training.eval_every`` runs (``evaluation.quality_probe.quality_probe``
    builds it; ``dt.train`` and ``diffusiontools train`` pass it); required when that key is on.
    ``dataset``: the images of a ``data.dataset = memory`` config, handed over by ``dt.train``.

    Every check (config, device, world size, batch, the folder's state, on resume the
    checkpoint's config, the data and on resume the checkpoint's data) runs before anything in
    ``run_dir`` changes, and every check that needs no data runs before the data loads.
    ``overwrite`` moves the old run aside and deletes it only once the new run has written its
    first checkpoint; if the new run dies before that, the next training in the folder puts the
    old run back. Under torchrun, every process calls this; rank 0 owns the folder.
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
        with TrainingSession(run_dir, resume, overwrite, ranks, device) as session:
            config = session.check(config)
            data = load_training_data(config, device, dataset)
            # The run's length is known once the data is: refuse a schedule that ends before it.
            check_schedule_covers(config.training, len(data.train) // config.training.batch_size)
            state = _fresh_state(config, data.provenance, device)
            session.restore(state)
            stop = session.begin(config, data.provenance, probe)
            with board.open(run_dir, state.tensorboard_step):  # closed before a recovery
                end = EpochEnd(
                    state,
                    make_process(config).to(device),
                    state.net if state.ema is None else state.ema.module,
                    data,
                    run_dir,
                    ranks,
                    board,
                    probe,
                    stop,
                    device,
                    functools.partial(session.save, state=state, board=board),
                )
                return _train_loop(end, session.changed)
    finally:
        distributed.shutdown(ranks)


def _fresh_state(config: Config, data: dict, device: torch.device) -> TrainingState:
    """A new run's state, from the config alone; ``data``: the data's provenance."""
    tc = config.training
    shape = recorded_shape(data)
    net = make_network(config.model, seed=tc.seed, T=config.diffusion.T, shape=shape).to(device)
    return TrainingState(
        config,
        data,
        net,
        _make_ema(net, tc.ema_decay),
        _make_optimizer(net, config, device),
        torch.Generator().manual_seed(tc.seed),  # batch order: CPU everywhere
        torch.Generator(device).manual_seed(tc.seed + 1),  # t and noise
    )


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


def _train_loop(end: EpochEnd, changed: bool) -> Path:
    """Train ``end.state`` until it has finished (``training.epochs``, or ``max_steps``), the
    epoch-end hooks after each epoch; ``changed``: resumed with settings other than the
    checkpoint's. Raises TrainingStopped on a stop request, once latest.pt is written."""
    state, data, process, ranks, device = end.state, end.data, end.process, end.ranks, end.device
    tc = state.config.training
    net, ema, optimizer, step_gen = state.net, state.ema, state.optimizer, state.step_gen
    if tc.channels_last:
        net = net.to(memory_format=torch.channels_last)  # in place: the state's net
    step_net = ranks.wrap(net, device)
    step_net = torch.compile(step_net) if tc.compile else step_net
    bf16 = tc.amp == "bf16" and device.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    train_idx = torch.arange(len(data.train))
    steps_per_epoch = len(train_idx) // tc.batch_size
    if changed:  # the settings changed on resume hold from now: latest.pt says so too
        end.save(ckpt_io.latest_path(end.run_dir))
    if state.probe_pending:  # stopped during the last finished epoch's probe: finish that epoch
        for hook in AFTER_CHECKPOINT:
            hook(end)

    while not state.finished():
        if state.batch == 0:
            state.data_rng_at_epoch_start = state.data_gen.get_state()
        else:  # resuming mid-epoch: replay this epoch's permutation and skip what is done
            state.data_gen.set_state(state.data_rng_at_epoch_start)
        batches = list(shuffled_batches(train_idx, tc.batch_size, state.data_gen))
        signum = 0
        with EpochProgress(state, steps_per_epoch, ranks, end.board, end.run_dir, device) as bar:
            for idx in batches[state.batch :]:
                # The global batch's labels and noise, drawn whole on every rank, then sliced.
                y = labels_for_guidance(data.train_labels, idx, state.config, step_gen)
                noise = process.draw_noise((len(idx), *data.train.shape[1:]), step_gen, device)
                x0 = to_model(data.train[ranks.shard(idx)])  # (B / ranks, C, H, W) in [-0.5, 0.5]
                if tc.channels_last:
                    x0 = x0.contiguous(memory_format=torch.channels_last)
                y = None if y is None else ranks.shard(y)
                noise = {name: ranks.shard(value) for name, value in noise.items()}
                with autocast:
                    loss = process.loss(step_net, x0, noise, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                lr = lr_at(tc, state.step)
                set_lr(optimizer, lr)
                optimizer.step()
                if ema is not None:
                    ema.update_parameters(net)
                state.batch += 1
                state.step += 1
                check = state.batch % CHECK_EVERY == 0 or state.batch == steps_per_epoch
                bar.step(loss.detach(), lr, check)
                # Ranks agree on a stop: a collective, so only at the checks when several train
                # (a signal seen during an epoch's last steps stops it before validation).
                if not ranks.active or check:
                    signum = ranks.max(end.stop.signum or 0, device)
                if signum or state.reached_max_steps():
                    break
        bar.finish()
        if signum or state.batch < steps_per_epoch:
            _stop_inside_epoch(end, signum, steps_per_epoch)
            break
        for hook in EPOCH_END:
            hook(end)
    if ranks.is_main:
        logger.info("done: %s (%d step%s)", end.run_dir, state.step, "" if state.step == 1 else "s")
    return end.run_dir


def _stop_inside_epoch(end: EpochEnd, signum: int, steps_per_epoch: int) -> None:
    """A signal or ``training.max_steps`` stopped the epoch: it is not finished, so there is no
    validation and no metrics row; latest.pt holds the position in the epoch. Raises
    TrainingStopped for a signal."""
    state, latest = end.state, ckpt_io.latest_path(end.run_dir)
    end.save(latest)
    if signum:
        stopped = f"stopped by signal {signum} at step {state.step}; checkpoint written to {latest}"
        if end.ranks.is_main:
            logger.info(stopped)
        raise TrainingStopped(signum, f"{stopped}; continue with resume=True", end.ranks.is_main)
    if end.ranks.is_main:
        logger.info(
            "reached training.max_steps=%d inside epoch %d (%d of %d batches): the epoch "
            "is not finished; raise training.max_steps with --resume to go on",
            state.config.training.max_steps,
            state.epoch,
            state.batch,
            steps_per_epoch,
        )
