"""Files a command was not told to write are never written over.

The rule every command follows (README, "Where commands write"): a file the caller names (a
grid, an NPZ, a figure, an export folder) is written, replacing what is there; a command's own
folder inside a run (RUN_DIR/samples, RUN_DIR/reconstruction, RUN_DIR/exports) holds its latest
output for that run and is replaced by the next; any other file that already exists is refused
before any work is done, unless the caller passes ``overwrite``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import UserError


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
