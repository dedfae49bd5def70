"""The command line: each subcommand lives in its own module with ``add_parser`` and ``run``.

Errors from bad input (:class:`UserError`, and argparse's own refusals) print one line and exit
with status 2; ``--debug`` shows the traceback of a :class:`UserError` instead.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from .. import __version__
from ..errors import UserError
from ..hidden_characters import shown
from ..outputs.safe_writes import signals_held
from ..training.signals import TrainingStopped
from . import (
    classifier,
    degrade,
    evaluate,
    export,
    pages,
    reconstruct,
    reproduce,
    sample,
    train,
)
from .flags import as_flags

COMMANDS = [train, sample, export, classifier, reconstruct, degrade, evaluate, pages, reproduce]


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose refusal of a bad argument is one line, as every other error of
    the command line, pointing to ``--help`` instead of printing the usage block above it.
    Subcommands' parsers are of this class too (``add_subparsers`` takes the parent's)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} ({self.prog} --help lists the options)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="diffusiontools",
        description="Train, sample and evaluate Gaussian and cold diffusion models on small "
        "images.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"diffusiontools {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """The parser of the (sub)command ``args`` were parsed for: ``parser``'s subcommand's, and
    so on down nested subcommands (``classifier train``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return command_parser(action.choices[getattr(args, action.dest)], args)
    return parser


class _Stderr(logging.Handler):
    """The library's log lines on whatever ``sys.stderr`` is at the moment (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        prefix = "warning: " if record.levelno >= logging.WARNING else ""
        print(prefix + record.getMessage(), file=sys.stderr)


def _show_library_log() -> None:
    logger = logging.getLogger("diffusiontools")
    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        logger.addHandler(_Stderr())
        logger.setLevel(logging.INFO)


class Terminated(KeyboardInterrupt):
    """SIGTERM outside training: unwinds as Ctrl-C does, so that every command's ``finally``
    removes its temporary files (the stand-in folders of ``outputs.safe_writes.staged_outputs``,
    a partial samples NPZ), and the CLI exits 143."""

    signum = signal.SIGTERM


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _terminate(signum, frame) -> None:
    raise Terminated("stopped by signal 15")


def main(argv: list[str] | None = None) -> int:
    _show_library_log()
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # refused by the command's own parser, whose --help lists what it takes
        typed = " ".join(a if a.isprintable() else repr(a) for a in unknown)  # on one line
        command_parser(parser, args).error(f"unrecognized arguments: {typed}")
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS} if on_main_thread else {}
    if on_main_thread:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        # A stop signal inside torch's import (numpy's, below it) is swallowed or leaves numpy
        # half-imported: it waits until torch is in, then stops the command as anywhere else.
        with signals_held():
            import torch  # noqa: F401
        args.run(args)
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, or a training stopped (checkpointed)
        if on_main_thread:  # stopped and reported: a second request must not change the status
            _ignore_stop_signals()
        signum = getattr(exc, "signum", signal.SIGINT)
        if not isinstance(exc, TrainingStopped):  # a training has said where it stopped
            from tqdm import tqdm  # its write: on a line of its own, below a bar still shown

            tqdm.write(f"stopped by {signal.Signals(signum).name}", sys.stderr)
        return 128 + signum
    except UserError as exc:
        if args.debug:
            raise
        print(f"error: {shown(as_flags(str(exc)))}", file=sys.stderr)
        return 2
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0


def _ignore_stop_signals() -> None:
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)


def run(argv: list[str] | None = None) -> None:
    """The process entry of ``diffusiontools`` and ``python -m diffusiontools``: exit with
    :func:`main`'s status, which a stop signal during the interpreter's exit (torch's teardown
    takes up to a second) does not replace with death by that signal."""
    code = main(argv)
    _ignore_stop_signals()
    sys.exit(code)
