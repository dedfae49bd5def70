"""Runs you can trust, the sampling side: every sampling option takes effect or is refused, the NPZ
records what was done, non-finite samples never become images, and sample i does not depend on
how many samples are drawn or how they are batched (its random numbers bit for bit, the sample
itself up to the float rounding of the batched network).

Tables, one row per input, each with its expected outcome written out: errors through the real
CLI (exit 2, one line, the fragments named), config keys refused at load time, the metadata of
accepted draws, and the samplers whose sample order is checked.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_runs import (  # noqa: F401 (single_thread: autouse fixture)
    copy_run,
    reference_run,
    single_thread,
    tiny_config,
    tiny_ini_for,
    train_tiny,
    write_ini,
)
from torch.testing import assert_close

from diffusiontools import cli
from diffusiontools.data import to_uint8
from diffusiontools.diffusion import make_process
from diffusiontools.diffusion.noise import sample_generators
from diffusiontools.errors import UserError
from diffusiontools.models import make_network
from diffusiontools.outputs.figures import image_grid
from diffusiontools.sampling.generation import check_finite, generate, trajectory
from diffusiontools.sampling.plan import resolve_plan
from diffusiontools.training import checkpoint as ckpt_io
from diffusiontools.training.run_config import load_config
from diffusiontools.training.trained_model import load_trained

CPU = torch.device("cpu")
SHORT_TRAINING = ("training.epochs=1", "training.max_steps=2")


# --- runs the rows use ---------------------------------------------------------------------------


@functools.cache
def cold_run() -> Path:
    """A tiny cold run (pixel swap, T = 20), two training steps."""
    run = reference_run().parent / "trust-cold"
    return train_tiny(run, "diffusion.kind=cold", "diffusion.T=20", *SHORT_TRAINING)


@functools.cache
def conditional_run() -> Path:
    """A tiny class-conditional Gaussian run (T = 20), two training steps."""
    return train_tiny(
        reference_run().parent / "trust-cond", "model.num_classes=10", *SHORT_TRAINING
    )


def edit_latest(run: Path, edit: Callable[[dict], None]) -> Path:
    path = ckpt_io.latest_path(run)
    ckpt = torch.load(path, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, path)
    return run


def nan_weights(ckpt: dict) -> None:
    for kind in ("model", "ema"):
        if ckpt.get(kind) is not None:
            for tensor in ckpt[kind].values():
                if tensor.is_floating_point():
                    tensor.fill_(float("nan"))


def stored_sampling(**keys) -> Callable[[dict], None]:
    """A run whose stored config holds ``keys`` (as one written before they were checked)."""

    def edit(ckpt: dict) -> None:
        ckpt["config"]["sampling"].update(keys)

    return edit


run_ddim_trailing = stored_sampling(sampler="ddim", steps=5, eta=1.0, timestep_spacing="trailing")


def reference(tmp: Path, edit: Callable[[dict], None] | None = None) -> Path:
    if edit is None:
        return reference_run()
    return edit_latest(copy_run(reference_run(), tmp / "run"), edit)


def cold(tmp: Path, edit: Callable[[dict], None] | None = None) -> Path:
    if edit is None:
        return cold_run()
    return edit_latest(copy_run(cold_run(), tmp / "run"), edit)


# --- refused through the CLI: exit 2, one line naming the flag or key ----------------------------


@dataclass
class Refused:
    name: str
    argv: Callable[[Path], list[str]]  # built under tmp; "{npz}" outputs go to tmp / "s.npz"
    fragments: tuple[str, ...]


def sample(run: Callable[[Path], Path], *flags: str) -> Callable[[Path], list[str]]:
    def argv(tmp: Path) -> list[str]:
        out = ["--out", str(tmp / "grid.png"), "--npz", str(tmp / "s.npz")]
        return ["sample", str(run(tmp)), *out, "-n", "16", *flags]

    return argv


def evaluate(*args: str, run: Callable[[Path], Path] | None = None) -> Callable:
    def argv(tmp: Path) -> list[str]:
        runs = [str(run(tmp))] if run else []
        small = ["--tsne-reference", "50", "--test-reference", "50"]  # fits the embedded set too
        return ["evaluate", *runs, "--out", str(tmp / "eval"), "--n-samples", "16", *small, *args]

    return argv


def npz_file(tmp: Path) -> str:
    path = tmp / "given.npz"
    np.savez(path, images=np.zeros((16, 28, 28), np.uint8))
    return str(path)


REFUSED = [
    # steps: only the few-step samplers take fewer than T.
    Refused(
        "cold --steps 21",
        sample(cold, "--steps", "21"),
        ("--steps 21", "out of range for this model: give 1..20"),
    ),
    Refused(
        "cold improved from the report's start",
        sample(cold, "--sampler", "improved", "--start", "test"),
        ("--start test", "naive sampler only"),
    ),
    Refused(
        "--eta with the ancestral sampler",
        sample(reference, "--eta", "0.5"),
        ("--eta 0.5 applies to the ddim sampler only; the ancestral sampler would ignore it",),
    ),
    Refused(
        "--eta 0 with the ancestral sampler",
        sample(reference, "--eta", "0"),
        (
            "--eta 0.0 applies to the ddim sampler only; the ancestral sampler would ignore it: "
            "remove it",
        ),
    ),
    Refused(
        "--timestep-spacing with the ancestral sampler",
        sample(reference, "--timestep-spacing", "trailing"),
        ("--timestep-spacing trailing applies to the ddim and dpm_solver samplers only",),
    ),
    Refused(
        "--timestep-spacing ours with the ancestral sampler",
        sample(reference, "--timestep-spacing", "ours"),
        ("--timestep-spacing ours applies to the ddim and dpm_solver samplers only",),
    ),
    Refused(
        "--timestep-spacing on a cold model",
        sample(cold, "--timestep-spacing", "leading"),
        ("--timestep-spacing leading applies to the ddim and dpm_solver", "naive sampler would"),
    ),
    Refused(
        "diffusers' trailing grid holding t = -1",
        sample(reference, "--sampler", "ddim", "--steps", "15", "--timestep-spacing", "trailing"),
        ("--timestep-spacing trailing with --steps 15 and T=20", "holds 16 times"),
    ),
    Refused(
        "--guidance on an unconditional model",
        sample(reference, "--guidance", "3"),
        ("--guidance 3.0 needs a class-conditional model",),
    ),
    Refused(
        "--clip-x0 on a cold model",
        sample(cold, "--clip-x0"),
        ("--clip-x0 applies to Gaussian models only",),  # the flag as typed: it takes no value
    ),
    Refused(
        "--no-clip-x0 on a cold model",
        sample(cold, "--no-clip-x0"),
        ("--no-clip-x0 applies to Gaussian models only; a cold model would ignore it: remove it",),
    ),
    Refused(
        "--start on a Gaussian model",
        sample(reference, "--start", "gmm"),
        ("--start gmm applies to cold models only",),
    ),
    Refused(
        "ancestral --steps 21 > T",
        sample(reference, "--steps", "21"),
        ("--steps 21", "give 1..20"),
    ),
    Refused(
        "ddim --steps 21 > T",
        sample(reference, "--sampler", "ddim", "--steps", "21"),
        ("--steps 21", "give 1..20"),
    ),
    Refused(
        "dpm_solver --steps 0",
        sample(reference, "--sampler", "dpm_solver", "--steps", "0"),
        ("--steps 0", "give 1..20"),
    ),
    Refused(
        "gaussian sampler on cold",
        sample(cold, "--sampler", "ddim"),
        ("'ddim'", "gaussian models", "naive, improved"),
    ),
    # digit: class-conditional models only, one of their classes.
    Refused(
        "digit on unconditional",
        sample(reference, "--digit", "3"),
        ("--digit 3", "class-conditional"),
    ),
    Refused("digit on cold", sample(cold, "--digit", "3"), ("--digit 3", "class-conditional")),
    Refused(
        "digit out of range",
        sample(lambda tmp: conditional_run(), "--digit", "10"),
        ("--digit 10", "0..9"),
    ),
    Refused(
        "digit at guidance 0 (the unconditional prediction alone)",
        sample(lambda tmp: conditional_run(), "--digit", "3", "--guidance", "0"),
        ("--digit 3 takes no effect with --guidance 0,", "give a guidance above 0"),
    ),
    # A stored value that applies but is out of range (keys that cannot apply: read as unused,
    # see test_a_stored_key_that_cannot_take_effect_is_read_as_unused).
    Refused(
        "stored steps with ancestral > T",
        sample(lambda tmp: reference(tmp, stored_sampling(steps=25))),
        ("sampling.steps=25", "give 1..20"),
    ),
    # --epochs: every epoch checked before anything is drawn.
    Refused(
        "--epochs with a missing epoch",
        sample(reference, "--epochs", "0,9"),
        ("in --epochs", "--epoch 9", "0, 1, 2"),
    ),
    # Non-finite samples.
    Refused(
        "NaN weights",
        sample(lambda tmp: reference(tmp, nan_weights)),
        ("16 of 16 samples are not finite (NaN or inf)", "damaged"),
    ),
    Refused(
        "NaN weights, trajectory",
        sample(lambda tmp: reference(tmp, nan_weights), "--trajectory"),
        ("16 of 16 samples are not finite",),
    ),
    # evaluate and reconstruct.
    Refused(
        "evaluate ancestral --steps 0",
        evaluate("--steps", "0", run=reference),
        ("--steps 0",),
    ),
    Refused(
        "evaluate NaN weights",
        evaluate(run=lambda tmp: reference(tmp, nan_weights)),
        ("16 of 16 samples are not finite",),
    ),
    Refused(
        "evaluate NPZ only with --sampler",
        lambda tmp: [*evaluate("--sampler", "ddim")(tmp), "--npz", npz_file(tmp)],
        ("--sampler, --steps and --epoch apply to RUN_DIRs",),
    ),
    Refused(
        "evaluate --reconstruction --steps",
        evaluate("--reconstruction", "--steps", "3", run=cold),
        ("--sampler and --steps do not apply to --reconstruction",),
    ),
    Refused(
        "reconstruct a sampler twice",
        lambda tmp: ["reconstruct", str(cold_run()), "-n", "4", "--samplers", "naive,naive"],
        ("--samplers naive,naive", "twice"),
    ),
    Refused(
        "reconstruct NaN weights",
        lambda tmp: ["reconstruct", str(cold(tmp, nan_weights)), "-n", "4", "--out", str(tmp)],
        ("4 of 4 samples are not finite",),
    ),
]


@pytest.mark.parametrize("row", REFUSED, ids=[row.name for row in REFUSED])
def test_refused_with_one_named_line_and_nothing_written(row: Refused, tmp_path, capsys):
    argv = row.argv(tmp_path)
    capsys.readouterr()
    assert cli.main([*argv, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    for fragment in row.fragments:
        assert fragment in errors[0]
    assert not (tmp_path / "s.npz").exists() and not (tmp_path / "grid.png").exists()


STORED_UNUSED = [
    ("eta with ancestral", reference, {"eta": 0.5}, "eta"),
    ("guidance on unconditional", reference, {"guidance": 3.0}, "guidance"),
    ("gmm start on gaussian", reference, {"start": "gmm"}, "cold_start"),
    ("clip_x0 on cold", cold, {"clip_x0": True}, "clip_x0"),
]


@pytest.mark.parametrize(
    "run, keys, field", [r[1:] for r in STORED_UNUSED], ids=[r[0] for r in STORED_UNUSED]
)
def test_a_stored_key_that_cannot_take_effect_is_read_as_unused(run, keys, field, tmp_path):
    """Runs written before these keys were checked stored them; they took no effect then and
    take none now (issue 22: old runs keep loading): read as the defaults they never overrode,
    never refused, and the NPZ records the setting as not applying (None)."""
    run_dir = run(tmp_path, stored_sampling(**keys))
    assert cli.main([*sample(lambda tmp: run_dir)(tmp_path), "--device", "cpu"]) == 0
    with np.load(tmp_path / "s.npz") as data:
        meta = json.loads(str(data["meta"]))
    assert meta[field] is None and meta["run"] == str(run_dir)  # None: does not apply


def test_an_empty_epoch_list_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["sample", str(reference_run()), "--epochs", ","])
    assert exit_.value.code == 2 and "',' is not a comma-separated list" in capsys.readouterr().err


# --- refused when the config is loaded -----------------------------------------------------------

CONFIG_ROWS = [
    # (overrides, expected error fragments; () = accepted)
    (("sampling.steps=5",), ()),  # the ancestral sampler respaced (Nichol & Dhariwal 2021)
    (("sampling.steps=21",), ("sampling.steps=21", "give 1..20")),
    (("sampling.sampler=ddim", "sampling.steps=21"), ("sampling.steps=21", "give 1..20")),
    (
        ("sampling.eta=0.5",),
        ("sampling.eta=0.5", "ddim sampler only", "the ancestral sampler would ignore it"),
    ),
    (
        ("sampling.sampler=dpm_solver", "sampling.eta=1"),
        ("sampling.eta=1.0", "the dpm_solver sampler would ignore it"),
    ),
    (("sampling.guidance=3",), ("sampling.guidance=3.0", "model.num_classes > 0")),
    (("sampling.start=gmm",), ("sampling.start=gmm", "cold models only")),
    (("sampling.sampler=magic",), ("unknown sampler 'magic'", "ancestral")),
    (("sampling.sampler=naive",), ("sampler 'naive' is for cold models",)),
    (("diffusion.kind=cold", "sampling.clip_x0=true"), ("sampling.clip_x0=true",)),
    (("diffusion.kind=cold", "sampling.steps=3"), ()),  # a strided grid (Bansal et al.)
    (("diffusion.kind=cold", "sampling.steps=30"), ("sampling.steps=30", "give 1..20")),
    (
        ("diffusion.kind=cold", "sampling.sampler=improved", "sampling.start=test"),
        ("sampling.start=test", "naive sampler only"),
    ),
    (("diffusion.kind=cold", "sampling.sampler=ddim"), ("sampler 'ddim' is for gaussian",)),
    (("sampling.sampler=ddim", "sampling.steps=5", "sampling.eta=1"), ()),
    (("sampling.timestep_spacing=trailing",), ("sampling.timestep_spacing=trailing", "ancestral")),
    (("sampling.timestep_spacing=diffusers",), ("choose one of ours, trailing, leading",)),
    (("sampling.sampler=dpm_solver", "sampling.timestep_spacing=leading"), ()),
    (("sampling.sampler=ddim", "sampling.timestep_spacing=linspace", "sampling.steps=3"), ()),
    (
        ("diffusion.kind=cold", "sampling.timestep_spacing=linspace"),
        ("sampling.timestep_spacing=linspace", "the naive sampler would ignore it"),
    ),
    (
        ("diffusion.schedule=cosine", "sampling.sampler=ddim", "sampling.timestep_spacing=leading"),
        ("sampling.timestep_spacing=leading evaluates the network at t=0", "alpha_bar = 1"),
    ),
    (
        (
            "diffusion.schedule=cosine",
            "sampling.sampler=ddim",
            "sampling.timestep_spacing=trailing",
            "sampling.steps=5",
        ),
        (),
    ),
    (("sampling.steps=20",), ()),  # all T steps: what the ancestral sampler does anyway
    (("model.num_classes=10", "sampling.guidance=3"), ()),
    (("diffusion.kind=cold", "sampling.start=gmm", "sampling.sampler=improved"), ()),
    # A key written where it cannot take effect is refused at its default value too (before:
    # accepted in silence, while any other value was refused).
    (("sampling.eta=0",), ("sampling.eta=0.0 applies to the ddim sampler only; the ancestral "
                           "sampler would ignore it: remove it",)),
    (("sampling.timestep_spacing=ours",), ("sampling.timestep_spacing=ours applies to the ddim "
     "and dpm_solver samplers only; the ancestral sampler would ignore it: remove it",)),
    (("sampling.guidance=1",), ()),  # no guidance: what an unconditional model does
    (("diffusion.kind=cold", "sampling.clip_x0=false"), ("sampling.clip_x0=false applies to "
     "Gaussian models only; a cold model would ignore it: remove it",)),
    (("sampling.start=auto",), ("sampling.start=auto applies to cold models only; a Gaussian "
                                "model would ignore it: remove it",)),
    (("sampling.sampler=ddim", "sampling.eta=0", "sampling.timestep_spacing=ours"), ()),
    (("model.num_classes=10", "sampling.guidance=1", "sampling.clip_x0=false"), ()),
    (("diffusion.kind=cold", "sampling.start=auto"), ()),
]  # fmt: skip


@pytest.mark.parametrize(
    "overrides, fragments", CONFIG_ROWS, ids=[" ".join(r[0]) for r in CONFIG_ROWS]
)
def test_contradictory_sampling_keys_are_refused_at_load_time(overrides, fragments, tmp_path):
    ini = write_ini(tmp_path, tiny_ini_for(overrides))
    if not fragments:
        load_config(ini, list(overrides))
        return
    with pytest.raises(UserError) as error:
        load_config(ini, list(overrides))
    for fragment in fragments:
        assert fragment in str(error.value)


# --- the NPZ records what was done ---------------------------------------------------------------

BASE = {"eta": None, "guidance": None, "clip_x0": False, "digit": None, "cold_start": None}
BASE["labels"] = None
BASE["timestep_spacing"] = None
COLD = {**BASE, "clip_x0": None, "cold_start": "test", "start_images": "test images 0..3"}
METADATA_ROWS = [
    # (name, run, flags, expected metadata beyond run, epoch and seed)
    ("default sampler", reference, (), {**BASE, "sampler": "ancestral", "steps": 20}),
    (
        "all T steps given",
        reference,
        ("--steps", "20"),
        {**BASE, "sampler": "ancestral", "steps": 20},
    ),
    (
        "ddim",
        reference,
        ("--sampler", "ddim"),
        {**BASE, "sampler": "ddim", "steps": 20, "eta": 0.0, "timestep_spacing": "ours"},
    ),
    (
        "ddim 5 steps",
        reference,
        ("--sampler", "ddim", "--steps", "5"),
        {**BASE, "sampler": "ddim", "steps": 5, "eta": 0.0, "timestep_spacing": "ours"},
    ),
    (
        "ddim 5 steps, --eta 0.5 --clip-x0",
        reference,
        ("--sampler", "ddim", "--steps", "5", "--eta", "0.5", "--clip-x0"),
        {
            **BASE,
            "sampler": "ddim",
            "steps": 5,
            "eta": 0.5,
            "clip_x0": True,
            "timestep_spacing": "ours",
        },
    ),
    (
        "cold, 4 strided steps from the consistent start",
        cold,
        ("--steps", "4", "--start", "test_consistent"),
        {**COLD, "sampler": "naive", "steps": 4, "cold_start": "test_consistent"},
    ),
    (
        "dpm_solver 4 steps",
        reference,
        ("--sampler", "dpm_solver", "--steps", "4"),
        {**BASE, "sampler": "dpm_solver", "steps": 4, "timestep_spacing": "ours"},
    ),
    (
        "dpm_solver 4 steps, diffusers' leading grid",
        reference,
        ("--sampler", "dpm_solver", "--steps", "4", "--timestep-spacing", "leading"),
        {**BASE, "sampler": "dpm_solver", "steps": 4, "timestep_spacing": "leading"},
    ),
    (
        "the run's ddim settings",
        lambda tmp: reference(tmp, stored_sampling(sampler="ddim", steps=5, eta=1.0)),
        (),
        {**BASE, "sampler": "ddim", "steps": 5, "eta": 1.0, "timestep_spacing": "ours"},
    ),
    (
        "--sampler ancestral over the run's ddim settings",
        lambda tmp: reference(tmp, run_ddim_trailing),
        ("--sampler", "ancestral"),
        {**BASE, "sampler": "ancestral", "steps": 20},
    ),
    (
        "the run's ddim trailing grid",
        lambda tmp: reference(tmp, run_ddim_trailing),
        (),
        {**BASE, "sampler": "ddim", "steps": 5, "eta": 1.0, "timestep_spacing": "trailing"},
    ),
    (
        "clip_x0 from the run",
        lambda tmp: reference(tmp, stored_sampling(clip_x0=True)),
        (),
        {**BASE, "sampler": "ancestral", "steps": 20, "clip_x0": True},
    ),
    ("cold default", cold, (), {**COLD, "sampler": "naive", "steps": 20}),
    (
        "cold improved",
        cold,
        ("--sampler", "improved"),
        {**COLD, "sampler": "improved", "steps": 20, "cold_start": "test_consistent"},
    ),
    (
        "conditional digit 7",
        lambda tmp: conditional_run(),
        ("--digit", "7"),
        {
            **BASE,
            "sampler": "ancestral",
            "steps": 20,
            "guidance": 1.0,
            "digit": 7,
            "labels": "all 7",
            "class_name": "7",  # the run's data set names its classes
            "asked_classes": [7, 7, 7, 7],  # each sample's class, as evaluate reads it
        },
    ),
    (
        "conditional, no digit: the labels cycle",  # said, not left to a digit of None
        lambda tmp: conditional_run(),
        (),
        {
            **BASE,
            "sampler": "ancestral",
            "steps": 20,
            "guidance": 1.0,
            "labels": "cycled 0-9",
            "asked_classes": [0, 1, 2, 3],
        },
    ),
    (
        "conditional, guidance 0: no label takes effect",
        lambda tmp: conditional_run(),
        ("--guidance", "0"),
        {**BASE, "sampler": "ancestral", "steps": 20, "guidance": 0.0},
    ),
]


@pytest.mark.parametrize(
    "name, run, flags, expected", METADATA_ROWS, ids=[r[0] for r in METADATA_ROWS]
)
def test_npz_metadata_records_the_resolved_settings(name, run, flags, expected, tmp_path):
    run_dir = run(tmp_path)
    npz = tmp_path / "s.npz"
    argv = ["sample", str(run_dir), "-n", "4", "--seed", "3", "--npz", str(npz)]
    assert cli.main([*argv, "--out", str(tmp_path / "g.png"), "--device", "cpu", *flags]) == 0
    with np.load(npz) as data:
        meta = json.loads(str(data["meta"]))
    latest = run_dir / "checkpoints" / "latest.pt"  # the checkpoint drawn from, named exactly
    ckpt = torch.load(latest, weights_only=True)
    record = {
        "checkpoint": str(latest),
        "epoch": load_trained(run_dir, None, CPU).epoch,
        "epoch_finished": ckpt["batch"] == 0,  # the cold and conditional runs stop inside one
        "step": ckpt["step"],
        "weights": "ema" if ckpt["ema"] is not None else "raw",
        "weights_sha256": ckpt_io.weights_sha256(load_trained(run_dir, None, CPU).net),
        "dataset": load_trained(run_dir, None, CPU).dataset(),  # the data set sampled for
    }
    assert meta == {"run": str(run_dir), "seed": 3, **record, **expected}


def test_npz_metadata_records_the_run_as_an_absolute_path(tmp_path, monkeypatch):
    """`sample runs/quickstart` typed in one folder: the NPZ, read from anywhere, still names
    the run that made it (before: "runs/quickstart", as typed)."""
    copy_run(reference_run(), tmp_path / "runs" / "quickstart")
    monkeypatch.chdir(tmp_path)
    argv = ["sample", "runs/quickstart", "-n", "2", "--npz", "s.npz", "--out", "g.png"]
    assert cli.main([*argv, "--device", "cpu"]) == 0
    with np.load(tmp_path / "s.npz") as data:
        meta = json.loads(str(data["meta"]))
    assert meta["run"] == str(tmp_path.resolve() / "runs" / "quickstart")


# --- sample i depends only on the seed and i -----------------------------------------------------


def gaussian_model(*overrides: str):
    config = tiny_config(*overrides)
    torch.manual_seed(0)  # an untrained network: only the sampler's randomness matters here
    return make_network(config.model, shape=(1, 28, 28)), make_process(config), config


def cold_model(*overrides: str):
    return gaussian_model("diffusion.kind=cold", "diffusion.T=6", *overrides)


ORDER_ROWS = [
    ("ancestral", ()),
    ("ddim eta 0", ("sampling.sampler=ddim", "sampling.steps=5")),
    ("ddim eta 1", ("sampling.sampler=ddim", "sampling.steps=5", "sampling.eta=1")),
    ("dpm_solver", ("sampling.sampler=dpm_solver", "sampling.steps=5")),
    ("guided labels", ("model.num_classes=10", "sampling.guidance=2")),
    ("cold naive", ("diffusion.kind=cold", "diffusion.T=6")),
    ("cold improved", ("diffusion.kind=cold", "diffusion.T=6", "sampling.sampler=improved")),
    ("cold gmm start", ("diffusion.kind=cold", "diffusion.T=6", "sampling.start=gmm")),
]


# Sample i drawn among another n, or in batches of another size, takes the same random numbers
# (compared bit for bit: ``seeded_draws``), but not always the same float arithmetic: oneDNN and
# MKL pick kernels by shape, so the network may sum its convolutions in another order (PyTorch
# does not promise batch-invariant results). float32 rounding (eps 1.2e-7), a few ulp per network
# evaluation, accumulated over the T = 20 (cold: 6) steps of samples up to ~22: measured up to
# 8.3e-6 on an AVX-512 Xeon for batch sizes 1 to 8, where any change of the noise moves a sample
# by order 1.
ROUNDING = {"rtol": 1e-5, "atol": 2e-5}


def seeded_draws(
    monkeypatch, seed: int, n: int, draw: Callable[[], torch.Tensor]
) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
    """``draw()`` and, for each sample i < n, the numbers it took from its own generator (seeded
    from seed and i), in order: all that torch.randn, torch.randint and torch.multinomial gave."""
    streams: dict[int, list[torch.Tensor]] = collections.defaultdict(list)

    def recording(original: Callable) -> Callable:
        def recorded(*args, generator=None, **kwargs):
            out = original(*args, generator=generator, **kwargs)
            if generator is not None:
                streams[generator.initial_seed()].append(out.clone())
            return out

        return recorded

    with monkeypatch.context() as patch:
        for name in ("randn", "randint", "multinomial"):
            patch.setattr(torch, name, recording(getattr(torch, name)))
        samples = draw()
    seeds = [g.initial_seed() for g in sample_generators(seed, 0, n, CPU)]
    return samples, [streams[s] for s in seeds]


def same_draws(a: list[list[torch.Tensor]], b: list[list[torch.Tensor]]) -> list[bool]:
    """Sample for sample: the same numbers in the same order, bit for bit?"""
    return [
        len(mine) == len(theirs) and all(map(torch.equal, mine, theirs))
        for mine, theirs in zip(a, b, strict=True)
    ]


@pytest.mark.parametrize("name, overrides", ORDER_ROWS, ids=[r[0] for r in ORDER_ROWS])
def test_sample_i_is_the_same_for_any_n_and_batch_size(name, overrides, monkeypatch):
    net, process, config = gaussian_model(*overrides)

    def draw(n: int, batch_size: int = 500, seed: int = 7):
        def samples() -> torch.Tensor:
            return generate(
                net, process, config, n, seed, CPU, batch_size=batch_size, shape=(1, 28, 28)
            )

        return seeded_draws(monkeypatch, seed, n, samples)

    eight, noise = draw(8)
    assert all(noise)  # every sample draws from its own generator
    for samples, draws in (draw(4), draw(8, batch_size=3)):
        n = len(samples)
        assert all(same_draws(draws, noise[:n]))  # the noise: no network in between, exact
        assert_close(samples, eight[:n], **ROUNDING)  # the network: see ROUNDING
    other, other_noise = draw(4, seed=8)
    assert not any(same_draws(other_noise, noise[:4]))
    assert not torch.allclose(other, eight[:4], **ROUNDING)  # another seed, not rounding
    assert not any(same_draws(noise[:1] * 7, noise[1:]))  # distinct streams, not one copied


def test_cold_fields_shared_per_batch_still_keep_the_sample_order(monkeypatch):
    """t_per = batch shares one field per batch of 500, taken from its first sample's stream."""
    net, process, config = gaussian_model(
        "diffusion.kind=cold", "diffusion.T=6", "diffusion.t_per=batch"
    )

    def draw(n: int):
        return seeded_draws(
            monkeypatch, 0, n, lambda: generate(net, process, config, n, 0, CPU, shape=(1, 28, 28))
        )

    (eight, noise), (four, noise_of_four) = draw(8), draw(4)
    assert noise[0] and not any(noise[1:])  # the shared fields come from sample 0's stream alone
    assert all(same_draws(noise_of_four, noise[:4]))
    assert_close(four, eight[:4], **ROUNDING)  # batches of 4 and 8: see ROUNDING


