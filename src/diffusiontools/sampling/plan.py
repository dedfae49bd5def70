"""One sampling request -> one plan: which sampler runs, for how many steps, with which options.

A request is a run's config and what the caller asks on top of it (the ``sample`` flags, the
API's keywords): sampler, steps, digit, and the options of ``registry.OPTIONS`` (eta,
timestep_spacing, guidance, clip_x0, start). :func:`resolve_plan` is the one place that decides
what a draw does and refuses what cannot take effect. Generation runs its plan, the NPZ records
it, and the config checks (``training/run_config.py``) resolve the config's own request with it.

The rules:

1. The sampler is the request's, else the config's; ``default`` is the report's for the model's
   kind (``registry.DEFAULT_SAMPLER``).
2. The config's ``steps``, ``eta`` and ``timestep_spacing`` belong to the config's sampler: a
   request naming another sampler starts from that sampler's defaults (its default steps, the
   fields' defaults: eta 0, our grid) unless it gives them.
3. Steps are 1..T for every sampler (fewer than T on a respaced or strided grid).
4. An option applies where the sampler takes it (``registry.SAMPLERS``), guidance only on a
   class-conditional model. Where it does not apply, its plan value is None and it is refused
   when it is not its "off" value (the field's default: eta 0, ours, guidance 1, false, auto)
   and when it was written (given in the request, or in the INI file: ``written``), whatever its
   value; guidance 1 alone may be written anywhere, being what an unconditional model does.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass

from ..config import Config, SamplingConfig, check_field, ini_value, refuse_unused
from ..diffusion.cold import resolve_start
from ..diffusion.gaussian import GaussianDiffusion
from ..errors import UserError
from .registry import OPTIONS, SAMPLERS, resolve_sampler, takers
from .timesteps import check_noisy, check_steps

FIELDS = {f.name: f for f in dataclasses.fields(SamplingConfig)}
SAMPLER_OWN = ("steps", "eta", "timestep_spacing")  # rule 2: they belong to the config's sampler
NEUTRAL = {"guidance": 1.0}  # what a model that ignores the option does anyway: may be written
KINDS = {"gaussian": "Gaussian", "cold": "cold"}


@dataclass(frozen=True)
class SamplingPlan:
    """What a draw does, every choice resolved; ``None`` marks an option that does not apply.

    Its fields are the metadata ``samples.npz`` records (``dataclasses.asdict``)."""

    sampler: str  # the real name, never "default"
    steps: int  # the sampler's steps (network evaluations per sample for most samplers)
    eta: float | None  # DDIM only
    timestep_spacing: str | None  # ddim and dpm_solver only
    guidance: float | None  # class-conditional models only
    clip_x0: bool | None  # Gaussian samplers only
    digit: int | None  # the class label asked for (``label=``, or its alias ``digit=``)
    # The class labels drawn with (generation.class_labels): "all 7" (the label given), or
    # "cycled 0-9" (every class in turn, 0, 1, ..., 9, 0, ...); None where no label takes
    # effect (an unconditional model, or guidance 0: the unconditional prediction alone).
    labels: str | None
    cold_start: str | None  # cold samplers only: test, test_consistent or gmm ("auto" resolved)

    def keywords(self) -> dict[str, typing.Any]:
        """The options the sampler function takes as keywords (eta, timestep_spacing), set."""
        names = [name for name, option in OPTIONS.items() if option.keyword]
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


def resolve_plan(
    config: Config,
    sampler: str | None = None,
    steps: int | None = None,
    digit: int | None = None,
    *,
    label_name: str = "digit",
    written: typing.Collection[str] = (),
    **options: typing.Any,
) -> SamplingPlan:
    """The plan of drawing from ``config``'s model with this request (the module doc's rules).

    ``sampler``, ``steps``, ``digit`` (the class label to draw, 0..num_classes - 1) and
    ``options`` (eta, timestep_spacing, guidance, clip_x0, start; None: not given) are the
    caller's; ``label_name``: the argument that gave ``digit`` (label, or its alias digit), as
    errors name it; ``written``: the ``sampling.*`` keys the INI file wrote, when a config is
    loaded. Raises DiffusionToolsError naming the ``sampling.*`` key (or ``label_name``) of a
    setting that cannot take effect.
    """
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise TypeError(f"resolve_plan() got unknown options {sorted(unknown)}")
    s, kind, T = config.sampling, config.diffusion.kind, config.diffusion.T
    given = {key: value for key, value in {"steps": steps, **options}.items() if value is not None}
    for key, value in options.items():  # their types and bounds; steps: rule 3
        check_field(f"sampling.{key}", value, FIELDS[key].metadata)
    name = resolve_sampler(sampler or s.sampler, kind)
    spec = SAMPLERS[name]
    values = {key: getattr(s, key) for key in ("steps", *OPTIONS)}
    if sampler is not None and sampler != s.sampler:  # rule 2
        values.update({key: FIELDS[key].default for key in SAMPLER_OWN})
    values.update(given)
    written = set(written) | {f"sampling.{key}" for key in given}

    # Rule 3: steps.
    if values["steps"] is None:
        values["steps"] = min(spec.default_steps or T, T)
    check_steps(T, values["steps"], "sampling.steps")

    # Rule 4: each option applies, or is refused unless it is off and was not written.
    conditional = config.model.num_classes > 0
    applied = {}  # option -> its value, None where it does not apply
    for key in OPTIONS:
        value = values[key]
        applies = key in spec.options and (key != "guidance" or conditional)
        if applies:
            applied[key] = value
            continue
        applied[key] = None
        scope, ignored_by = _scope(key, name, spec.kind, conditional)
        if key == "guidance" and not conditional and value != FIELDS[key].default:
            raise UserError(
                f"sampling.guidance={ini_value(value)} needs a class-conditional model "
                "(model.num_classes > 0); give 1 (no guidance)"
            )
        if value != FIELDS[key].default or NEUTRAL.get(key) != value:  # one rule, one sentence
            refuse_unused(f"sampling.{key}", value, scope, ignored_by, f"sampling.{key}" in written)

    if applied["timestep_spacing"] not in (None, "ours"):
        try:  # diffusers' grids: one may hold t = -1, or t = 0 where the cosine alpha_bar is 1
            spacing = applied["timestep_spacing"]
            grid = spec.grid(T, values["steps"], spacing)
            check_noisy(grid, GaussianDiffusion.from_config(config.diffusion).alpha_bar, spacing)
        except UserError as exc:
            raise UserError(f"sampling.{exc}") from None
    cold_start = None
    if applied["start"] is not None:
        cold_start = resolve_start(applied["start"], name)
        if cold_start not in spec.starts:
            fitting = " and ".join(n for n in SAMPLERS if cold_start in SAMPLERS[n].starts)
            raise UserError(
                f"sampling.start={cold_start} is for the {fitting} sampler only, not {name}: "
                f"use {', '.join(spec.starts)} or auto"
            )
    if digit is not None:
        _check_label(digit, label_name, config.model.num_classes, applied["guidance"])
    labels = None
    if conditional and applied["guidance"] != 0:
        labels = f"all {digit}" if digit is not None else f"cycled 0-{config.model.num_classes - 1}"
    return SamplingPlan(
        sampler=name,
        steps=values["steps"],
        eta=applied["eta"],
        timestep_spacing=applied["timestep_spacing"],
        guidance=applied["guidance"],
        clip_x0=applied["clip_x0"],
        digit=digit,
        labels=labels,
        cold_start=cold_start,
    )


def unused_keys(config: Config) -> dict[str, tuple[str, str]]:
    """The ``sampling.*`` keys that cannot take effect in ``config`` (with its own sampler):
    key -> (what it applies to, what would ignore it), as ``config.unused_keys`` gives the
    others. Refuses, as :func:`resolve_plan`, a config whose sampling keys cannot take effect."""
    plan = resolve_plan(config)
    spec, conditional = SAMPLERS[plan.sampler], config.model.num_classes > 0
    found = {}
    for key in OPTIONS:
        if getattr(plan, "cold_start" if key == "start" else key) is None:
            scope, ignored_by = _scope(key, plan.sampler, spec.kind, conditional)
            found[f"sampling.{key}"] = (scope, ignored_by)
    return found


def _scope(key: str, name: str, kind: str, conditional: bool) -> tuple[str, str]:
    """(what option ``key`` applies to, what ignores it here), in the words of the registry:
    the samplers that take it, or a kind of model where they are all the samplers of that
    kind."""
    if key == "guidance" and not conditional:
        return "class-conditional models (model.num_classes > 0)", "this unconditional model"
    names = takers(key)
    kinds = {SAMPLERS[n].kind for n in names}
    if len(kinds) == 1 and set(names) == {n for n, s in SAMPLERS.items() if s.kind in kinds}:
        (own,) = kinds
        return f"{KINDS[own]} models", f"a {KINDS[kind]} model"
    plural = "s" if len(names) > 1 else ""
    listed = " and ".join(names)
    return f"the {listed} sampler{plural}", f"the {name} sampler"


def _check_label(label: int, name: str, num_classes: int, guidance: float | None) -> None:
    """Refuse class ``label``, given as argument ``name`` (label, or its alias digit), that this
    model cannot draw."""
    if not num_classes:
        raise UserError(
            f"{name}={label} needs a class-conditional model (model.num_classes > 0); this "
            "model is unconditional"
        )
    if not 0 <= label < num_classes:
        raise UserError(
            f"{name}={label} is outside 0..{num_classes - 1} (model.num_classes = {num_classes})"
        )
    if guidance == 0:
        raise UserError(
            f"{name}={label} takes no effect with sampling.guidance=0, which samples the "
            "unconditional prediction alone: give a guidance above 0 (1 = the class's own)"
        )
