"""A run's config whole: read from INI and overrides, checked by every layer that owns a rule,
and written back as INI into the run folder.

``config.py`` reads the file and checks what it owns: each key's type and bounds, and the rules
among the data, model, diffusion and training keys. The ``sampling.*`` keys that depend on the
sampler and the model (``eta`` for DDIM only, steps within 1..T, ...) are the sampling layer's
rules (``sampling/plan.py``). This module sits above both and asks both, so that a config is
refused when it is loaded, before anything trains or draws.
"""

from __future__ import annotations

import typing
from pathlib import Path

from ..config import Config, ini_text, read_config
from ..config import unused_keys as config_unused_keys
from ..sampling import plan


def load_config(
    path: str | Path | None,
    overrides: typing.Sequence[str] | typing.Mapping[str, typing.Any] = (),
) -> Config:
    """Read a config and apply overrides; returns a checked, frozen :class:`Config`.

    ``path``: an INI file, the name of a packaged config (``"model1"``, ``"quickstart"``, see
    ``packaged_configs``), or None for the defaults. ``overrides``: ``{"training.epochs": 1}``
    or ``["training.epochs=1"]`` (as ``--set``). Raises DiffusionToolsError naming the file, the
    section or the ``section.key`` and value that is wrong, and what is allowed; a key written
    where it cannot take effect (``sampling.eta`` for the ancestral sampler) is refused too.
    """
    config, written = read_config(path, overrides)
    return check_config(config, written)


def check_config(config: Config, written: typing.Collection[str] = ()) -> Config:
    """Every rule on ``config``: config.py's (:meth:`Config.check`) and the sampling layer's
    (``resolve_plan`` of the config's own settings); returns ``config``. ``written``: the keys
    the INI file and overrides wrote (a config built in code has none; a key of
    :func:`unused_keys` is then refused where it is not its default)."""
    config.check(written)
    plan.resolve_plan(config, written=written)
    return config


def unused_keys(config: Config) -> dict[str, tuple[str, str]]:
    """The keys that cannot take effect in ``config``: key -> (what it applies to, what would
    ignore it), config.py's and the sampling layer's."""
    return {**config_unused_keys(config), **plan.unused_keys(config)}


def to_ini(config: Config) -> str:
    """The resolved config as INI text, written into every run folder. A key that did not take
    effect (:func:`unused_keys`) is a comment saying so: the file loads back as the same config,
    and no key in it claims a setting the run did not use."""
    return ini_text(config, unused_keys(config))