def test_six_hundred_samples_begin_with_the_four_hundred():
    """Across generate's batches of 500: samples 0..399 of 600 are the 400 drawn alone."""
    model = load_trained(reference_run(), None, CPU)

    def draw(n: int) -> torch.Tensor:
        return generate(model.net, model.process, model.config, n, 0, CPU, shape=model.shape)

    assert_close(draw(600)[:400], draw(400), **ROUNDING)  # batches of 500 and 400: see ROUNDING


# --- non-finite values never become pixels -------------------------------------------------------


def test_to_uint8_and_the_figures_refuse_non_finite_images():
    images = torch.zeros(5, 1, 28, 28)
    images[1, 0, 3, 3], images[4, 0, 0, 0] = float("nan"), float("inf")
    with pytest.raises(ValueError, match="2 of 5 images hold NaN or inf"):
        to_uint8(images)
    with pytest.raises(ValueError, match="NaN or inf"):
        image_grid(images)
    with pytest.raises(UserError, match="2 of 5 samples are not finite"):
        check_finite(images)
    assert to_uint8(torch.full((1, 28, 28), 2.0)).eq(255).all()  # finite overshoot saturates


def test_trajectory_shows_the_times_it_reached_and_ends_in_the_sample():
    net, process, config = gaussian_model("sampling.sampler=ddim")
    times, states = trajectory(net, process, config, 3, 0, CPU, steps=3, shape=(1, 28, 28))
    # ddim 3 steps visits t = 20, 13, 7, 0; the fractions' targets are 20, 10, 2, 1, 0.
    assert times == [20, 7, 0, 0, 0]
    final = generate(net, process, config, 3, 0, CPU, steps=3, shape=(1, 28, 28))
    assert torch.equal(states[-1], final) and not torch.equal(states[1], final)


