"""The study's trainings side by side: ``reproduce --jobs N`` trains up to N runs at once, each
in a process of its own with ``threads // N`` torch threads (at least one).

One run trains on one core almost as fast as on two (batch 128 of a small UNet scales poorly
across threads), so on two cores two runs at once halve the study's wall time. Each process
calls the same ``train`` as the one-at-a-time study, so a run trained side by side equals one
trained alone at the same thread count, and resumes exactly.

The parent process starts the runs in the study's order, records each run's wall time and
machine (with the number of trainings that shared it) when its process ends, and hands each
finished run to ``on_trained`` (the export of a report model). Each process's output (log
lines, progress bar) goes to OUT/logs/train_<run>.log, appended across resumes. SIGINT or
SIGTERM to the parent stops every training at its next step with a checkpoint (as it stops a
training of its own) and raises :class:`~..training.signals.TrainingStopped` once all have
stopped; a failed run stops the others the same way and is reported with its stage's name.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from pathlib import Path

import torch

from ..errors import DiffusionToolsError, UserError
from ..training.signals import TrainingStopped
from .study import Study

logger = logging.getLogger("diffusiontools.reproduce.pipeline")

LOGS = "logs"


def log_path(out: Path, run_name: str) -> Path:
    """Where the training process of ``run_name`` writes its output."""
    return Path(out) / LOGS / f"train_{run_name}.log"


def train_side_by_side(
    study: Study, run_names: list[str], jobs: int, on_trained: Callable[[str], None]
) -> None:
    """Train ``run_names`` (resuming each where it stopped), at most ``jobs`` at once; call
    ``on_trained(run_name)`` in this process as each one finishes. Raises TrainingStopped on
    SIGINT/SIGTERM (every started run checkpointed, its time recorded) and DiffusionToolsError
    naming the stage of a run that failed (the others stopped with a checkpoint)."""
    context = multiprocessing.get_context("spawn")  # no fork: torch's threads, CUDA
    threads = max(1, torch.get_num_threads() // jobs)
    waiting, running = list(run_names), {}  # run name -> (process, receiving end, start time)
    failures: list[str] = []
    with _forwarded_stop(running) as stop:
        while waiting or running:
            while waiting and len(running) < jobs and not (failures or stop.signum):
                name = waiting.pop(0)
                receive, send = context.Pipe(duplex=False)
                process = context.Process(
                    target=_train_one,
                    args=(study.out, study.scale.name, study.seed, str(study.device), name),
                    kwargs=dict(threads=threads, connection=send),
                    name=f"train {name}",
                )
                logger.info(
                    f"reproduce: train {name} ... (a process of its own, {threads} torch "
                    f"thread{'s' * (threads > 1)}; its progress in {log_path(study.out, name)})"
                )
                process.start()
                send.close()
                running[name] = (process, receive, time.perf_counter())
            if not running:  # stopped before the next run started
                break
            finished = wait([process.sentinel for process, _, _ in running.values()])
            for name in [n for n, (p, _, _) in running.items() if p.sentinel in finished]:
                process, receive, started = running.pop(name)
                process.join()
                outcome, detail = _outcome(receive)
                stage = f"train {name}"
                if outcome in ("done", "stopped"):
                    seconds = time.perf_counter() - started
                    study.record(stage, seconds, f"{detail}; {jobs} trainings side by side")
                if outcome == "done":
                    logger.info(f"reproduce: {stage} finished")
                    if not (failures or stop.signum):
                        on_trained(name)
                elif outcome == "failed":
                    failures.append(f"reproduce stage '{stage}' failed: {detail}")
                elif outcome == "died" and not stop.requested:
                    failures.append(
                        f"reproduce stage '{stage}' failed: its process ended with exit code "
                        f"{process.exitcode} before saying why (see {log_path(study.out, name)}); "
                        "its last checkpoint is kept, re-run to resume"
                    )
                if failures and not stop.requested:
                    stop.stop_all()
    if failures:
        raise UserError("; ".join(failures))
    if stop.signum:
        raise TrainingStopped(
            stop.signum, f"stopped by signal {stop.signum}: every training kept a checkpoint"
        )


def _outcome(receive) -> tuple[str, str | None]:
    """What an ended training process sent, or ("died", None) where it ended before sending."""
    try:
        return receive.recv() if receive.poll() else ("died", None)
    except EOFError:  # closed without a word: killed before its training began
        return ("died", None)
    finally:
        receive.close()


class _Stop:
    """The parent's stop request: the signal it received (or None), whether it stopped the
    trainings (``requested``: a process that ends without a word then ended by that stop), and
    the stop of every running training by SIGTERM, which each turns into a checkpoint and an
    exit (one still starting, before its training began, simply ends)."""

    def __init__(self, running: dict):
        self.running, self.signum, self.requested = running, None, False

    def stop_all(self) -> None:
        self.requested = True
        for process, _, _ in self.running.values():
            process.terminate()  # SIGTERM: the training's StopRequest checkpoints and stops

    def handle(self, signum, frame) -> None:
        self.signum = signum
        self.stop_all()


@contextlib.contextmanager
def _forwarded_stop(running: dict):
    """SIGINT/SIGTERM to this process stop the trainings (only in the main thread, where
    handlers can be set); the previous handlers are put back on exit."""
    stop = _Stop(running)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, stop.handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    except BaseException:  # an error of this process: the trainings stop with a checkpoint
        stop.stop_all()
        for process, _, _ in running.values():
            process.join()
        raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _train_one(
    out: Path, scale_name: str, seed: int, device: str, run_name: str, threads: int, connection
) -> None:
    """A training process's work: train ``run_name`` of the study in ``out`` as the study run
    one at a time does (``pipeline.train_run``), its output appended to its log; send ("done",
    machine), ("stopped", machine) or ("failed", reason) to the parent."""
    from ..device import describe_machine
    from .pipeline import train_run
    from .scales import get_scale

    path = log_path(out, run_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as log:
        os.dup2(log.fileno(), sys.stderr.fileno())
        os.dup2(log.fileno(), sys.stdout.fileno())
    handler = logging.StreamHandler(sys.stderr)
    library_log = logging.getLogger("diffusiontools")
    library_log.addHandler(handler)
    library_log.setLevel(logging.INFO)
    torch.set_num_threads(threads)
    machine = describe_machine(torch.device(device))
    library_log.info(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} train {run_name}: {machine}")
    try:
        train_run(Path(out) / "runs" / run_name, run_name, get_scale(scale_name))
    except TrainingStopped:
        connection.send(("stopped", machine))
    except DiffusionToolsError as exc:
        connection.send(("failed", str(exc)))
    except (RuntimeError, ValueError, OSError) as exc:
        connection.send(("failed", f"{type(exc).__name__}: {exc} (see {path})"))
        raise
    else:
        connection.send(("done", machine))
    finally:
        connection.close()
        handler.flush()
