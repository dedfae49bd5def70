"""The learning-rate schedule and the min-SNR loss weights: hand-computed values, the refusals
(a cosine decay shorter than the run among them, before the folder changes), and a cosine run
stopped and resumed equal to the straight run."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest
import torch
from tiny_runs import (  # noqa: F401 (single_thread: autouse fixture)
    assert_same_final_weights,
    copy_run,
    reference_run,
    single_thread,
    tiny_config,
    train_tiny,
)

from diffusiontools.config import DiffusionConfig, TrainingConfig
from diffusiontools.diffusion.gaussian import GaussianDiffusion
from diffusiontools.errors import UserError
from diffusiontools.training import checkpoint as ckpt_io
from diffusiontools.training.lr_schedule import lr_at

COSINE = TrainingConfig(lr=1e-3, lr_schedule="cosine", warmup_steps=10, lr_decay_steps=110)


@pytest.mark.parametrize(
    "step, lr",
    [
        (0, 1e-4),
        (4, 5e-4),
        (9, 1e-3),
        (10, 1e-3),
        (60, 5e-4),
        (85, 1.4644660940672625e-4),
        (110, 0.0),
        (500, 0.0),
    ],
)
def test_cosine_learning_rate_by_hand(step, lr):
    # step 85: p = 75 / 100, (1 + cos(0.75 pi)) / 2 = (1 - 0.70711) / 2 = 0.146447.
    assert lr_at(COSINE, step) == pytest.approx(lr, rel=1e-12, abs=1e-18)


def test_constant_learning_rate_is_the_configured_one():
    assert lr_at(TrainingConfig(lr=3e-4), 0) == lr_at(TrainingConfig(lr=3e-4), 10**6) == 3e-4


COSINE_ONLY = "applies to training.lr_schedule = cosine only; the constant schedule would ignore it"
LOGNORMAL_ONLY = (
    "applies to diffusion.t_sampling = lognormal only; uniform training times would ignore it"
)
MIN_SNR_ONLY = "applies to diffusion.loss_weighting = min_snr only; the plain loss would ignore it"
PROBE_ONLY = (
    "applies to training.eval_every > 0 only; a run without the quality probe would ignore it"
)
GAUSSIAN_ONLY = "applies to Gaussian processes (diffusion.kind = gaussian) only"


def unused(key_value: str, only: str) -> str:
    key = key_value.partition("=")[0]
    return f"{key_value} {only}: remove it, or unset it with an empty override: {{'{key}': ''}}"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ("training.lr_schedule=cosine",),
            "training.lr_schedule = cosine needs training.lr_decay_steps, the step at which the "
            "learning rate reaches 0 (e.g. the run's max_steps)",
        ),
        (("training.lr_decay_steps=100",), unused("training.lr_decay_steps=100", COSINE_ONLY)),
        (("training.warmup_steps=5",), unused("training.warmup_steps=5", COSINE_ONLY)),
        (
            (
                "training.lr_schedule=cosine",
                "training.lr_decay_steps=10",
                "training.warmup_steps=10",
            ),
            "training.warmup_steps=10 must be below training.lr_decay_steps=10",
        ),
        (("diffusion.min_snr_gamma=0.5",), unused("diffusion.min_snr_gamma=0.5", MIN_SNR_ONLY)),
        (("training.eval_samples=50",), unused("training.eval_samples=50", PROBE_ONLY)),
        (
            ("training.eval_every=1", "training.eval_samples=10001"),
            "training.eval_samples=10001 is out of range: must be <= 10000",
        ),
        (
            ("diffusion.kind=cold", "diffusion.loss_weighting=min_snr"),
            f"diffusion.loss_weighting=min_snr {GAUSSIAN_ONLY}; a cold process would ignore it: "
            "remove it, or unset it with an empty override: {'diffusion.loss_weighting': ''}",
        ),
        (("diffusion.t_lognormal_std=2",), unused("diffusion.t_lognormal_std=2.0", LOGNORMAL_ONLY)),
        (
            ("diffusion.kind=cold", "diffusion.t_sampling=lognormal"),
            f"diffusion.t_sampling=lognormal {GAUSSIAN_ONLY}; a cold process, which chooses its "
            "training levels with diffusion.t_range, would ignore it: remove it, "
            "or unset it with an empty override: {'diffusion.t_sampling': ''}",
        ),
        # Written at its default value, the key is refused all the same: it was given, and it
        # would not take effect (before: accepted in silence, while another value was refused).
        (
            ("diffusion.t_lognormal_mean=-0.5",),
            unused("diffusion.t_lognormal_mean=-0.5", LOGNORMAL_ONLY),
        ),
        (
            ("diffusion.t_lognormal_std=1.5",),
            unused("diffusion.t_lognormal_std=1.5", LOGNORMAL_ONLY),
        ),
        (("diffusion.min_snr_gamma=5",), unused("diffusion.min_snr_gamma=5.0", MIN_SNR_ONLY)),
        (("training.eval_samples=200",), unused("training.eval_samples=200", PROBE_ONLY)),
        (("training.warmup_steps=0",), unused("training.warmup_steps=0", COSINE_ONLY)),
        (("training.lr_decay_steps=none",), unused("training.lr_decay_steps=none", COSINE_ONLY)),
        (
            ("diffusion.kind=cold", "diffusion.loss_weighting=none"),
            f"diffusion.loss_weighting=none {GAUSSIAN_ONLY}; a cold process would ignore it: "
            "remove it, or unset it with an empty override: {'diffusion.loss_weighting': ''}",
        ),
        (
            ("diffusion.kind=cold", "diffusion.t_sampling=uniform"),
            f"diffusion.t_sampling=uniform {GAUSSIAN_ONLY}; a cold process, which chooses its "
            "training levels with diffusion.t_range, would ignore it: remove it, "
            "or unset it with an empty override: {'diffusion.t_sampling': ''}",
        ),
        (
            ("diffusion.t_range=notebook",),
            "diffusion.t_range=notebook applies to cold processes (diffusion.kind = cold) only; "
            "the Gaussian process, which draws t from 1..T-1, would ignore it: remove it, "
            "or unset it with an empty override: {'diffusion.t_range': ''}",
        ),
    ],
)
def test_settings_that_could_not_take_effect_are_refused(overrides, message):
    with pytest.raises(UserError) as refused:
        tiny_config(*overrides)
    assert str(refused.value) == message


@pytest.mark.parametrize(
    "overrides, key, value",
    [
        (("diffusion.t_sampling=lognormal", "diffusion.t_lognormal_mean=-0.5"),
         "diffusion.t_lognormal_mean", -0.5),
        (("diffusion.loss_weighting=min_snr", "diffusion.min_snr_gamma=5"),
         "diffusion.min_snr_gamma", 5.0),
        (("training.eval_every=2", "training.eval_samples=200"), "training.eval_samples", 200),
        (("training.lr_schedule=cosine", "training.lr_decay_steps=40", "training.warmup_steps=0"),
         "training.warmup_steps", 0),
        (("diffusion.kind=cold", "diffusion.t_range=notebook"), "diffusion.t_range", "notebook"),
    ],
)  # fmt: skip
def test_the_same_keys_are_accepted_with_their_switch_on(overrides, key, value):
    section, _, name = key.partition(".")
    assert getattr(getattr(tiny_config(*overrides), section), name) == value


def test_a_config_built_in_code_is_refused_when_an_unused_key_differs_from_its_default():
    """No record of what was written: the value decides, and the advice is the default."""
    config = dataclasses.replace(
        tiny_config(), diffusion=dataclasses.replace(tiny_config().diffusion, min_snr_gamma=2.0)
    )
    with pytest.raises(UserError) as refused:
        config.check()
    assert str(refused.value) == f"diffusion.min_snr_gamma=2.0 {MIN_SNR_ONLY}: leave it at 5.0"
    dataclasses.replace(config, diffusion=tiny_config().diffusion).check()  # the default: fine


@pytest.mark.parametrize(
    "prediction, alpha_bar, weight",
    [
        ("eps", 0.9, 5 / 9),  # SNR 9 > gamma 5: min(9, 5) / 9
        ("eps", 0.5, 1.0),  # SNR 1: min(1, 5) / 1
        ("v", 0.9, 5 / 10),  # min(9, 5) / (9 + 1)
        ("v", 0.5, 1 / 2),
        ("x0", 0.9, 5.0),
        ("x0", 0.5, 1.0),
    ],
)
def test_min_snr_weights_by_hand(prediction, alpha_bar, weight):
    process = GaussianDiffusion(
        beta=torch.zeros(3, dtype=torch.float64),
        alpha_bar=torch.tensor([1.0, alpha_bar, 0.1], dtype=torch.float64),
        prediction=prediction,
        loss_weighting="min_snr",
    )
    assert process.snr_weight(torch.tensor([1])).item() == pytest.approx(weight, rel=1e-12)


def test_min_snr_loss_is_the_weighted_mean_of_per_sample_errors():
    config = DiffusionConfig(T=20, beta1=1e-3, beta2=0.2, loss_weighting="min_snr")
    process = GaussianDiffusion.from_config(config)
    plain = GaussianDiffusion.from_config(dataclasses.replace(config, loss_weighting="none"))
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 1, 28, 28, generator=g) - 0.5
    noise = {"t": torch.tensor([1, 5, 12, 19]), "eps": torch.randn(4, 1, 28, 28, generator=g)}

    def net(x_t, t):  # a fixed wrong guess: the per-sample errors differ
        return 0.5 * x_t

    per_sample = torch.stack(
        [
            plain.loss(net, x0[i : i + 1], {k: v[i : i + 1] for k, v in noise.items()})
            for i in range(4)
        ]
    )
    expected = (process.snr_weight(noise["t"]) * per_sample).mean()
    assert process.loss(net, x0, noise).item() == pytest.approx(expected.item(), rel=1e-6)
    weights = process.snr_weight(noise["t"])
    assert weights[0] < 1 and weights[-1] == 1  # low t (high SNR) is weighted down


def test_lognormal_times_are_the_nearest_noise_level_by_brute_force():
    process = GaussianDiffusion.from_config(DiffusionConfig(t_sampling="lognormal"))
    a = process.alpha_bar.double()
    log_sigma_t = 0.5 * ((1 - a) / a).log()  # (T+1,)
    log_sigma = torch.tensor([-9.0, -4.25, -1.2, 0.0, 0.2147, 1.0, 4.9, 9.0])
    distance = (log_sigma[:, None].double() - log_sigma_t[None, 1:1000]).abs()
    expected = distance.argmin(dim=1) + 1  # t in 1..999
    assert process.nearest_t(log_sigma).tolist() == expected.tolist()
    assert expected[0] == 1 and expected[-1] == 999  # beyond the table: its ends


def test_lognormal_times_follow_their_distribution():
    # ln sigma ~ N(-0.5, 1.5^2): its median -0.5 is sigma 0.607, t = 172 on the linear schedule,
    # and P(ln sigma > ln sigma_500 = 1.235) = P(z > 1.157) = 0.124 (normal table).
    process = GaussianDiffusion.from_config(DiffusionConfig(t_sampling="lognormal"))
    g = torch.Generator().manual_seed(0)
    t = process.draw_noise(torch.Size([40_000, 1, 2, 2]), g, torch.device("cpu"))["t"]
    assert 1 <= t.min() and t.max() <= 999
    assert abs(t.median().item() - 172) <= 4
    assert (t > 500).float().mean().item() == pytest.approx(0.124, abs=0.006)


def test_lognormal_run_stopped_and_resumed_equals_the_straight_run(tmp_path):
    times = ("diffusion.t_sampling=lognormal",)
    straight = train_tiny(tmp_path / "straight", *times, "training.max_steps=9")
    run = tmp_path / "stopped"
    train_tiny(run, *times, "training.max_steps=4")
    train_tiny(run, *times, "training.max_steps=9", resume=True)
    assert_same_final_weights(run, straight)


def test_cosine_run_stopped_and_resumed_equals_the_straight_run(tmp_path):
    schedule = (
        "training.lr_schedule=cosine",
        "training.lr_decay_steps=20",
        "training.warmup_steps=3",
    )
    straight = train_tiny(tmp_path / "straight", *schedule, "training.max_steps=17")
    run = tmp_path / "stopped"
    train_tiny(run, *schedule, "training.max_steps=5")
    train_tiny(run, *schedule, "training.max_steps=17", resume=True)
    assert_same_final_weights(run, straight)
    optimizer = ckpt_io.load_checkpoint(ckpt_io.latest_path(run))["optimizer"]
    assert optimizer["param_groups"][0]["lr"] == pytest.approx(
        lr_at(tiny_config(*schedule).training, 16)
    )


# --- a cosine decay shorter than the run: refused before anything changes ------------------------

COSINE_20 = ("training.lr_schedule=cosine", "training.lr_decay_steps=20")


def folder_bytes(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in run.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "overrides, message",
    [
        (  # 3 epochs of 12 steps: steps 20 to 35 would take lr 0
            (),
            "training.lr_decay_steps=20 is below this run's 36 optimiser steps (3 epochs of 12), "
            "whose last 16 would train at learning rate 0: give training.lr_decay_steps of at "
            "least 36, or fewer steps (training.epochs, training.max_steps)",
        ),
        (  # max_steps ends the run first
            ("training.max_steps=30",),
            "training.lr_decay_steps=20 is below this run's 30 optimiser steps "
            "(training.max_steps=30), whose last 10 would train at learning rate 0: give "
            "training.lr_decay_steps of at least 30, or fewer steps (training.epochs, "
            "training.max_steps)",
        ),
    ],
)
def test_a_decay_shorter_than_the_run_is_refused_before_an_overwrite_moves_anything(
    overrides, message, tmp_path
):
    run = copy_run(reference_run(), tmp_path / "run")
    before = folder_bytes(run)
    with pytest.raises(UserError, match=f"^{re.escape(message)}$"):
        train_tiny(run, *COSINE_20, *overrides, overwrite=True)
    assert folder_bytes(run) == before


def test_a_resume_to_more_steps_than_the_decay_is_refused_before_it_trains(tmp_path):
    run = train_tiny(tmp_path / "run", *COSINE_20, "training.max_steps=20")
    before = folder_bytes(run)
    with pytest.raises(UserError, match=r"^training.lr_decay_steps=20 is below this run's 24 "):
        train_tiny(run, *COSINE_20, "training.max_steps=24", resume=True)
    assert folder_bytes(run) == before


def test_a_decay_as_long_as_the_run_trains_its_last_step_above_0(tmp_path):
    run = train_tiny(
        tmp_path / "run", "training.lr_schedule=cosine", "training.lr_decay_steps=24",
        "training.epochs=2",
    )  # fmt: skip
    optimizer = ckpt_io.load_checkpoint(ckpt_io.latest_path(run))["optimizer"]
    # step 23 of 24, no warm-up: 2e-3 * (1 + cos(23 pi / 24)) / 2 = 8.555e-6
    assert optimizer["param_groups"][0]["lr"] == pytest.approx(
        2e-3 * (1 + math.cos(23 * math.pi / 24)) / 2, rel=1e-12
    )
    assert optimizer["param_groups"][0]["lr"] == pytest.approx(8.5551386e-6, rel=1e-7)
