"""How a training stops on request: SIGINT/SIGTERM become a flag checked between steps, and the
loop raises :class:`TrainingStopped` once its checkpoint is written."""

from __future__ import annotations

import signal
import threading


class TrainingStopped(KeyboardInterrupt):
    """Training stopped on SIGINT (Ctrl-C) or SIGTERM after writing a checkpoint.

    A ``KeyboardInterrupt``, so a notebook or script treats it as the interrupt it is; ``signum``
    says which signal, and the CLI exits with the conventional 128 + signum (130, 143).
    """

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked between steps, so a kill finishes the step,
    writes a checkpoint and raises :class:`TrainingStopped`. Signal handlers can only be set in
    the main thread: elsewhere (a training started from a worker thread) signals act as usual."""

    def __init__(self):
        self.signum: int | None = None
        self.previous: dict = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self.previous = {
                s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)
            }
        return self

    def _handle(self, signum, frame) -> None:
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)
