"""Samplers: plain functions with one signature, registered with the process kind they fit."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import UserError
from .ancestral import sample_ancestral
from .cold_improved import sample_cold_improved
from .cold_naive import sample_cold_naive
from .ddim import sample_ddim
from .dpm_solver import sample_dpm_solver

# name -> (sampler function, the process kind it works with)
SAMPLERS: dict[str, tuple[Callable, str]] = {
    "ancestral": (sample_ancestral, "gaussian"),
    "ddim": (sample_ddim, "gaussian"),  # eta from a keyword: sampling.generate passes it
    "dpm_solver": (sample_dpm_solver, "gaussian"),
    "naive": (sample_cold_naive, "cold"),
    "improved": (sample_cold_improved, "cold"),
}

DEFAULT_SAMPLER = {"gaussian": "ancestral", "cold": "naive"}


def resolve_sampler(name: str, kind: str) -> str:
    """The real name of sampler ``name`` for a ``kind`` process (``default``: the report's);
    refuses an unknown name and a sampler of the other kind."""
    if name == "default":
        name = DEFAULT_SAMPLER[kind]
    if name not in SAMPLERS:
        raise UserError(f"unknown sampler '{name}'; allowed: default, {', '.join(SAMPLERS)}")
    sampler_kind = SAMPLERS[name][1]
    if sampler_kind != kind:
        fitting = [n for n, (_, k) in SAMPLERS.items() if k == kind]
        raise UserError(
            f"sampler '{name}' is for {sampler_kind} models, this model is {kind}; "
            f"use one of: {', '.join(fitting)}"
        )
    return name


def get_sampler(name: str, kind: str) -> Callable:
    """The sampler function called ``name`` (checked by :func:`resolve_sampler`)."""
    return SAMPLERS[resolve_sampler(name, kind)][0]
