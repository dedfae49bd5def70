"""Cold diffusion end to end: training, t per batch or image, oracle samplers, the configs, the
unconditional start, the reconstruction study and the degradation figure."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_runs import single_thread  # noqa: F401 (autouse: one thread per test)
from torch import nn

from diffusiontools import cli
from diffusiontools.data import load_data, load_mnist, to_model
from diffusiontools.diffusion import make_process
from diffusiontools.diffusion.cold import cold_levels, degraded_gmm
from diffusiontools.diffusion.degradations import DEGRADATIONS
from diffusiontools.diffusion.noise import sample_generators
from diffusiontools.diffusion.process import training_loss
from diffusiontools.errors import UserError
from diffusiontools.evaluation.reconstruction import reconstruction_study, restore
from diffusiontools.models import make_network
from diffusiontools.sampling.generation import generate
from diffusiontools.sampling.registry import get_sampler
from diffusiontools.training.run_config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DEGRADATION_CONFIGS = (
    "custom1",
    "custom2",
    "blur",
    "pixelate",
    "mask",
    "blur_bansal",
    "pixelate_bansal",
    "mask_bansal",
)
TINY_RUN = [
    "data.source=auto",  # the real MNIST where found, else the embedded subset (no network)
    "data.subset=256",
    "training.max_steps=3",
    "training.batch_size=32",
    "training.epochs=1",
    "training.val_batches=1",
    "training.device=cpu",
]
NARROW_CNN = "model.n_hidden=4,4"  # the cnn configs' width (a UNet's would be refused: unused)
# Bansal et al.'s UNet (base 64, four levels) takes seconds a step of 32 images on one CPU thread:
# the few-step runs narrow it, keeping its levels and 32 px (one full-width step is tested alone).
NARROW_UNET = "model.base_channels=8"
BANSAL = ("blur_bansal", "pixelate_bansal", "mask_bansal")


def cold_config(*overrides: str):
    return load_config(
        None,
        [
            "data.subset=256",
            "model.n_hidden=8,8",
            "diffusion.kind=cold",
            "diffusion.degradation=pixel_swap",
            "diffusion.T=10",
            *overrides,
        ],
    )


def first_test_images(n: int) -> torch.Tensor:
    return to_model(load_mnist(None).test_images[:n])  # (n, 1, 28, 28)


def as_flags(overrides: list[str]) -> list[str]:
    return [x for o in overrides for x in ("--set", o)]


@pytest.fixture(scope="module")
def cold_run(tmp_path_factory) -> Path:
    """custom2 (T = 20) shrunk to a few steps: enough for sampling and the study to run."""
    run = tmp_path_factory.mktemp("cold") / "run"
    argv = ["train", str(CONFIGS / "custom2.ini"), "--out", str(run)]
    argv += as_flags([*TINY_RUN, NARROW_CNN])
    assert cli.main(argv) == 0
    return run


# --- training ---------------------------------------------------------------------------------


def test_training_loss_decreases_on_a_small_subset():
    config = cold_config("diffusion.loss=l1")
    torch.manual_seed(0)
    net = make_network(config.model, shape=(1, 28, 28))
    process = make_process(config)
    x0 = to_model(load_mnist(None).train_images[:256])
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(0)

    def held_out_loss() -> float:  # same images, t and fields every time
        with torch.no_grad():
            return float(training_loss(process, net, x0[:64], torch.Generator().manual_seed(1)))

    before = held_out_loss()
    for step in range(100):
        batch = x0[(step * 32) % 256 :][:32]
        loss = training_loss(process, net, batch, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert held_out_loss() < 0.6 * before  # measured: 0.39 -> 0.10


class SpyNet(nn.Module):
    """Returns its input and records every t it is called with."""

    def __init__(self):
        super().__init__()
        self.ts: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.ts.append(t.clone())
        return x


@pytest.mark.parametrize("t_per, distinct", [("batch", 1), ("image", None)])
def test_t_per_batch_shares_one_t_and_t_per_image_draws_several(t_per, distinct):
    process = make_process(cold_config(f"diffusion.t_per={t_per}"))
    spy = SpyNet()
    training_loss(process, spy, first_test_images(16), torch.Generator().manual_seed(0))
    (t,) = spy.ts
    assert t.shape == (16,)
    if distinct is None:  # 16 draws from 1..9 agreeing by chance: probability 9**-15
        assert len(torch.unique(t)) > 1
    else:
        assert len(torch.unique(t)) == distinct
    keys = process.draw_keys(16, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert len(torch.unique(keys)) == (1 if t_per == "batch" else 16)


# --- samplers: the oracle --------------------------------------------------------------------


def oracle_for(x0: torch.Tensor):
    """The exact restorer R for a "dataset" of the images x0: it always answers x0."""

    def oracle(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x0.clone()

    return oracle


@pytest.mark.parametrize("degradation", sorted(DEGRADATIONS))
@pytest.mark.parametrize(
    "sampler, start",
    [("naive", "test"), ("naive", "test_consistent"), ("improved", "test_consistent")],
)
@pytest.mark.parametrize("t_per", ["image", "batch"])
def test_an_oracle_network_makes_both_samplers_reconstruct_x0_exactly(
    degradation, sampler, start, t_per
):
    """Every start mode that has an x0: the start carries its key and time, so with the exact R
    the naive sampler returns x0 and the improved one telescopes to D(x0, 0, key) = x0, bit for
    bit (``gmm`` has no x0; ``test`` is refused by the improved sampler, tested below)."""
    overrides = [
        f"diffusion.degradation={degradation}",
        "diffusion.T=6",
        f"diffusion.t_per={t_per}",
    ]
    process = make_process(cold_config(*overrides))
    x0 = first_test_images(3)
    x_T = process.start_from(x0, start, torch.Generator().manual_seed(5))
    sample = get_sampler(sampler, "cold")
    out = sample(oracle_for(x0), process, x_T, torch.Generator().manual_seed(5))
    assert torch.equal(out, x0)


@pytest.mark.parametrize("degradation", sorted(DEGRADATIONS))
@pytest.mark.parametrize("sampler", ["naive", "improved"])
@pytest.mark.parametrize("steps", [1, 2, 4])
def test_an_oracle_reconstructs_x0_exactly_with_fewer_steps_than_T(degradation, sampler, steps):
    """steps < T: the samplers jump between the times of ``time_grid``; Algorithm 2 still
    telescopes, here from t = 6 (pixel swap included, its fields fixed by the start's key)."""
    process = make_process(cold_config(f"diffusion.degradation={degradation}", "diffusion.T=6"))
    x0 = first_test_images(3)
    x_T = process.start_from(x0, "test_consistent", torch.Generator().manual_seed(1))
    visited: list[int] = []
    sample = get_sampler(sampler, "cold")
    out = sample(
        oracle_for(x0), process, x_T, torch.Generator(), steps, lambda t, z: visited.append(t)
    )
    assert torch.equal(out, x0)
    expected = {1: [6, 0], 2: [6, 3, 0], 4: [6, 5, 3, 2, 0]}[steps]
    assert visited == (expected if sampler == "improved" else expected[:-1])


def test_time_grid_refuses_more_steps_than_times():
    process = make_process(cold_config("diffusion.T=6"))
    assert process.time_grid(6, None) == [6, 5, 4, 3, 2, 1, 0]
    assert process.time_grid(6, 6) == [6, 5, 4, 3, 2, 1, 0]
    with pytest.raises(UserError, match="sampling.steps=7"):
        process.time_grid(6, 7)


def test_the_improved_sampler_refuses_the_reports_start():
    process = make_process(cold_config("diffusion.T=6"))
    x_T = process.start_from(first_test_images(2), "test", torch.Generator().manual_seed(0))
    assert x_T.fresh_fields and x_T.t == 6
    with pytest.raises(UserError, match="sampling.start=test"):
        get_sampler("improved", "cold")(oracle_for(first_test_images(2)), process, x_T, None)


def test_the_reports_start_is_not_undone_by_an_oracle_but_the_consistent_one_is():
    """Why the consistent start: from the report's start (degraded at T - 1, labelled T) an
    oracle Algorithm 2 run with the start's key is off by D(x0, T - 1) - D(x0, T) (blur)."""
    process = make_process(cold_config("diffusion.degradation=blur", "diffusion.T=6"))
    x0 = first_test_images(2)
    report = process.start_from(x0, "test", torch.Generator().manual_seed(0))
    consistent = process.start_from(x0, "test_consistent", torch.Generator().manual_seed(0))
    t = torch.full((2,), 6)
    assert torch.equal(consistent.x, process.degrade(x0, t, consistent.key))
    assert torch.equal(report.x, process.degrade(x0, t - 1, report.key))
    assert torch.equal(report.key, consistent.key)  # same seed, same keys: only the level differs


class Affine(nn.Module):
    """A fixed stand-in for a trained R: pins the samplers' arithmetic and their random draws."""

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return 0.8 * x + 0.1 * t[:, None, None, None] - 0.05


@pytest.mark.parametrize(
    "t_per, expected", [("batch", -363012.8014039844), ("image", -363200.4257946685)]
)
@pytest.mark.parametrize("start", ["test", "auto"])
def test_the_naive_samplers_faithful_numbers_are_unchanged(t_per, expected, start, real_mnist):
    """Same seed, same output as before the start state carried its key: ``test`` start, fresh
    fields, R first called at t = T. Values measured with this script on the code just before
    that change, after sample i got its own generator seeded from (seed, i) (commit 9693836,
    the sampling branch's head; on b292f0f, with one generator for the batch, they were -364335.0596
    and -363679.5081: the noise order changed, not the naive sampler). Measured on the real MNIST
    test images, which the start degrades."""
    config = cold_config(
        f"data.dir={real_mnist}",
        "data.source=mnist",
        "diffusion.T=5",
        f"diffusion.t_per={t_per}",
        f"sampling.start={start}",
        "sampling.sampler=naive",
    )
    out = generate(
        Affine(), make_process(config), config, 3, 7, torch.device("cpu"), shape=(1, 28, 28)
    )
    weights = torch.arange(out.numel(), dtype=torch.float64).reshape(out.shape)
    assert float((out.double() * weights).sum()) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "degradation, T, levels, improved_rmse",
    [("blur", 50, "0,3", 0.00540), ("blur_repeated", 20, "0,20", 0.02575)],
)
def test_algorithm_2_reduces_a_smooth_error_of_the_restorer_on_blur(
    degradation, T, levels, improved_rmse
):
    """Bansal et al. Sec. 3.3: with R(x_t) = x0 + e for every t, Algorithm 2 telescopes to
    x0 + e - D(e, T) (D linear): it cancels the part of e that survives the full blur, whereas
    Algorithm 1 returns x0 + e. For a smooth bump e (RMSE 0.0379) our sigma <= 3 blur keeps most
    of e, so 86% of the error goes; Bansal's 20 applications of their kernel keep little beyond
    e's mean, so 32% goes. Values measured, written here."""
    low, high = levels.split(",")
    process = make_process(
        cold_config(
            f"diffusion.degradation={degradation}",
            f"diffusion.T={T}",
            f"diffusion.level_min={low}",
            f"diffusion.level_max={high}",
        )
    )
    x0 = first_test_images(4)
    rows, cols = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    error = 0.1 * torch.exp(-((rows - 14) ** 2 + (cols - 14) ** 2) / (2 * 6.0**2))  # (28, 28)

    def perturbed(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x0 + error

    x_T = process.start_from(x0, "test_consistent", torch.Generator().manual_seed(0))
    naive = get_sampler("naive", "cold")(perturbed, process, x_T, None)
    improved = get_sampler("improved", "cold")(perturbed, process, x_T, None)
    assert float((naive - x0).pow(2).mean().sqrt()) == pytest.approx(0.03794, abs=1e-5)
    assert float((improved - x0).pow(2).mean().sqrt()) == pytest.approx(improved_rmse, abs=1e-5)


def test_direct_reconstruction_is_the_first_x0_hat_and_diffusion_equals_generate(cold_run):
    from diffusiontools.training.trained_model import load_trained

    model = load_trained(cold_run, None, torch.device("cpu"))
    outputs: list[torch.Tensor] = []

    class Recording(nn.Module):
        def forward(self, x, t):
            out = model.net(x, t)
            outputs.append(out)
            return out

    x0 = first_test_images(5)
    x_T, direct, diffusion = restore(Recording(), model.process, x0, "naive", seed=3)
    # outputs[0]: the study's own R(x_T, T); outputs[1]: the sampler's first x0_hat.
    assert torch.equal(direct, outputs[1]) and torch.equal(direct, outputs[0])
    assert len(outputs) == 1 + model.process.T
    samples = generate(
        model.net,
        model.process,
        model.config,
        5,
        3,
        torch.device("cpu"),
        "naive",
        shape=model.shape,
    )
    assert torch.equal(diffusion, samples)
    # generate seeds one generator per sample from (seed, index): the start uses the same ones.
    generators = sample_generators(3, 0, 5, torch.device("cpu"))
    data = load_data(model.config.data)
    start = model.process.start_state(5, generators, torch.device("cpu"), model.config, data)
    assert torch.equal(x_T, start.x) and start.fresh_fields  # custom2: auto -> test for naive
    # The improved sampler starts on its own trajectory (auto -> test_consistent), in the study
    # and in generate alike.
    x_T, _, improved = restore(model.net, model.process, x0, "improved", seed=3)
    t_T = torch.full((5,), model.process.T)
    start = model.process.start_from(
        x0, "test_consistent", sample_generators(3, 0, 5, torch.device("cpu"))
    )
    assert torch.equal(x_T, model.process.degrade(x0, t_T, start.key))
    samples = generate(
        model.net,
        model.process,
        model.config,
        5,
        3,
        torch.device("cpu"),
        "improved",
        shape=model.shape,
    )
    assert torch.equal(improved, samples)


# --- configs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DEGRADATION_CONFIGS)
def test_each_degradation_config_trains_a_few_steps(name, tmp_path):
    run = tmp_path / name
    ini = CONFIGS / f"{name}.ini"
    argv = ["train", str(ini), "--out", str(run)]
    narrow = [NARROW_CNN] if load_config(ini).model.network == "cnn" else []
    narrow += [NARROW_UNET] if name in BANSAL else []
    assert cli.main([*argv, *as_flags([*TINY_RUN, *narrow, "diffusion.T=5"])]) == 0
    assert (run / "checkpoints" / "latest.pt").is_file()


def test_faithful_configs_hold_the_reference_settings():
    c1, c2 = load_config(CONFIGS / "custom1.ini"), load_config(CONFIGS / "custom2.ini")
    assert (cold_levels(c1.diffusion), c1.diffusion.T, c1.diffusion.loss) == (
        (0.035, 0.15),
        100,
        "l1",
    )
    assert (c1.training.batch_size, c1.training.lr, c1.training.epochs) == (64, 1e-4, 80)
    assert (cold_levels(c2.diffusion), c2.diffusion.T, c2.diffusion.loss) == (
        (0.035, 0.2),
        20,
        "mse",
    )
    assert (c2.training.batch_size, c2.training.lr, c2.training.epochs) == (128, 2e-4, 180)
    for c in (c1, c2):
        assert c.diffusion.t_per == "batch" and c.model.n_hidden == (16, 32, 32, 16)
        assert c.sampling.start == "auto" and c.data.source == "mnist"
        assert c.diffusion.t_range == "notebook"


def test_bansal_configs_hold_their_mnist_settings():
    """Their README's MNIST commands: blur T = 20 (11 x 11, std 7, applied t times), resolution
    T = 3 (halved t times), fade T = 50; L1, t from 1..T, Algorithm 2 from a consistent start;
    their mnist_train.py's: 32 px, UNet dim 64 with multipliers (1, 2, 4, 8), Adam 2e-5, batch
    32 x 2 accumulation steps, EMA 0.995, 700,000 steps (epoch 934 of 750 steps)."""
    expected = {"blur_bansal": ("blur_repeated", 20), "pixelate_bansal": ("resolution", 3)}
    expected["mask_bansal"] = ("fade", 50)
    for name, (degradation, T) in expected.items():
        c = load_config(CONFIGS / f"{name}.ini")
        assert (c.diffusion.degradation, c.diffusion.T, cold_levels(c.diffusion)) == (
            degradation,
            T,
            (0, T),
        )
        assert (c.diffusion.loss, c.diffusion.t_range, c.training.ema_decay) == (
            "l1",
            "full",
            0.995,
        )
        assert (c.sampling.sampler, c.sampling.start) == ("improved", "test_consistent")
        assert (c.data.dataset, c.data.image_size) == ("mnist", 32)
        assert (c.model.network, c.model.base_channels, c.model.channel_mults) == (
            "unet",
            64,
            (1, 2, 4, 8),
        )
        t = c.training
        assert (t.lr, t.batch_size, t.max_steps, t.epochs) == (2e-5, 64, 700_000, 934)
        assert 48_000 // t.batch_size * (t.epochs - 1) < t.max_steps  # the last epoch reaches it


@pytest.mark.parametrize("name", BANSAL)
def test_bansal_configs_build_their_network_on_32px_and_step(name):
    config = load_config(CONFIGS / f"{name}.ini", ["data.subset=8"])
    data = load_data(config.data)
    assert data.spec.shape == (1, 32, 32)
    process = make_process(config, data.spec.shape)
    net = make_network(config.model, seed=0, T=config.diffusion.T, shape=data.spec.shape)
    before = [p.detach().clone() for p in net.parameters()]
    optimizer = torch.optim.Adam(net.parameters(), lr=config.training.lr)
    x0 = to_model(data.train_images[:4])  # (4, 1, 32, 32)
    training_loss(process, net, x0, torch.Generator().manual_seed(0)).backward()
    optimizer.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_a_batch_of_64_is_their_32_with_two_accumulation_steps(float64):
    """Their trainer backpropagates each half's mean loss / 2; the UNet treats each image alone
    (GroupNorm, no batch statistics), so the mean over the whole batch has the same gradient:
    in float64, to 1e-12 (in float32 rounding alone moves the gradients that are ~0, e.g. of a
    bias a GroupNorm cancels, by up to their own size)."""
    config = load_config(CONFIGS / "blur_bansal.ini", [NARROW_UNET])
    net = make_network(config.model, seed=0, T=config.diffusion.T, shape=(1, 32, 32))
    process = make_process(config, (1, 32, 32))
    x0 = torch.rand(8, 1, 32, 32) - 0.5
    noise = process.draw_noise(x0.shape, torch.Generator().manual_seed(0), x0.device)

    def gradients(halves: list[slice]) -> list[torch.Tensor]:
        net.zero_grad()
        for part in halves:
            sliced = {name: value[part] for name, value in noise.items()}
            (process.loss(net, x0[part], sliced) / len(halves)).backward()
        return [p.grad.clone() for p in net.parameters()]

    whole, accumulated = gradients([slice(0, 8)]), gradients([slice(0, 4), slice(4, 8)])
    for a, b in zip(whole, accumulated, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("t_range, highest", [("notebook", 5), ("full", 6)])
def test_t_range_sets_the_training_levels(t_range, highest):
    process = make_process(cold_config("diffusion.T=6", f"diffusion.t_range={t_range}"))
    t = process.draw_noise(torch.Size([2000, 1, 28, 28]), torch.Generator().manual_seed(0), "cpu")
    assert sorted(torch.unique(t["t"]).tolist()) == list(range(1, highest + 1))


def test_t_range_full_is_refused_for_a_gaussian_process():
    with pytest.raises(UserError) as refused:
        load_config(None, ["diffusion.t_range=full"])
    assert str(refused.value) == (
        "diffusion.t_range=full applies to cold processes (diffusion.kind = cold) only; the "
        "Gaussian process, which draws t from 1..T-1, would ignore it: remove it, "
        "or unset it with an empty override: {'diffusion.t_range': ''}"
    )


# --- unconditional start ---------------------------------------------------------------------


def test_gmm_start_is_seeded_cached_in_range_and_used_by_generate():
    config = cold_config("sampling.start=gmm")
    process = make_process(config)
    cpu = torch.device("cpu")
    data = load_data(config.data)
    start = process.start_state(4, torch.Generator().manual_seed(0), cpu, config, data)
    x_T = start.x
    assert x_T.shape == (4, 1, 28, 28) and start.t == 10 and not start.fresh_fields
    # the mixture's draw is clamped to [-0.5, 0.5]; then N(0, 0.001^2) is added (Bansal et al.)
    assert float(x_T.min()) >= -0.505 and float(x_T.max()) <= 0.505
    again = process.start_state(4, torch.Generator().manual_seed(0), cpu, config, data)
    mixture = degraded_gmm(config, data.train_images)
    assert torch.equal(x_T, again.x) and degraded_gmm(config, data.train_images) is mixture
    other = process.start_state(4, torch.Generator().manual_seed(1), cpu, config, data)
    assert not torch.equal(x_T, other.x)
    net = make_network(config.model, shape=(1, 28, 28))
    assert generate(net, process, config, 3, 0, cpu, shape=(1, 28, 28)).shape == (3, 1, 28, 28)


@pytest.mark.parametrize("subset, fits", [(10, False), (13, True)])
def test_gmm_start_on_fewer_training_images_than_components_is_one_sentence(subset, fits):
    """data.subset=10 leaves 8 training images (val_fraction 0.2) for a 10-component mixture:
    sklearn's own ValueError reached the user as a traceback; 13 leave 11, and the PCA adapts
    to 10 components."""
    config = cold_config(f"data.subset={subset}", "sampling.start=gmm")
    process, cpu = make_process(config), torch.device("cpu")
    if fits:
        start = process.start_state(
            2, torch.Generator().manual_seed(0), cpu, config, load_data(config.data)
        )
        assert start.x.shape[0] == 2
        return
    with pytest.raises(UserError) as e:
        generate(
            make_network(config.model, shape=(1, 28, 28)),
            process,
            config,
            2,
            0,
            cpu,
            shape=(1, 28, 28),
        )
    assert str(e.value) == (
        "sampling.start=gmm fits a 10-component mixture to degraded training images and needs "
        "at least 10, but the training split holds 8; train on more images (data.subset) or use "
        "sampling.start=test_consistent"
    )


def test_an_unknown_start_is_refused():
    with pytest.raises(UserError, match="sampling.start"):
        cold_config("sampling.start=noise")


# --- reconstruction study, sampling, degradation figure ---------------------------------------


def test_reconstruction_study_writes_finite_tables_and_figures(cold_run, tmp_path, monkeypatch):
    out = tmp_path / "study"
    monkeypatch.chdir(cold_run.parent)  # the run given as typed, relative: "run"
    argv = ["reconstruct", cold_run.name, "-n", "12", "--out", str(out), "--device", "cpu"]
    assert cli.main(argv) == 0
    result = json.loads((out / "reconstruction.json").read_text())
    # recorded absolute: the record still names the run when read from elsewhere
    assert result["run"] == str(cold_run.resolve())
    assert result["checkpoint"] == str(cold_run.resolve() / "checkpoints" / "latest.pt")
    assert result["counts"]["All"] == 12 and result["samplers"] == ["naive", "improved"]
    assert "t = T - 1" in result["start"]["naive"] and "t = T," in result["start"]["improved"]
    for method in ("direct", "naive", "improved"):
        rmse, mse = result["table"][method]["rmse"], result["table"][method]["mse"]
        assert all(v is None or math.isfinite(v) for v in (*rmse.values(), *mse.values()))
        # Jensen: the mean of per-image RMSEs is at most the root of the mean MSE.
        assert rmse["All"] <= math.sqrt(mse["All"]) + 1e-12
    table = (out / "reconstruction.md").read_text().splitlines()
    assert table[0].startswith("| digit | n | direct RMSE") and table[-1].startswith("| All | 12 |")
    assert len(table) == 2 + 11
    for sampler in ("naive", "improved"):
        assert_png(out / f"triplets_{sampler}.png")


def test_sample_names_the_data_dir_flag_it_was_given(cold_run, tmp_path, capsys):
    missing = tmp_path / "none"
    argv = ["sample", str(cold_run), "--data-dir", str(missing), "-n", "2", "--device", "cpu"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: --data-dir {missing} does not exist; fix the path or leave --data-dir unset"
    )
    assert "data.dir" not in err


def test_reconstruction_study_refuses_bad_input(cold_run, tmp_path):
    with pytest.raises(UserError, match="sampler"):
        reconstruction_study(cold_run, 4, samplers=("ancestral",), out_dir=tmp_path)
    with pytest.raises(UserError, match="n=0 is out of range"):  # the CLI says -n 0
        reconstruction_study(cold_run, 0, out_dir=tmp_path)


def test_sample_on_a_cold_run_gives_images_and_a_trajectory(cold_run, tmp_path):
    npz = tmp_path / "s.npz"
    argv = [
        "sample",
        str(cold_run),
        "-n",
        "5",
        "--npz",
        str(npz),
        "--trajectory",
        "--out",
        str(tmp_path / "grid.png"),
        "--device",
        "cpu",
    ]
    assert cli.main(argv) == 0
    with np.load(npz) as data:
        assert data["images"].dtype == np.uint8 and data["images"].shape == (5, 28, 28)
    assert_png(tmp_path / "trajectory.png")  # beside the grid given with --out


def test_degrade_cli_writes_a_png(tmp_path):
    out = tmp_path / "swap.png"
    argv = [
        "degrade",
        "--degradation",
        "pixel_swap",
        "--levels",
        "0.035,0.2",
        "--T",
        "20",
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 0
    assert_png(out)


def test_degrade_cli_refuses_bad_levels(tmp_path, capsys):
    argv = [
        "degrade",
        "--degradation",
        "pixel_swap",
        "--levels",
        "0.3,0.1",
        "--out",
        str(tmp_path / "x.png"),
    ]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == (
        "error: --levels 0.3,0.1 are not levels of pixel_swap: give 0.0 <= MIN < MAX <= 1.0\n"
    )


@pytest.mark.parametrize(
    "levels, message",
    [
        (
            "0.5,2",
            "--levels 0.5,2.0 are not levels of pixelate: give 1.0 <= MIN < MAX (at most the "
            "images' side)",
        ),
        (
            "1,40",
            "MAX of --levels = 40 exceeds 8, the most pixelate takes on the 8x8 images of "
            "data.dataset = digits8: use at most 8",
        ),
    ],
)
def test_degrade_cli_names_the_levels_flag_and_the_side(tmp_path, capsys, levels, message):
    argv = ["degrade", "--config", str(digits8_pixelate(tmp_path)), "--degradation", "pixelate"]
    assert cli.main([*argv, "--levels", levels, "--out", str(tmp_path / "x.png")]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"


def test_degrade_cli_takes_another_degradations_own_levels_over_the_configs(tmp_path, capsys):
    # the config's pixelate levels (1, 8) are no pixel-swap levels (at most 1): its own apply
    argv = ["degrade", "--config", str(digits8_pixelate(tmp_path)), "--degradation", "pixel_swap"]
    assert cli.main([*argv, "--out", str(tmp_path / "x.png")]) == 0
    assert_png(tmp_path / "x.png")


def test_degrade_cli_takes_the_data_alone_of_a_gaussian_config(tmp_path, capsys):
    out = ["--out", str(tmp_path / "x.png")]
    assert cli.main(["degrade", "--config", "digits8", *out]) == 2
    assert capsys.readouterr().err == (
        "error: --config digits8 is a Gaussian config, which has no degradation to draw: name "
        "one with --degradation NAME (the config's data are used)\n"
    )
    # its schedule, T and guidance keys are not the figure's: no refusal naming them
    assert cli.main(["degrade", "--config", "digits8", "--degradation", "pixel_swap", *out]) == 0
    assert_png(tmp_path / "x.png")


def digits8_pixelate(tmp_path: Path) -> Path:
    """A cold config on the 8x8 digits (bundled, offline) with pixelate levels written."""
    ini = tmp_path / "pixelate.ini"
    ini.write_text(
        "[data]\ndataset = digits8\n\n[diffusion]\nkind = cold\ndegradation = pixelate\n"
        "level_min = 1\nlevel_max = 8\nT = 10\n"
    )
    return ini


def assert_png(path: Path) -> None:
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG" and image.width > 50 and image.height > 50


def test_degrade_replaces_a_named_figure_but_never_its_default(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the default, degradation_<name>.png, is in the current folder
    argv = ["degrade", "--degradation", "pixel_swap", "--T", "20"]
    assert cli.main(argv) == 0
    figure = tmp_path / "degradation_pixel_swap.png"
    first = figure.read_bytes()
    capsys.readouterr()
    assert cli.main([*argv, "--seed", "1"]) == 2
    assert capsys.readouterr().err == (
        "error: degradation_pixel_swap.png already exists; name the file with --out to replace it\n"
    )
    assert figure.read_bytes() == first
    assert cli.main([*argv, "--seed", "1", "--out", str(figure)]) == 0  # named: replaced
    assert figure.read_bytes() != first  # seed 1 draws other swap fields


def test_reconstructions_of_two_runs_into_one_folder_are_refused_before_either_runs(
    cold_run, tmp_path, capsys
):
    first, second = (shutil.copytree(cold_run, tmp_path / side / "run") for side in "ab")
    out = tmp_path / "ev"
    argv = ["evaluate", str(first), str(second), "--reconstruction", "--n-samples", "4"]
    capsys.readouterr()
    assert cli.main([*argv, "--out", str(out), "--device", "cpu"]) == 2
    assert capsys.readouterr().err == (
        f"error: {out / 'reconstruction_run' / 'reconstruction.json'} would be both the study "
        f"of {first} and the study of {second}: give each its own path\n"
    )
    assert not out.exists()
