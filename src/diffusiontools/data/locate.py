"""Where a data set's files are looked for, whether they may be downloaded, and what to say if not.

For a data set registered as ``name`` the folders searched, in order, are:

1. ``data_dir`` (the config's ``data.dir``), when given; one that does not exist is an error;
2. for ``mnist`` only, ``$DIFFUSIONTOOLS_DATA`` (:func:`candidate_folders`);
3. the user cache ``${XDG_CACHE_HOME:-~/.cache}/diffusiontools/<name>``, where downloads go.

Downloads are off when the caller says so or ``DIFFUSIONTOOLS_OFFLINE`` is set to a non-empty
value other than ``0`` (a cluster node, a test suite).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import UserError

ENV_VAR = "DIFFUSIONTOOLS_DATA"
OFFLINE_VAR = "DIFFUSIONTOOLS_OFFLINE"


def user_cache_dir() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/diffusiontools/mnist``: where MNIST's downloads go."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "diffusiontools" / "mnist"


def candidate_folders(data_dir: str | None) -> list[Path]:
    """MNIST's folders, in order: ``data_dir``, ``$DIFFUSIONTOOLS_DATA``, the user cache."""
    folders = [Path(data_dir).expanduser()] if data_dir else []
    if os.environ.get(ENV_VAR):
        folders.append(Path(os.environ[ENV_VAR]).expanduser())
    folders.append(user_cache_dir())
    return folders


def cache_dir(name: str) -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/diffusiontools/<name>``: where ``name``'s downloads go."""
    return user_cache_dir().parent / name


def search_folders(name: str, data_dir: str | None) -> list[Path]:
    """The folders searched for ``name``'s files, in order (see the module docstring)."""
    if data_dir and not Path(data_dir).expanduser().is_dir():
        # An explicit folder that is not there is a typo, not a reason to look elsewhere.
        raise UserError(f"data.dir={data_dir} does not exist; fix the path or leave data.dir unset")
    if name == "mnist":
        return candidate_folders(data_dir)
    return ([Path(data_dir).expanduser()] if data_dir else []) + [cache_dir(name)]


def download_refusal(download: bool) -> str | None:
    """Why nothing may be downloaded now, or None when downloading is allowed."""
    if not download:
        return "downloading is disabled"
    value = os.environ.get(OFFLINE_VAR, "0")
    if value not in ("", "0"):
        return f"downloading is off: {OFFLINE_VAR}={value}"
    return None


def not_found(title: str, names: Sequence[str], folders: Sequence[Path], reason: str) -> UserError:
    """The one error for files found nowhere: where they were looked for and where to put them."""
    searched = ", ".join(str(f) for f in folders)
    return UserError(
        f"{title} files not found in {searched} and not downloaded ({reason}); put "
        f"{', '.join(names)} in data.dir or in {folders[-1]}, or allow network access"
    )
