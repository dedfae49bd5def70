"""Every sampler, registered once: its function, the process kind it fits, its default number of
steps, the sampling options it takes and one line of help.

The plan (``plan.py``: which settings a draw uses, and which it refuses), the ``sample`` command's
flags and the refusal texts all read this table; a new sampler is one file and one line here.
The table names each sampler's function as ``module:function`` and imports it when it is first
called, so that the command line builds its help without importing torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import UserError


@dataclass(frozen=True)
class Option:
    """A sampling option: the ``sampling.*`` key (and keyword, and ``--flag``) that sets it.

    ``keyword``: the sampler function takes it as a keyword argument; otherwise generation
    applies it around the sampler (guidance and clip_x0 to the model function, start to x_T).
    """

    name: str
    help: str
    keyword: bool = False


# Every option some sampler takes, in the order the CLI lists them. Types, bounds and choices
# are the SamplingConfig fields' (config.py).
OPTIONS = {
    option.name: option
    for option in (
        Option("eta", "DDIM stochasticity in [0, 1] (0: deterministic)", keyword=True),
        Option(
            "timestep_spacing",
            "time grid: ours, or diffusers' spacing of that name (to reproduce its scheduler's "
            "run exactly)",
            keyword=True,
        ),
        Option("guidance", "classifier-free guidance scale (1 = none; class-conditional models)"),
        Option("clip_x0", "clamp every step's x0 prediction to the pixel range"),
        Option("start", "a cold model's x_T (default: the run's sampling.start)"),
    )
}


@dataclass(frozen=True)
class Sampler:
    """One sampler: ``sample(model, process, x_T, generator, steps=None, on_step=None, **kw)``.

    ``function``: where that function lives, ``"module:name"`` within this package's sampling
    folder; ``kind``: the process it fits (gaussian or cold); ``default_steps``: the steps it
    takes when none are given (None: all T); ``options``: the names of ``OPTIONS`` it takes;
    ``starts``: the cold start modes it can run from; ``grid_function``: for a sampler that takes
    ``timestep_spacing``, its time grid (T, steps, spacing) -> ``timesteps.Grid``, so that a
    diffusers grid that cannot run is refused before anything is drawn.
    """

    name: str
    function: str
    kind: str
    default_steps: int | None
    options: frozenset[str]
    help: str
    starts: tuple[str, ...] = ()
    grid_function: str | None = None

    @property
    def sample(self) -> Callable:
        return _resolve(self.function)

    @property
    def grid(self) -> Callable | None:
        return None if self.grid_function is None else _resolve(self.grid_function)


def _resolve(where: str) -> Callable:
    module, name = where.split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)


GUIDED = frozenset({"guidance", "clip_x0"})  # every Gaussian sampler runs the guided, clipped model
SAMPLERS: dict[str, Sampler] = {
    s.name: s
    for s in (
        Sampler(
            "ancestral",
            "ancestral:sample_ancestral",
            "gaussian",
            default_steps=None,
            options=GUIDED,
            help="Prince Alg. 18.2 (DDPM): all T steps, or a respaced grid of --steps",
        ),
        Sampler(
            "ddim",
            "ddim:sample_ddim",
            "gaussian",
            default_steps=None,
            options=GUIDED | {"eta", "timestep_spacing"},
            help="DDIM (Song et al. 2021); eta 0 is deterministic",
            grid_function="timesteps:ddim_grid",
        ),
        Sampler(
            "dpm_solver",
            "dpm_solver:sample_dpm_solver",
            "gaussian",
            default_steps=20,  # the paper's "high quality in 15 to 20 steps" regime
            options=GUIDED | {"timestep_spacing"},
            help="DPM-Solver++(2M) (Lu et al. 2022): second order, deterministic",
            grid_function="timesteps:dpm_solver_grid",
        ),
        Sampler(
            "heun",
            "heun:sample_heun",
            "gaussian",
            default_steps=18,  # EDM's CIFAR-10 setting: 18 steps, 35 evaluations
            options=GUIDED,
            help="Heun (Karras et al. 2022, Alg. 1): second order, deterministic, on EDM's sigma "
            "grid; 2 steps - 1 network evaluations",
        ),
        Sampler(
            "euler_ancestral",
            "euler_ancestral:sample_euler_ancestral",
            "gaussian",
            default_steps=50,  # its noise needs more steps than ODE solvers
            options=GUIDED,
            help="Euler ancestral (k-diffusion): Euler steps of the ODE and fresh noise at each, "
            "on EDM's sigma grid (Karras et al. 2022)",
        ),
        Sampler(
            "naive",
            "cold_naive:sample_cold_naive",
            "cold",
            default_steps=None,
            options=frozenset({"start"}),
            help="Bansal et al. 2022 Alg. 1, the report's cold sampler",
            starts=("test", "test_consistent", "gmm"),
        ),
        Sampler(
            "improved",
            "cold_improved:sample_cold_improved",
            "cold",
            default_steps=None,
            options=frozenset({"start"}),
            help="Bansal et al. 2022 Alg. 2, from a start on its own trajectory",
            starts=("test_consistent", "gmm"),
        ),
    )
}

DEFAULT_SAMPLER = {"gaussian": "ancestral", "cold": "naive"}


def resolve_sampler(name: str, kind: str) -> str:
    """The real name of sampler ``name`` for a ``kind`` process (``default``: the report's);
    refuses an unknown name and a sampler of the other kind."""
    if name == "default":
        name = DEFAULT_SAMPLER[kind]
    if name not in SAMPLERS:
        raise UserError(f"unknown sampler '{name}'; allowed: default, {', '.join(SAMPLERS)}")
    sampler_kind = SAMPLERS[name].kind
    if sampler_kind != kind:
        fitting = [n for n, s in SAMPLERS.items() if s.kind == kind]
        raise UserError(
            f"sampler '{name}' is for {sampler_kind} models, this model is {kind}; "
            f"use one of: {', '.join(fitting)}"
        )
    return name


def default_steps(name: str) -> int | None:
    """The steps sampler ``name`` takes when none are given (None: all T)."""
    return SAMPLERS[name].default_steps


def get_sampler(name: str, kind: str) -> Callable:
    """The sampler function called ``name`` (checked by :func:`resolve_sampler`)."""
    return SAMPLERS[resolve_sampler(name, kind)].sample


def takers(option: str) -> list[str]:
    """The samplers that take ``option``, in registry order."""
    return [name for name, s in SAMPLERS.items() if option in s.options]
