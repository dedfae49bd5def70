"""The sampler registry and the plan: every sampler registered once, every option's rule and
refusal derived from it, and the ``sample`` command's flags read from it."""

from __future__ import annotations

import dataclasses

import pytest
from tiny_runs import single_thread, tiny_config  # noqa: F401 (single_thread: autouse fixture)

from diffusiontools import cli
from diffusiontools.config import Config, DiffusionConfig, SamplingConfig
from diffusiontools.errors import UserError
from diffusiontools.sampling.plan import SamplingPlan, resolve_plan
from diffusiontools.sampling.registry import OPTIONS, SAMPLERS

FIELDS = {f.name for f in dataclasses.fields(SamplingConfig)}


def test_every_option_is_a_sampling_key_and_taken_by_some_sampler():
    assert set(OPTIONS) <= FIELDS
    for name, spec in SAMPLERS.items():
        assert spec.name == name and spec.kind in ("gaussian", "cold")
        assert spec.options <= set(OPTIONS), name
        assert (spec.grid is not None) == ("timestep_spacing" in spec.options), name
        assert bool(spec.starts) == ("start" in spec.options), name
    assert {o for spec in SAMPLERS.values() for o in spec.options} == set(OPTIONS)
    # The plan records each option (start as the resolved cold_start), the digit and the labels
    # drawn with, and nothing else.
    recorded = {f.name for f in dataclasses.fields(SamplingPlan)}
    expected = {"sampler", "steps", "digit", "labels", "cold_start", *OPTIONS} - {"start"}
    assert recorded == expected


def test_the_sample_flags_and_their_help_come_from_the_registry(capsys):
    with pytest.raises(SystemExit):
        cli.main(["sample", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name, spec in SAMPLERS.items():
        assert f"{name} ({spec.kind}): {' '.join(spec.help.split())}" in text
    for name in OPTIONS:
        assert "--" + name.replace("_", "-") in text


@pytest.mark.parametrize("name", [n for n, s in SAMPLERS.items() if s.kind == "gaussian"])
def test_a_gaussian_sampler_picked_starts_from_its_own_defaults(name):
    """The run's steps, eta and grid belong to the run's sampler (here DDIM, 5 steps, eta 1,
    trailing): another sampler picked takes its own defaults, the same for sample and evaluate."""
    config = tiny_config(
        "sampling.sampler=ddim",
        "sampling.steps=5",
        "sampling.eta=1",
        "sampling.timestep_spacing=trailing",
    )
    plan = resolve_plan(config, name)
    if name == "ddim":
        assert (plan.steps, plan.eta, plan.timestep_spacing) == (5, 1.0, "trailing")
        return
    spec = SAMPLERS[name]
    assert plan.steps == min(spec.default_steps or 20, 20)
    assert plan.eta is None
    assert plan.timestep_spacing == ("ours" if "timestep_spacing" in spec.options else None)


def test_a_refusal_names_what_takes_the_option():
    config = tiny_config()
    said = "sampling.eta=0.5 applies to the ddim sampler only; the dpm_solver sampler would ignore"
    with pytest.raises(UserError, match=said):  # the wording of eta=0 given to it too
        resolve_plan(config, "dpm_solver", eta=0.5)
    with pytest.raises(UserError, match="applies to the ddim and dpm_solver samplers only; the"):
        resolve_plan(config, "ancestral", timestep_spacing="ours")
    with pytest.raises(UserError, match="sampling.steps=21 is out of range for this model: give"):
        resolve_plan(config, steps=21)
    cold = Config(diffusion=DiffusionConfig(kind="cold", T=20))
    with pytest.raises(UserError, match="sampling.start=test is for the naive sampler only"):
        resolve_plan(cold, "improved", start="test")
    assert resolve_plan(cold, "improved").cold_start == "test_consistent"
