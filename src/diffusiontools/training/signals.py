"""How a training stops on request: SIGINT/SIGTERM become a flag checked between steps, and the
loop raises :class:`TrainingStopped` once its checkpoint is written. Work that may be dropped
(the quality probe after an epoch's checkpoint) runs inside :meth:`StopRequest.interrupting`,
where a signal abandons it at once."""

from __future__ import annotations

import contextlib
import signal
import threading


class TrainingStopped(KeyboardInterrupt):
    """Training stopped on SIGINT (Ctrl-C) or SIGTERM after writing a checkpoint.

    A ``KeyboardInterrupt``, so a notebook or script treats it as the interrupt it is; ``signum``
    says which signal, and the CLI exits with the conventional 128 + signum (130, 143). Its
    message says where it stopped and how to continue in Python (``resume=True``); ``reported``
    is True in the process that logged where it stopped (the main rank), whose caller adds how
    to continue in its own terms (``train --resume``, re-running ``reproduce``).
    """

    def __init__(self, signum: int, message: str, reported: bool = False):
        super().__init__(message)
        self.signum = signum
        self.reported = reported


class Interrupted(BaseException):
    """Raised inside :meth:`StopRequest.interrupting` by a stop request: the work in hand is
    abandoned. A ``BaseException``, so no ``except Exception`` on the way swallows it."""


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked between steps, so a kill finishes the step,
    writes a checkpoint and raises :class:`TrainingStopped`. Signal handlers can only be set in
    the main thread: elsewhere (a training started from a worker thread) signals act as usual."""

    def __init__(self):
        self.signum: int | None = None
        self.previous: dict = {}
        self.interrupt = False  # inside interrupting(): a signal raises Interrupted

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self.previous = {
                s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)
            }
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is None:  # the first request is the one reported: a Ctrl-C at a terminal
            self.signum = signum  # reaches a reproduce child before its parent's SIGTERM
        if self.interrupt:
            self.interrupt = False  # once: a second signal must not break the unwinding
            raise Interrupted(signum)

    @contextlib.contextmanager
    def interrupting(self):
        """Within: a stop request (one already made, or a signal now) raises
        :class:`Interrupted` at once, between two Python operations (a running torch op
        finishes first). For work whose results nothing depends on until it is complete."""
        if self.signum:
            raise Interrupted(self.signum)
        self.interrupt = True
        try:
            yield
        finally:
            self.interrupt = False

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)
