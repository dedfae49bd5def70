"""Cold diffusion end to end: training, t per batch or image, oracle samplers, the configs, the
unconditional start, the reconstruction study and the degradation figure."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_runs import single_thread  # noqa: F401 (autouse: one thread per test)
from torch import nn

from diffusiontools import cli
from diffusiontools.config import load_config
from diffusiontools.data import load_mnist, to_model
from diffusiontools.degradations import DEGRADATIONS
from diffusiontools.errors import UserError
from diffusiontools.networks import make_network
from diffusiontools.noise import sample_generators
from diffusiontools.processes import make_process
from diffusiontools.processes.cold_start import degraded_gmm
from diffusiontools.reconstruction import reconstruction_study, restore
from diffusiontools.samplers import get_sampler
from diffusiontools.sampling import generate

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DEGRADATION_CONFIGS = ("custom1", "custom2", "blur", "pixelate", "mask")
TINY_RUN = [
    "data.source=auto",  # the real MNIST where found, else the embedded subset (no network)
    "data.subset=256",
    "training.max_steps=3",
    "training.batch_size=32",
    "model.n_hidden=4,4",
    "training.epochs=1",
    "training.val_batches=1",
    "training.device=cpu",
]


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
    argv = ["train", str(CONFIGS / "custom2.ini"), "--out", str(run), *as_flags(TINY_RUN)]
    assert cli.main(argv) == 0
    return run


# --- training ---------------------------------------------------------------------------------


def test_training_loss_decreases_on_a_small_subset():
    config = cold_config("diffusion.loss=l1")
    torch.manual_seed(0)
    net = make_network(config.model)
    process = make_process(config)
    x0 = to_model(load_mnist(None).train_images[:256])
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(0)

    def held_out_loss() -> float:  # same images, t and fields every time
        with torch.no_grad():
            return float(process.training_loss(net, x0[:64], torch.Generator().manual_seed(1)))

    before = held_out_loss()
    for step in range(100):
        batch = x0[(step * 32) % 256 :][:32]
        loss = process.training_loss(net, batch, generator)
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
    process.training_loss(spy, first_test_images(16), torch.Generator().manual_seed(0))
    (t,) = spy.ts
    assert t.shape == (16,)
    if distinct is None:  # 16 draws from 1..9 agreeing by chance: probability 9**-15
        assert len(torch.unique(t)) > 1
    else:
        assert len(torch.unique(t)) == distinct
    keys = process.draw_keys(16, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert len(torch.unique(keys)) == (1 if t_per == "batch" else 16)


# --- samplers: the oracle --------------------------------------------------------------------


@pytest.mark.parametrize("degradation", sorted(DEGRADATIONS))
@pytest.mark.parametrize("sampler", ["naive", "improved"])
def test_an_oracle_network_makes_both_samplers_reconstruct_x0_exactly(degradation, sampler):
    """A one-image "dataset": the network that always answers x0* is the exact restorer R."""
    process = make_process(cold_config(f"diffusion.degradation={degradation}", "diffusion.T=6"))
    x0 = first_test_images(1).expand(3, -1, -1, -1)  # three trajectories of the same image x0*

    def oracle(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x0.clone()

    # Start exactly on the forward trajectory the sampler will follow: D(x0*, T, key) with the
    # key the sampler draws first from the same seed. Then the improved sampler's updates
    # telescope to D(x0*, 0, key) = x0* with no rounding at all.
    key = process.draw_keys(3, torch.Generator().manual_seed(5), torch.device("cpu"))
    x_T = process.degrade(x0, torch.full((3,), process.T), key)
    sample = get_sampler(sampler, "cold")
    out = sample(oracle, process, x_T, torch.Generator().manual_seed(5))
    assert torch.equal(out, x0)


def test_direct_reconstruction_is_the_first_x0_hat_and_diffusion_equals_generate(cold_run):
    from diffusiontools.trained_model import load_trained

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
    samples = generate(model.net, model.process, model.config, 5, 3, torch.device("cpu"), "naive")
    assert torch.equal(diffusion, samples)
    # generate seeds one generator per sample from (seed, index): the start uses the same ones.
    generators = sample_generators(3, 0, 5, torch.device("cpu"))
    assert torch.equal(
        x_T, model.process.start_state(5, generators, torch.device("cpu"), model.config)
    )


# --- configs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DEGRADATION_CONFIGS)
def test_each_degradation_config_trains_a_few_steps(name, tmp_path):
    run = tmp_path / name
    argv = ["train", str(CONFIGS / f"{name}.ini"), "--out", str(run)]
    assert cli.main([*argv, *as_flags([*TINY_RUN, "diffusion.T=5"])]) == 0
    assert (run / "checkpoints" / "latest.pt").is_file()


def test_faithful_configs_hold_the_reference_settings():
    c1, c2 = load_config(CONFIGS / "custom1.ini"), load_config(CONFIGS / "custom2.ini")
    assert (c1.levels(), c1.diffusion.T, c1.diffusion.loss) == ((0.035, 0.15), 100, "l1")
    assert (c1.training.batch_size, c1.training.lr, c1.training.epochs) == (64, 1e-4, 80)
    assert (c2.levels(), c2.diffusion.T, c2.diffusion.loss) == ((0.035, 0.2), 20, "mse")
    assert (c2.training.batch_size, c2.training.lr, c2.training.epochs) == (128, 2e-4, 180)
    for c in (c1, c2):
        assert c.diffusion.t_per == "batch" and c.model.n_hidden == (16, 32, 32, 16)
        assert c.sampling.start == "test" and c.data.source == "mnist"


# --- unconditional start ---------------------------------------------------------------------


def test_gmm_start_is_seeded_cached_in_range_and_used_by_generate():
    config = cold_config("sampling.start=gmm")
    process = make_process(config)
    cpu = torch.device("cpu")
    x_T = process.start_state(4, torch.Generator().manual_seed(0), cpu, config)
    assert x_T.shape == (4, 1, 28, 28)
    assert float(x_T.min()) >= -0.5 and float(x_T.max()) <= 0.5
    again = process.start_state(4, torch.Generator().manual_seed(0), cpu, config)
    assert torch.equal(x_T, again) and degraded_gmm.cache_info().hits >= 1
    other = process.start_state(4, torch.Generator().manual_seed(1), cpu, config)
    assert not torch.equal(x_T, other)
    net = make_network(config.model)
    assert generate(net, process, config, 3, 0, cpu).shape == (3, 1, 28, 28)


def test_an_unknown_start_is_refused():
    with pytest.raises(UserError, match="sampling.start"):
        cold_config("sampling.start=noise")


# --- reconstruction study, sampling, degradation figure ---------------------------------------


def test_reconstruction_study_writes_finite_tables_and_figures(cold_run, tmp_path):
    out = tmp_path / "study"
    assert (
        cli.main(["reconstruct", str(cold_run), "-n", "12", "--out", str(out), "--device", "cpu"])
        == 0
    )
    result = json.loads((out / "reconstruction.json").read_text())
    assert result["counts"]["All"] == 12 and result["samplers"] == ["naive", "improved"]
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


def test_reconstruction_study_refuses_bad_input(cold_run, tmp_path):
    with pytest.raises(UserError, match="sampler"):
        reconstruction_study(cold_run, 4, samplers=("ancestral",), out_dir=tmp_path)
    with pytest.raises(UserError, match="-n 0"):
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
    assert_png(cold_run / "samples" / "trajectory.png")


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
    assert "pixel_swap levels (0.3, 0.1)" in capsys.readouterr().err


def assert_png(path: Path) -> None:
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG" and image.width > 50 and image.height > 50