def test_a_strided_cold_trajectory_fills_every_column():
    """Cold, 4 of T=6 steps: targets 6, 3, 1, 0, 0; a target the grid passes only at the end
    shows the sample (was None -> TypeError)."""
    net, process, config = gaussian_model("diffusion.kind=cold", "diffusion.T=6")
    times, states = trajectory(net, process, config, 2, 0, CPU, steps=4, shape=(1, 28, 28))
    assert all(s is not None and s.shape == (2, 1, 28, 28) for s in states)
    assert times[0] == 6 and times[-1] == 0
    assert torch.equal(
        states[-1], generate(net, process, config, 2, 0, CPU, steps=4, shape=(1, 28, 28))
    )


def test_a_grid_path_with_no_image_ending_is_refused_before_drawing(tmp_path, capsys):
    argv = ["sample", str(reference_run()), "-n", "2", "--out", str(tmp_path / "x.jpgg")]
    assert cli.main(argv) == 2
    assert "error: --out" in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_resolve_settings_names_the_flag_or_the_key():
    config = tiny_config()
    assert resolve_plan(config, steps=3).steps == 3  # the ancestral sampler, respaced
    with pytest.raises(UserError, match="steps=0 is out of range"):  # the CLI: --steps 0
        resolve_plan(config, steps=0)
    ddim = dataclasses.replace(config.sampling, sampler="ddim", steps=5)
    with_ddim = dataclasses.replace(config, sampling=ddim)
    assert resolve_plan(with_ddim, sampler="ancestral").steps == 20
    with pytest.raises(UserError, match="sampling.steps=25 is out of range"):
        resolve_plan(dataclasses.replace(with_ddim, sampling=dataclasses.replace(ddim, steps=25)))


