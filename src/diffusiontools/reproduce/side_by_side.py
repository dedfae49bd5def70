"""The study's trainings side by side: ``reproduce --jobs N`` trains up to N runs at once, each
in a process of its own with ``threads // N`` torch threads (at least one).

Two runs at one thread each do twice the work of one at one thread and, on a quiet 2-core
machine, 1.08x that of one on both threads (docs/benchmarks.md); on a shared machine, where a
2-thread step stalls whenever a core is taken, more. Each process
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
import dataclasses
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from pathlib import Path

import torch
from tqdm import tqdm

from ..errors import DiffusionToolsError, UserError
from ..training.run_folder import RunFolder
from ..training.signals import TrainingStopped
from .scales import Scale
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
    naming the stage of a run that failed (the others stopped with a checkpoint). A training
    whose parent dies (SIGKILL) stops itself the same way, with a checkpoint.

    From a script, the call must sit under ``if __name__ == "__main__":``: each process is
    spawned, and spawning imports the script again (``multiprocessing``'s rule)."""
    context = multiprocessing.get_context("spawn")  # no fork: torch's threads, CUDA
    threads = max(1, torch.get_num_threads() // jobs)
    waiting, running = list(run_names), {}  # run name -> _Training
    failures: list[str] = []
    with _forwarded_stop(running) as stop:
        while waiting or running:
            while waiting and len(running) < jobs and not (failures or stop.signum):
                name = waiting.pop(0)
                logger.info(
                    f"reproduce: train {name} ... (a process of its own, {threads} torch "
                    f"thread{'s' * (threads > 1)}; its progress in {log_path(study.out, name)})"
                )
                running[name] = _Training.start(context, study, name, threads)
            if not running:  # stopped before the next run started
                break
            for training in running.values():
                training.side_by_side = max(training.side_by_side, len(running))
            ended = wait([training.process.sentinel for training in running.values()])
            for name in [n for n, t in running.items() if t.process.sentinel in ended]:
                outcome, failure = _ended(study, name, running.pop(name), stop.requested)
                if failure:
                    failures.append(failure)
                elif outcome == "done" and not (failures or stop.signum):
                    on_trained(name)
                if failures and not stop.requested:
                    stop.stop_all()
    if failures:
        raise UserError("; ".join(failures))
    if stop.signum:
        logger.info(
            f"reproduce: stopped by signal {stop.signum}; every training that had begun wrote a "
            "checkpoint: re-run the same command to resume"
        )
        raise TrainingStopped(
            stop.signum, f"stopped by signal {stop.signum}: every training kept a checkpoint"
        )


@dataclasses.dataclass
class _Training:
    """One training process seen from the parent: the process, the end its outcome arrives
    on, the end whose closing (the parent's death) tells it to stop, when it started, and the
    most trainings that ran at once during its life."""

    process: multiprocessing.process.BaseProcess
    outcome: Connection
    parent_alive: Connection
    started: float
    side_by_side: int = 1

    @classmethod
    def start(cls, context, study: Study, name: str, threads: int) -> _Training:
        receive, send = context.Pipe(duplex=False)
        watch, alive = context.Pipe(duplex=False)  # alive stays here: EOF at watch = no parent
        process = context.Process(
            target=_train_one,
            args=(study.out, study.scale, str(study.device), name),
            kwargs=dict(threads=threads, connection=send, parent_alive=watch),
            name=f"train {name}",
        )
        process.start()
        send.close()
        watch.close()
        return cls(process, receive, alive, time.perf_counter())


def _ended(study: Study, name: str, training: _Training, stopped: bool) -> tuple[str, str | None]:
    """Record the time of a training process that ended and log how; return its outcome
    ("done", "stopped", "failed" or "died") and the failure to report, if any (a process that
    ended without a word after the parent ``stopped`` the trainings ended by that stop)."""
    training.process.join()
    training.parent_alive.close()
    outcome, detail = _outcome(training.outcome)
    stage = f"train {name}"
    if outcome in ("done", "stopped"):
        seconds = time.perf_counter() - training.started
        n = training.side_by_side
        study.record(
            stage, seconds, f"{detail}; " + (f"{n} trainings side by side" if n > 1 else "alone")
        )
    if outcome == "done":
        logger.info(f"reproduce: {stage} finished")
    elif outcome == "failed":
        return outcome, f"reproduce stage '{stage}' failed: {detail}"
    elif outcome == "died" and not stopped:
        return outcome, f"reproduce stage '{stage}' failed: {_death(study, name, training.process)}"
    return outcome, None


def _death(study: Study, name: str, process) -> str:
    """Why a training process ended without a word, and what a re-run does about it."""
    code = process.exitcode
    how = (
        f"its process was killed by signal {-code} ({signal.Signals(-code).name})"
        if code < 0
        else f"its process ended with exit code {code}"
    )
    log = log_path(study.out, name)
    if not log.is_file():  # it never reached its training: spawning it failed
        return (
            f"{how} before it began (see the error above; from a script, a call with jobs > 1 "
            'must sit under if __name__ == "__main__":, since spawning a process imports the '
            "script again)"
        )
    kept = (
        "its last checkpoint is kept: re-run to resume"
        if RunFolder(study.run_dir(name)).latest.is_file()
        else "it had written no checkpoint yet: a re-run starts it again"
    )
    return f"{how} before saying why (see {log}); {kept}"


def _outcome(receive: Connection) -> tuple[str, str | None]:
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
        for training in self.running.values():
            training.process.terminate()  # SIGTERM: its StopRequest checkpoints and stops

    def handle(self, signum, frame) -> None:
        if self.signum is None:  # the first request is the one reported, as in StopRequest
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
        for training in running.values():
            training.process.join()
        raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _train_one(
    out: Path,
    scale: Scale,
    device: str,
    run_name: str,
    threads: int,
    connection: Connection,
    parent_alive: Connection,
) -> None:
    """A training process's work: train ``run_name`` of the study in ``out`` at ``scale`` (the
    study's own, which need not be a registered one) as the study run one at a time does
    (``study_runs.train_run``), its output appended to its log; send ("done",
    machine), ("stopped", machine) or ("failed", reason) to the parent. Should the parent die,
    ``parent_alive`` reads EOF and the training stops as on SIGTERM (checkpoint, exit)."""
    from ..device import describe_machine
    from .study_runs import train_run

    path = log_path(out, run_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as log:
        log.write("\n")  # after a progress bar an earlier stop left open
        log.flush()
        os.dup2(log.fileno(), sys.stderr.fileno())
        os.dup2(log.fileno(), sys.stdout.fileno())
    threading.Thread(target=_stop_without_parent, args=(parent_alive,), daemon=True).start()
    # tqdm's default lock is a multiprocessing semaphore, which a SIGKILLed training leaves for
    # the parent's resource tracker to warn about on the console; its bars need a thread lock.
    tqdm.set_lock(threading.RLock())
    handler = logging.StreamHandler(sys.stderr)
    library_log = logging.getLogger("diffusiontools")
    library_log.addHandler(handler)
    library_log.setLevel(logging.INFO)
    torch.set_num_threads(threads)
    machine = describe_machine(torch.device(device))
    library_log.info(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} train {run_name}: {machine}")
    try:
        train_run(Path(out) / "runs" / run_name, run_name, scale)
    except TrainingStopped:
        outcome = ("stopped", machine)
    except DiffusionToolsError as exc:
        outcome = ("failed", str(exc))
    except (RuntimeError, ValueError, OSError) as exc:
        _tell(connection, ("failed", f"{type(exc).__name__}: {exc} (see {path})"))
        raise
    else:
        outcome = ("done", machine)
    _tell(connection, outcome)
    handler.flush()


def _tell(connection: Connection, outcome: tuple[str, str]) -> None:
    """Send ``outcome`` to the parent, if it is still there to read it."""
    try:
        connection.send(outcome)
    except OSError:  # BrokenPipeError: the parent died; the checkpoint says it all
        pass
    finally:
        connection.close()


def _stop_without_parent(parent_alive: Connection) -> None:
    """Wait (in a thread of the training process) until the parent's end of ``parent_alive``
    closes, which happens only when the parent dies, then stop the training as SIGTERM does."""
    try:
        parent_alive.recv()
    except (EOFError, OSError):
        os.kill(os.getpid(), signal.SIGTERM)
