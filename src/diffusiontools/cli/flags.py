"""The library names its arguments (``steps=5``) and config keys (``diffusion.T=0``); a command
line user typed flags (``--steps 5``, ``--T 0``). Every error a command prints names the flags."""

from __future__ import annotations

import argparse
import contextlib
import re
from pathlib import Path

from ..errors import UserError

# Library argument -> the flag that sets it, in every command that has one.
ARGUMENT_FLAGS = {
    "steps": "--steps",
    "digit": "--digit",
    "label": "--label",
    "n": "-n",
    "epoch": "--epoch",
    "epochs": "--epochs",
    "resume": "--resume",
    "overwrite": "--overwrite",
    "override": "--set",
    "samplers": "--samplers",
    "labels": "--label",
    "n_samples": "--n-samples",
    "n_boot": "--n-boot",
    "n_boot_set": "--n-boot-set",
    "seed": "--seed",
    "tsne_reference": "--tsne-reference",
    "tsne_samples": "--tsne-samples",
    "test_reference": "--test-reference",
    "data_dir": "--data-dir",
    "scale": "--scale",
    "skip_training": "--skip-training",
    "jobs": "--jobs",
    "eval_dir": "--eval",
    "format": "--format",
    "ema": "--ema",
    "out": "--out",
    "device": "--device",
    "npz": "--npz",
    "eta": "--eta",
    "timestep_spacing": "--timestep-spacing",
}
FALSE_FLAGS = {"ema": "--no-ema"}  # a boolean argument whose False has a flag of its own


# A value as repr() shows it: a quote that opens a token (after "=", a space, a bracket).
_QUOTED_VALUE = re.compile(r"""(?<![\w'"])(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")
_HELD = "\ue000"  # a private-use character stands in for a quoted value while flags are named
# A name is a flag's only where a token starts (the message's start, a space, a bracket, a
# comma): "seed=" in the path runs/seed=3 is the user's text.
_TOKEN_START = r"(?<![^\s(\[{,;])"


def _outside_quoted_values(message: str, rewrite) -> str:
    """``rewrite(message)`` applied to all but the quoted values (``out='/runs/seed=3'``,
    ``--out 'x/seed=3'``): they are the user's text, kept as written."""
    values = iter(_QUOTED_VALUE.findall(message))
    rewritten = rewrite(_QUOTED_VALUE.sub(_HELD, message))
    return re.sub(_HELD, lambda _: next(values), rewritten)


_ARGUMENT = re.compile(
    _TOKEN_START + rf"({'|'.join(map(re.escape, ARGUMENT_FLAGS))})=(True\b|False\b)?"
)


def _argument_as_flag(match: re.Match) -> str:
    name, boolean = match.group(1), match.group(2)
    if boolean == "True":
        return ARGUMENT_FLAGS[name]
    if boolean == "False" and name in FALSE_FLAGS:
        return FALSE_FLAGS[name]
    return f"{ARGUMENT_FLAGS[name]} {boolean or ''}"


def as_flags(message: str) -> str:
    """A library message with its argument names (``steps=5``, ``resume=True``, ``ema=False``)
    as the flags a command-line user typed (``--steps 5``, ``--resume``, ``--no-ema``), an
    unsetting override (``{'data.source': ''}``) as ``--set data.source=``; config
    keys (``sampling.steps=``) stay as they are (see :func:`keys_as_flags`); quoted values and
    paths (``runs/seed=3``) as written. One pass: a flag put in is never read again."""
    message = re.sub(r"\{'([\w.]+)': ''\}", r"--set \1=", message)  # an unset override
    return _outside_quoted_values(message, lambda text: _ARGUMENT.sub(_argument_as_flag, text))


def keys_as_flags(message: str, flags: dict[str, str]) -> str:
    """``message`` with each config key of ``flags`` (``{"diffusion.T": "--T"}``) named as its
    flag: ``diffusion.T=0`` -> ``--T 0``, a bare ``diffusion.T`` -> ``--T``. A boolean key's
    value (config.ini's ``true``/``false``) is its flag alone, which takes none:
    ``sampling.clip_x0=true`` -> ``--clip-x0`` (``{"sampling.clip_x0": "--no-clip-x0"}`` where
    that was typed). Quoted values and paths are kept as written, as in :func:`as_flags`."""
    if not flags:
        return message
    key = re.compile(
        _TOKEN_START + rf"({'|'.join(map(re.escape, flags))})(?:(=(?:true|false)\b)|(=)|(?![\w.]))"
    )

    def as_flag(match: re.Match) -> str:
        name, boolean, value = match.group(1), match.group(2), match.group(3)
        if boolean:
            return flags[name]
        return f"{flags[name]} " if value else flags[name]

    return _outside_quoted_values(message, lambda text: key.sub(as_flag, text))


@contextlib.contextmanager
def keys_given_as_flags(flags: dict[str, str]):
    """Around a command's library calls: an error naming a config key that the command set from
    a flag (``flags``: key -> flag, only for the flags the user gave) names the flag instead."""
    try:
        yield
    except UserError as exc:
        raise UserError(keys_as_flags(str(exc), flags)) from None


def data_overrides(overrides: list[str], data_dir: str | None, command: str) -> list[str]:
    """The ``--set data.KEY=VALUE`` flags of ``command``, which reads only ``[data]`` keys, and
    ``data.dir`` from ``--data-dir`` where given. Raises UserError for a key of another section."""
    other = [o for o in overrides if not o.strip().startswith("data.")]
    if other:
        raise UserError(f"--set {other[0]} is not a [data] key; {command} reads data.* only")
    return overrides + ([f"data.dir={data_dir}"] if data_dir is not None else [])


def path_text(text: str) -> str:
    """An argparse ``type`` for a file, folder or shipped model's name: ``text``, refusing the
    empty text that pathlib would read as the working folder."""
    if text == "":
        raise argparse.ArgumentTypeError(
            "'' names no file or folder (write . for the current folder)"
        )
    return text


def path_arg(text: str) -> Path:
    """:func:`path_text` as a Path."""
    return Path(path_text(text))
