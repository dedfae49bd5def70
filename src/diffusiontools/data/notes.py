"""The data layer's warnings, each logged once per process.

A command loads its data from several places (training, sampling's start, evaluation, the
figures), and every load of the same data meets the same unverified files or the same missing
MNIST: the user is told once, and each run's data record keeps what it was told.
"""

from __future__ import annotations

import logging

_LOGGED: set[str] = set()  # the messages this process has logged


def warn_once(logger: logging.Logger, message: str) -> None:
    """Log ``message`` as a warning on ``logger`` unless this process has logged it before."""
    if message not in _LOGGED:
        _LOGGED.add(message)
        logger.warning(message)
