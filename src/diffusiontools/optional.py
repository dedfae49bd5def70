"""Optional dependencies: imported where an option needs them, refused in one sentence otherwise.

The run-time package works without the extras; an option that needs one names it, e.g.
``pip install 'diffusiontools[diffusers]'``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import UserError


def require(module: str, extra: str, needed_by: str) -> ModuleType:
    """Import ``module`` or refuse ``needed_by`` (a config key or argument, e.g. ``training.log =
    tensorboard``) with the extra that provides it.

    Raises:
        DiffusionToolsError: the module is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UserError(
            f"{needed_by} needs the optional package {module.split('.')[0]!r}, which is not "
            f"installed; install it with: pip install 'diffusiontools[{extra}]'"
        ) from exc
