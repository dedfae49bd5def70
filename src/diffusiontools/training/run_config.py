"""A run's config whole: read from INI and overrides, checked by every layer that owns a rule,
and written back as INI into the run folder.

``config.py`` reads the file and checks what it owns: each key's type and bounds, and the rules
among the data, model, diffusion and training keys. The ``sampling.*`` keys that depend on the
sampler and the model (``eta`` for DDIM only, steps within 1..T, ...) are the sampling layer's
rules (``sampling/plan.py``). This module sits above both and asks both, so that a config is
refused when it is loaded, before anything trains or draws.
"""

from __future__ import annotations

import functools
import logging
import typing
from pathlib import Path

from ..config import (
    SWITCHED,
    Config,
    config_from_dict,
    ini_text,
    read_config,
    value_of,
    with_default,
)
from ..config import unused_keys as config_unused_keys
from ..diffusion import make_process
from ..sampling import plan
from ..sampling.registry import OPTIONS

logger = logging.getLogger(__name__)
SAMPLING_KEYS = tuple(f"sampling.{name}" for name in OPTIONS)


def load_config(
    path: str | Path | None,
    overrides: typing.Sequence[str] | typing.Mapping[str, typing.Any] = (),
    recorded: dict | None = None,
) -> Config:
    """Read a config and apply overrides; returns a checked, frozen :class:`Config`.

    ``path``: an INI file, the name of a packaged config (``"model1"``, ``"quickstart"``, see
    ``packaged_configs``), or None for the defaults. ``overrides``: ``{"training.epochs": 1}``
    or ``["training.epochs=1"]`` (as ``--set``). Raises DiffusionToolsError naming the file, the
    section or the ``section.key`` and value that is wrong, and what is allowed; a key written
    where it cannot take effect (``sampling.eta`` for the ancestral sampler) is refused too.
    ``recorded``: when the config resumes a run, the config its checkpoint stores
    (:meth:`Config.to_dict`): a key written with the value the run recorded is read as the record
    is (:func:`as_recorded`), not refused as a choice made now, so a run's own config.ini
    resumes though an earlier version wrote every key into it.
    """
    config, written = read_config(path, overrides)
    if recorded is not None:  # a resume: a key written as the run recorded it is that record
        stored = config_from_dict(recorded, "the run's checkpoint")
        as_stored = {key for key in written if value_of(config, key) == value_of(stored, key)}
        config, written = as_recorded(config, as_stored), written - as_stored
    return check_config(config, written)


def check_config(config: Config, written: typing.Collection[str] = ()) -> Config:
    """Every rule on ``config``: config.py's (:meth:`Config.check`), the process's (its
    factory refuses, e.g., levels a degradation cannot take) and the sampling layer's
    (``resolve_plan`` of the config's own settings); returns ``config``. ``written``: the keys
    the INI file and overrides wrote (a config built in code has none; a key of
    :func:`unused_keys` is then refused where it is not its default)."""
    config.check(written)
    make_process(config)  # the process's own rules: a degradation's levels
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


# The keys a record may hold where they cannot take effect. Every version stores every key it
# knows, and older versions let some through at any value: sampling.start = test was the default
# from 22fc0ad to e08d76e, so every Gaussian run of then holds it; sampling.eta, guidance and a
# Gaussian start passed at any value until 34ba8e5, diffusion.min_snr_gamma and
# training.eval_samples until e0db331. Until b1cd11f config.ini wrote every key, so a run's own
# config.ini writes all of these (diffusion.t_range = notebook for every Gaussian run since
# e08d76e). Such a key took no effect on the run and is read as taking none: its default, which
# is how a config of now says "no effect", so the checks pass and config.ini writes it as an
# unused comment. An INI or --set that writes one now is still refused (load_config).
RECORDED_UNUSED = (*SWITCHED, *SAMPLING_KEYS)


def as_recorded(
    config: Config, keys: typing.Collection[str] = RECORDED_UNUSED, source: str | None = None
) -> Config:
    """``config`` as read from a record that an earlier version may have written: each of
    ``keys`` that cannot take effect in it is set to its default (see RECORDED_UNUSED).
    ``sampling.start = test`` with the improved cold sampler, the default before e08d76e and
    refused now (Algorithm 2 needs a start on its own trajectory), is read as ``auto``; where
    ``source`` names the record, a warning says so. load_config passes, for a resume, the keys
    its INI and overrides write with the value the run recorded.
    """
    for key, (applies, _, _) in SWITCHED.items():  # in order: the kind-level switches first
        if key in keys and not applies(config):
            config = with_default(config, key)
    # Which sampling keys apply follows from the sampler and the model, not from their values:
    # ask with each at its default, which always passes.
    neutral = functools.reduce(with_default, SAMPLING_KEYS, config)
    unused = plan.unused_keys(neutral)
    for key in SAMPLING_KEYS:
        if key in keys and key in unused:
            config = with_default(config, key)
    sampler = plan.resolve_plan(neutral).sampler
    if "sampling.start" in keys and (sampler, config.sampling.start) == ("improved", "test"):
        if source is not None:
            logger.warning(
                "%s holds sampling.start=test for the improved sampler (the default of an "
                "earlier version, refused now: Algorithm 2 needs a start on its own "
                "trajectory); it samples with start auto (test_consistent)",
                source,
            )
        config = with_default(config, "sampling.start")
    return config
