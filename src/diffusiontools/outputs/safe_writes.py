"""Where a command writes: files it was not told to write are never written over, and what it
writes appears whole or not at all.

The rule every command follows (README, "Where commands write"): a file the caller names (a
grid, an NPZ, a figure, an export folder) is written, replacing what is there; a command's own
folder inside a run (RUN_DIR/samples, RUN_DIR/reconstruction, RUN_DIR/exports/FORMAT) holds the
latest call's output, and only it, being replaced as a whole by the next; any other file that
already exists is refused before any work is done, unless the caller passes ``overwrite``.

How (:func:`staged_outputs`): a command writes into stand-in folders, hidden
(``.NAME.partial-PID``), and moves them into place only once it has finished; an exception,
Ctrl-C or SIGTERM (the CLI turns it into a ``KeyboardInterrupt``) before then removes them, and
the folders they stand in for are as they were. Ctrl-C and SIGTERM during the moves wait until
the moves are done. Only a kill that cannot be caught (SIGKILL, a power cut) can leave a stand-in
behind, or a folder half moved.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..hidden_characters import hidden_characters

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
    path: str | Path,
    argument: str,
    what: str = "the file",
    image: bool = False,
    ending: str | None = None,
) -> Path:
    """Refuse a file path a command would write, before any work and without creating anything.

    ``argument`` names the path's argument in the message (``out`` -> ``out=PATH: ...``), ``what``
    the file (``the grid``); with ``image``, the name must end in one of ``IMAGE_FORMATS``; with
    ``ending`` (``".npz"``), in that, so that a typo cannot replace a file of another kind (a
    run's checkpoint, its config.ini).
    Raises DiffusionToolsError for a value that is no path, another ending, a path that is a
    folder, a folder that could not be created or written (its nearest existing ancestor is a
    file, read-only or a broken link), or a name the file system refuses (too long).
    Returns ``path`` as a Path.
    """
    path = as_path(path, argument)
    with _refused_by_the_system(argument, path):
        check_printable(path, f"{argument}=", f"name a file for {what}")
        if image and path.suffix.lower().lstrip(".") not in IMAGE_FORMATS:
            endings = ", ".join("." + f for f in sorted(IMAGE_FORMATS))
            raise UserError(
                f"{argument}={path}: {what} is an image; end the name in one of {endings}"
            )
        if path.is_dir():
            raise UserError(f"{argument}={path} is a folder; name a file for {what}")
        if ending is not None and path.suffix.lower() != ending:
            raise UserError(
                f"{argument}={path} does not end in {ending}; name a {ending} file for {what}"
            )
        blocked = _unwritable_ancestor(path.absolute().parent)
    if blocked:
        raise UserError(f"{argument}={path}: its folder {path.parent} is not writable ({blocked})")
    return path


def check_output_folder(folder: str | Path, argument: str, what: str) -> Path:
    """Refuse the folder ``argument`` names (``out``), into which a command would write ``what``
    (``the run``), before any work and without creating anything: a name holding a control
    character, a path that is a file, or one whose nearest existing ancestor is a file or
    read-only or a broken link, a value that is no path or a name the file system refuses. The
    same words for every command (``check_output_file``'s)."""
    folder = as_path(folder, argument)
    with _refused_by_the_system(argument, folder):
        check_printable(folder, f"{argument}=", f"name a folder for {what}")
        if folder.exists() and not folder.is_dir():
            raise UserError(f"{argument}={folder} is a file; name a folder for {what}")
        blocked = _unwritable_ancestor(folder.absolute())
    if blocked:
        raise UserError(
            f"{argument}={folder} is not writable ({blocked}); name a folder for {what}"
        )
    return folder


def check_printable(path: Path, named: str, remedy: str) -> None:
    """Refuse a path to write whose new names (the file or folder and the ancestors it would
    create; folders that exist are the user's) hold a character that a listing, a log or a
    shell line shows as something else (:mod:`diffusiontools.hidden_characters`). ``named``
    goes before the path in the message (``out=``), ``remedy`` after it."""
    text, created = str(path), []
    while not path.exists() and path != path.parent:
        created.append(path.name)
        path = path.parent
    bad = hidden_characters("".join(created))
    if bad:
        raise UserError(
            f"{named}{text!r} holds the non-printing character {bad[0]!r}; {remedy} without one"
        )


def as_path(path: object, argument: str) -> Path:
    """``path`` (a str or os.PathLike) as a Path; refused: a value that is no path."""
    if not isinstance(path, str | os.PathLike):  # bytes, a number: Path() would raise TypeError
        raise UserError(f"{argument}={path!r} is not a path: give a str or a pathlib.Path")
    return Path(path)


@contextlib.contextmanager
def _refused_by_the_system(argument: str, path: Path) -> Iterator[None]:
    """An OSError while a path is checked (a name too long for the file system) as a refusal
    naming ``argument``."""
    try:
        yield
    except OSError as exc:
        raise UserError(f"{argument}={path} cannot be used: {exc.strerror or exc}") from None


def _unwritable_ancestor(folder: Path) -> str | None:
    """Why ``folder`` (absolute) could not be created or written into, or None: it or an
    ancestor to be created is a broken symbolic link, or its nearest existing ancestor ``is a
    file`` or ``is read-only``."""
    ancestor = folder
    while not ancestor.exists() and ancestor != ancestor.parent:
        if ancestor.is_symlink():  # its target is missing: the folder cannot be made there
            return f"{ancestor} is a broken symbolic link to {os.readlink(ancestor)}"
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is a file"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{ancestor} is read-only"
    return None


STAND_IN = re.compile(r"^\..+\.(partial|replaced)-\d+$")  # the hidden names staging gives


@dataclass
class _Folder:
    final: Path  # absolute: what is put in place
    stand_in: Path  # where its contents are written until then
    how: str  # new: stand_in renamed to final; whole: final swapped for it; merge: moved in


class Staging:
    """The stand-ins of one command's output folders (see the module doc); made by
    :func:`staged_outputs`, which moves them into place."""

    def __init__(self) -> None:
        self.folders: list[_Folder] = []
        self.replaced: list[Path] = []

    def folder(self, final: str | Path, whole: bool = False, replaces: Iterable[Path] = ()) -> Path:
        """The folder to write what belongs in the folder ``final``; created now, so that a
        folder that cannot be written is refused before any work.

        Once the command has finished: a ``final`` that did not exist is created with what was
        written (so are its missing parents); with ``whole``, an existing ``final`` is replaced
        by what was written; otherwise what was written is moved into ``final`` (subfolders
        merged), after the files ``replaces`` (an earlier output's) are deleted, and the rest
        of ``final`` stays. Raises DiffusionToolsError for a folder that cannot be written or
        whose name holds a non-printing character (:func:`check_printable`).
        """
        check_printable(Path(final), "", "name the output folder")
        final = Path(final).absolute()
        self.replaced += [Path(p).absolute() for p in replaces]
        for f in self.folders:  # inside a folder already staged: its place in the stand-in
            inside = final == f.final or f.final in final.parents
            if inside and not (whole and f.how == "merge"):
                return self._make(f.stand_in / final.relative_to(f.final))
        if final.exists():  # merge: a stand-in inside, so that moving it in is a rename
            where = final.parent if whole else final
            stand_in = where / _hidden(final, "partial")
            self.folders.append(_Folder(final, stand_in, "whole" if whole else "merge"))
            return self._make(stand_in, fresh=True)
        top = final  # the highest folder to create: its parent exists
        while not top.parent.exists():
            top = top.parent
        stand_in = top.parent / _hidden(top, "partial")
        self.folders.append(_Folder(top, stand_in, "new"))
        self._make(stand_in, fresh=True)
        return self._make(stand_in / final.relative_to(top))

    def file(self, path: str | Path) -> Path:
        """Where to write the file ``path`` (a name the caller gave): replaced once finished."""
        path = Path(path)
        return self.folder(path.parent) / path.name

    def _make(self, folder: Path, fresh: bool = False) -> Path:
        try:
            if fresh and folder.exists():  # left by a killed process of our (recycled) pid
                shutil.rmtree(folder)
            folder.mkdir(parents=True, exist_ok=not fresh)
        except OSError as exc:
            raise UserError(
                f"output folder {folder.parent} is not writable: {exc.strerror}"
            ) from None
        return folder

    def commit(self) -> None:
        """Delete the replaced files, then put every stand-in in place."""
        for path in self.replaced:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        for f in self.folders:
            if f.how == "new":
                os.rename(f.stand_in, f.final)
            elif f.how == "whole":
                old = f.final.with_name(_hidden(f.final, "replaced"))
                os.rename(f.final, old)
                try:
                    os.rename(f.stand_in, f.final)
                except OSError:
                    os.rename(old, f.final)
                    raise
                shutil.rmtree(old)
            else:
                _move_into(f.stand_in, f.final)

    def discard(self) -> None:
        """Remove every stand-in that is still there."""
        for f in self.folders:
            shutil.rmtree(f.stand_in, ignore_errors=True)


def _hidden(folder: Path, kind: str) -> str:
    """The name of a stand-in (``partial``) or of a folder on its way out (``replaced``)."""
    return f".{folder.name}.{kind}-{os.getpid()}"


def _move_into(source: Path, folder: Path) -> None:
    """Move everything in ``source`` into ``folder`` (subfolders into subfolders), then remove
    ``source``: renames in one file system."""
    for entry in source.iterdir():
        target = folder / entry.name
        if entry.is_dir() and target.is_dir() and not target.is_symlink():
            _move_into(entry, target)
        else:
            os.replace(entry, target)
    source.rmdir()


@contextlib.contextmanager
def staged_outputs() -> Iterator[Staging]:
    """Within: write every output into ``staging.folder(...)`` or ``staging.file(...)``; on
    leaving normally they are put in place, on an exception (Ctrl-C included) removed.

    Example: ``with staged_outputs() as staging: save(staging.file(out))``.
    """
    staging = Staging()
    try:
        yield staging
        with signals_held():
            staging.commit()
    except BaseException:
        # Already stopping (an error, a signal): a second signal must not cut the clean-up
        # short and leave a stand-in behind; it is dropped, the first one is reported.
        with signals_held(deliver=False):
            staging.discard()
        raise


@contextlib.contextmanager
def signals_held(deliver: bool = True) -> Iterator[None]:
    """Hold SIGINT and SIGTERM back until the block is done, then deliver them (their handlers
    run, or their default action is taken), or with ``deliver`` False drop them. Handlers can
    only be set in the main thread, and only replaced where Python knows the one in place:
    otherwise the block runs as it is."""
    known = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not None]
    if threading.current_thread() is not threading.main_thread():
        known = []
    held: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in known}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for s in dict.fromkeys(held if deliver else ()):
            signal.raise_signal(s)