def test_guidance_1_means_none_and_may_be_written_for_an_unconditional_model(tmp_path, capsys):
    """Guidance 1 is what an unconditional model does: accepted where it cannot be more (the
    quickstart trained without labels: num_classes=0 with its guidance 1.1 set back to 1),
    while any other guidance there is still refused."""
    config = load_config("quickstart", ["model.num_classes=0", "sampling.guidance=1"])
    assert (config.model.num_classes, config.sampling.guidance) == (0, 1.0)
    with pytest.raises(UserError, match=r"sampling.guidance=1.1 needs a class-conditional"):
        load_config("quickstart", ["model.num_classes=0"])
    out = tmp_path / "g.png"
    argv = ["sample", str(reference_run()), "-n", "2", "--guidance", "1", "--out", str(out)]
    assert cli.main(argv) == 0 and out.is_file()


def test_more_samples_than_memory_holds_are_refused_before_any_is_drawn():
    """model.sample(10**12) ran on, batch after batch, towards 2.9 million GiB it could never
    return; now refused at once, naming n, the need (10**12 x 784 x 4 bytes) and the remedy."""
    model = load_trained(reference_run(), None, CPU)
    with pytest.raises(UserError) as refused:
        model.sample(10**12, seed=0)
    assert str(refused.value).startswith(
        "n=1000000000000 samples need 2,920,627.6 GiB as float32, more than the "
    )
    assert "draw fewer at a time" in str(refused.value)


def test_without_a_memory_figure_from_the_os_nothing_is_refused(monkeypatch):
    """Windows has no os.sysconf: the memory check must not break sampling there."""
    from diffusiontools.sampling import generation

    monkeypatch.delattr(generation.os, "sysconf")
    assert generation.device_memory_bytes(CPU) == float("inf")
