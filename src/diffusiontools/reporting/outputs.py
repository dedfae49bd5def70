"""Files a command was not told to write are never written over.

The rule every command follows (README, "Where commands write"): a file the caller names (a
grid, an NPZ, a figure, an export folder) is written, replacing what is there; a command's own
folder inside a run (RUN_DIR/samples, RUN_DIR/reconstruction, RUN_DIR/exports) holds its latest
output for that run and is replaced by the next; any other file that already exists is refused
before any work is done, unless the caller passes ``overwrite``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import UserError

IMAGE_FORMATS = ("png", "jpg", "jpeg", "pdf", "svg")  # what a figure or grid may be saved as


def refuse_existing(paths: Iterable[Path], remedy: str) -> None:
    """Raise, naming the first of ``paths`` that exists (and how many more do) and ``remedy``
    (what to pass instead), if any exists; the check reads only, so call it before any work."""
    existing = [p for p in dict.fromkeys(Path(p) for p in paths) if p.exists()]
    if existing:
        more = f" (and {len(existing) - 1} more of the files it would write)" * (len(existing) > 1)
        raise UserError(f"{existing[0]} already exists{more}; {remedy}")


def check_distinct(paths: dict[str, Path]) -> None:
    """Refuse two outputs of one command at one path (``paths``: what each is -> its path)."""
    seen: dict[Path, str] = {}
    for what, path in paths.items():
        key = Path(path).absolute()
        if key in seen:
            raise UserError(f"{path} would be both {seen[key]} and {what}: give each its own path")
        seen[key] = what


def check_output_file(
    path: str | Path, argument: str, what: str = "the file", image: bool = False
) -> Path:
    """Refuse a file path a command would write, before any work and without creating anything.

    ``argument`` names the path's argument in the message (``out`` -> ``out=PATH: ...``), ``what``
    the file (``the grid``); with ``image``, the name must end in one of ``IMAGE_FORMATS``.
    Raises DiffusionToolsError for another ending, a path that is a folder, or a folder that
    could not be created or written (its nearest existing ancestor is a file or read-only).
    Returns ``path`` as a Path.
    """
    path = Path(path)
    if image and path.suffix.lower().lstrip(".") not in IMAGE_FORMATS:
        endings = ", ".join("." + f for f in sorted(IMAGE_FORMATS))
        raise UserError(f"{argument}={path}: {what} is an image; end the name in one of {endings}")
    if path.is_dir():
        raise UserError(f"{argument}={path} is a folder; name a file for {what}")
    ancestor = path.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        why = "a file" if not ancestor.is_dir() else "read-only"
        raise UserError(
            f"{argument}={path}: its folder {path.parent} is not writable ({ancestor} is {why})"
        )
    return path
