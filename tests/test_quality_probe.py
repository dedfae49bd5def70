"""The quality curve (``training.eval_every``) and the frame statistics.

- the frame statistics on a hand-computed case and on the real MNIST test set;
- a run with the probe on trains bit for bit as the same run with it off, fills the probe's
  columns on epochs 0, N, ... and the last (empty on the others), and a resumed run (through the
  CLI) continues the curve without duplicate rows;
- a finished run resumed to more epochs drops the probe of its former last epoch: its
  metrics.csv and learning curve equal the straight run's;
- a stop (SIGTERM, SIGINT) sent from inside the probe abandons it after the epoch's checkpoint,
  leaves no half row, and the resumed run probes that epoch again: the straight run's metrics;
- the probe's last row equals ``evaluate`` on the same run (same n, seed, sampler, test set);
- the sampler the probe draws with, per config; a cold run is probed; the global RNG is left as
  it was; the trainer refuses the key without a probe.
All on the tiny config of tiny_runs (notebook CNN (8, 8), T = 20, 256 images, 12 steps per
epoch, 3 epochs) with 10 probe samples.
"""

from __future__ import annotations

import functools
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from threadpoolctl import threadpool_limits
from tiny_runs import (  # noqa: F401 (single_thread: autouse fixture)
    _scratch,
    assert_same_final_weights,
    losses,
    reference_run,
    single_thread,
    tiny_config,
    write_ini,
)

import diffusiontools as dt
from diffusiontools import cli
from diffusiontools.data import load_mnist
from diffusiontools.errors import UserError
from diffusiontools.evaluation import quality_probe
from diffusiontools.evaluation.frame_metrics import frame_statistics
from diffusiontools.evaluation.quality_probe import COLUMNS, QualityProbe, probe_config
from diffusiontools.models import make_network
from diffusiontools.sampling.plan import resolve_plan
from diffusiontools.training import checkpoint as ckpt_io
from diffusiontools.training.run_config import load_config
from diffusiontools.training.run_folder import METRICS_COLUMNS, read_metrics
from diffusiontools.training.trainer import train

PROBE = ("training.eval_every=2", "training.eval_samples=10")
TIMINGS = ("images_per_s", "epoch_seconds", "eval_seconds")  # wall-clock: differ run to run


# --- the frame statistics ------------------------------------------------------------------------


def test_frame_statistics_of_a_hand_computed_set():
    a = np.zeros((28, 28), np.uint8)
    a[0, :] = 255  # 28 frame pixels at 255 ...
    a[1, :2] = 255  # ... and 2 more: 30 of the 300 frame pixels, mean 30 * 255 / 300 = 25.5
    b = np.full((28, 28), 25, np.uint8)  # frame mean 25; 25 is not mid-grey (exclusive bound)
    c = np.zeros((28, 28), np.uint8)
    c[3:-3, 3:-3] = 26  # black frame; the inner 22 x 22 = 484 pixels are mid-grey
    d = np.full((28, 28), 5, np.uint8)  # frame mean exactly 5: not above 5
    d[14, 14] = 230  # 230 is not mid-grey either
    stats = frame_statistics(np.stack([a, b, c, d]))
    assert stats["frame_mean"] == pytest.approx((25.5 + 25 + 0 + 5) / 4)
    assert stats["frame_above_5"] == 0.5  # a and b
    assert stats["mid_grey_fraction"] == pytest.approx(484 / 784 / 4)


def test_frame_statistics_refuse_float_images():
    with pytest.raises(
        UserError, match=r"uint8 images \(N, C, H, W\) with C 1 or 3, or \(N, H, W\)"
    ):
        frame_statistics(np.zeros((2, 28, 28), np.float32))


def test_frame_statistics_of_the_mnist_test_set(real_mnist):
    """MNIST's own values, the reference the samples are read against. The issue's figures
    (0.8/255, 1.4%, 8.4%) are those of the first 500 test images; all 10,000 read a little
    higher (240 images have a frame mean above 5/255)."""
    data = load_mnist(str(real_mnist), source="mnist", download=False)
    images = data.test_images.numpy()
    every = frame_statistics(images)
    assert every["frame_mean"] == pytest.approx(0.8648163333, abs=1e-9)
    assert every["frame_above_5"] == 0.024
    assert every["mid_grey_fraction"] == pytest.approx(0.0859102041, abs=1e-9)
    first = frame_statistics(images[:500])
    assert first["frame_mean"] == pytest.approx(0.7762066667, abs=1e-9)
    assert first["frame_above_5"] == 0.014
    assert first["mid_grey_fraction"] == pytest.approx(0.0840153061, abs=1e-9)


# --- the probe during training -------------------------------------------------------------------


@functools.cache
def probed_run() -> Path:
    """The reference run of tiny_runs, trained through dt.train with the probe every 2 epochs."""
    run = _scratch / "probed"
    dt.train(tiny_config(*PROBE), run)
    return run


def without_timings(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMINGS} for row in rows]


def test_the_probe_leaves_the_training_bit_identical():
    assert losses(probed_run()) == losses(reference_run())
    assert_same_final_weights(probed_run(), reference_run())


def test_the_probe_fills_its_columns_on_epochs_0_n_and_the_last():
    header = (probed_run() / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header == [*METRICS_COLUMNS, "val_loss_raw", *COLUMNS]  # the run keeps an EMA
    rows = read_metrics(probed_run())
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    for row, probed in zip(rows, (True, False, True), strict=True):  # every 2: 0, then 2 (last)
        assert all((row[c] is not None) == probed for c in COLUMNS), row
    for row in (rows[0], rows[2]):
        assert row["frechet_distance"] > 0 and 0 <= row["class_entropy"] <= np.log(10)
        assert 0 <= row["recognisable_fraction"] <= 1 and 0 <= row["frame_mean"] <= 255
        assert 0 <= row["frame_above_5"] <= 1 and 0 <= row["mid_grey_fraction"] <= 1
        assert row["eval_seconds"] > 0
    assert rows[2]["frechet_distance"] < rows[0]["frechet_distance"]  # noise at epoch 0
    # the learning curve gains the quality panels (15 x 6 inches instead of 6 x 4)
    assert imread(probed_run() / "learning_curve.png").shape[1] > 1000
    assert imread(reference_run() / "learning_curve.png").shape[1] < 1000


def test_a_resumed_run_continues_the_curve_through_the_cli(tmp_path, capsys):
    run = tmp_path / "run"
    ini = str(write_ini(tmp_path))
    sets = [x for o in PROBE for x in ("--set", o)]
    n_test = len(load_mnist(None).test_images)
    announced = (
        f"quality probe every 2 epochs: 10 samples (seed 0), ancestral with 20 steps, against "
        f"{n_test} test images"
    )
    capsys.readouterr()
    assert cli.main(["train", ini, "--out", str(run), *sets, "--set", "training.epochs=1"]) == 0
    assert capsys.readouterr().err.splitlines().count(announced) == 1  # each session says it
    assert [r["epoch"] for r in read_metrics(run)] == [0]
    assert cli.main(["train", ini, "--out", str(run), *sets, "--resume"]) == 0
    assert capsys.readouterr().err.splitlines().count(announced) == 1
    assert without_timings(read_metrics(run)) == without_timings(read_metrics(probed_run()))
    assert_same_final_weights(run, probed_run())


@pytest.mark.parametrize("first_end", ["training.epochs=2", "training.max_steps=24"])
def test_a_finished_run_resumed_to_more_epochs_equals_the_straight_run(first_end, tmp_path):
    """The first session ends after epoch 1 and probes it, as its last; resumed to 3 epochs,
    epoch 1 is not the last any more and loses its probe: metrics.csv and the learning curve
    are the straight run's (probes on epochs 0 and 2 only), value for value."""
    run = tmp_path / probed_run().name  # the curve's title names the run folder
    dt.train(tiny_config(*PROBE, first_end), run)
    assert [r["frechet_distance"] is not None for r in read_metrics(run)] == [True, True]
    dt.train(tiny_config(*PROBE), run, resume=True)
    assert without_timings(read_metrics(run)) == without_timings(read_metrics(probed_run()))
    assert_same_final_weights(run, probed_run())
    assert np.array_equal(
        imread(run / "learning_curve.png"), imread(probed_run() / "learning_curve.png")
    )


@pytest.mark.parametrize("probe_call, signum", [(1, signal.SIGTERM), (2, signal.SIGINT)])
def test_a_stop_during_the_probe_abandons_it_and_the_resumed_run_probes_again(
    probe_call, signum, tmp_path, monkeypatch
):
    """The signal is sent as the probe starts drawing its samples, in its ``probe_call``-th run
    (epoch 0, or epoch 2: the last). The drawing never finishes; the epoch's checkpoints were
    written before the probe and say it is pending; metrics.csv has the epoch's row without
    probe values. The resumed run probes that epoch first, draws the sample grid that came after
    the probe, and ends as the straight run."""
    grids = ("sampling.sample_every=2", "sampling.n_samples=4")  # after the probe: epochs 0, 2
    real_generate, calls, returned = quality_probe.generate, [], []

    def signal_then_generate(*args, **kwargs):
        calls.append(len(calls) + 1)
        if len(calls) == probe_call:
            os.kill(os.getpid(), signum)
        images = real_generate(*args, **kwargs)
        returned.append(len(calls))
        return images

    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(quality_probe, "generate", signal_then_generate)
        with pytest.raises(KeyboardInterrupt) as stopped:  # TrainingStopped
            dt.train(tiny_config(*PROBE, *grids), run)
    assert stopped.value.signum == signum
    assert returned == list(range(1, probe_call))  # the stopped probe never got its samples
    epoch = 2 * (probe_call - 1)  # the probed epochs are 0 and 2
    latest = ckpt_io.load_checkpoint(ckpt_io.latest_path(run))
    assert (latest["epoch"], latest["batch"], latest["step"]) == (epoch + 1, 0, 12 * (epoch + 1))
    assert latest["probe_pending"] is True
    assert ckpt_io.list_epochs(run) == list(range(epoch + 1))
    rows = read_metrics(run)
    assert [r["epoch"] for r in rows] == list(range(epoch + 1))
    assert all(rows[-1].get(c) is None for c in COLUMNS)  # no half row
    grid_files = ["epoch_0000.png", "epoch_0002.png"]
    assert sorted(p.name for p in run.glob("samples/*.png")) == grid_files[: probe_call - 1]

    dt.train(tiny_config(*PROBE, *grids), run, resume=True)
    assert without_timings(read_metrics(run)) == without_timings(read_metrics(probed_run()))
    assert_same_final_weights(run, probed_run())
    assert ckpt_io.load_checkpoint(ckpt_io.latest_path(run))["probe_pending"] is False
    assert sorted(p.name for p in run.glob("samples/*.png")) == grid_files


def test_the_curve_goes_to_tensorboard_too(tmp_path):
    reader = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    run = tmp_path / "run"
    dt.train(tiny_config(*PROBE, "training.epochs=2", "training.log=tensorboard"), run)
    events = reader.EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    fd = events.Scalars("quality/frechet_distance")
    assert [e.step for e in fd] == [12, 24]  # epochs 0 and 1 (the last)
    assert [e.value for e in fd] == pytest.approx(
        [r["frechet_distance"] for r in read_metrics(run)]
    )


def test_the_last_row_equals_evaluate_on_the_run(tmp_path):
    """Same n (10), seed (0), sampler (the run's ancestral, 20 steps) and test set: the same
    numbers as ``diffusiontools evaluate``, which draws and scores along its own code path."""
    n_test = len(load_mnist(None).test_images)
    out = tmp_path / "eval"
    args = ["evaluate", str(probed_run()), "--n-samples", "10", "--tsne-reference", "10",
            "--test-reference", str(n_test), "--n-boot", "2", "--n-boot-set", "2",
            "--out", str(out), "--device", "cpu"]  # fmt: skip
    with threadpool_limits(1):
        assert cli.main(args) == 0
    (scores,) = [
        r["metrics"] for r in json.loads((out / "metrics.json").read_text())["runs"].values()
    ]
    last = read_metrics(probed_run())[-1]
    for column in COLUMNS:
        if column != "eval_seconds":
            assert last[column] == pytest.approx(scores[column]["value"], rel=1e-9), column


# Refusals that come after the probe is built (the trainer's checks of the data and the folder):
# the refused run must not have announced the probe. (overrides, the whole error line)
REFUSED_AFTER_THE_PROBE = [
    (("training.batch_size=300",),
     "error: training.batch_size=300 is larger than the 205 training images; give at most 205 or "
     "raise data.subset"),
    (("training.lr_schedule=cosine", "training.lr_decay_steps=10"),
     "error: training.lr_decay_steps=10 is below this run's 36 optimiser steps (3 epochs of 12), "
     "whose last 26 would train at learning rate 0: give training.lr_decay_steps of at least 36, "
     "or fewer steps (training.epochs, training.max_steps)"),
]  # fmt: skip


@pytest.mark.parametrize("overrides, line", REFUSED_AFTER_THE_PROBE)
def test_a_refused_run_announces_no_probe(overrides, line, tmp_path, capsys):
    sets = [x for o in (*PROBE, *overrides) for x in ("--set", o)]
    capsys.readouterr()
    argv = ["train", str(write_ini(tmp_path)), "--out", str(tmp_path / "run"), *sets]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.splitlines() == [line]  # the refusal, and nothing before it
    assert not (tmp_path / "run").exists()


def test_eval_every_without_a_probe_is_refused_before_the_folder_changes(tmp_path):
    with pytest.raises(UserError, match=r"training.eval_every=2 needs the quality probe"):
        train(tiny_config(*PROBE), tmp_path / "run")
    assert not (tmp_path / "run").exists()


# --- which sampler, cold runs, the global RNG ----------------------------------------------------

# config, overrides -> (sampler, steps, eta, clip_x0, guidance) the probe draws with
SAMPLERS = [
    ("model1", (), ("ancestral", 100, None, False, None)),  # 1000-step ancestral: respaced to 100
    ("model2", (), ("ancestral", 100, None, False, None)),  # T = 100: its own sampler
    ("quickstart", (), ("ddim", 50, 0.5, True, 1.1)),  # its own DDIM-50, eta and guidance kept
    ("quickstart", ("sampling.steps=none",), ("ddim", 100, 0.5, True, 1.1)),  # DDIM over all T
    ("custom1", (), ("naive", 100, None, None, None)),  # cold: its own sampler and start
    ("custom1", ("diffusion.T=300",), ("naive", 100, None, None, None)),  # on a strided grid
]


@pytest.mark.parametrize("name, overrides, expected", SAMPLERS)
def test_the_probe_draws_with_a_fast_sampler(name, overrides, expected):
    s = resolve_plan(probe_config(load_config(name, list(overrides))))
    assert (s.sampler, s.steps, s.eta, s.clip_x0, s.guidance) == expected


def test_a_cold_run_is_probed_from_its_own_start_and_the_global_rng_is_untouched():
    config = tiny_config(
        "diffusion.kind=cold", "diffusion.T=5", "training.eval_every=1", "training.eval_samples=10"
    )
    before = torch.get_rng_state()
    probe = QualityProbe(config)
    row = probe(make_network(config.model, seed=0, shape=(1, 28, 28)), torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), before)
    assert probe.settings.cold_start == "test"  # the report's start: degraded test images
    assert set(row) == set(COLUMNS) and all(np.isfinite(v) for v in row.values())
    assert set(probe.reference) >= {"frame_mean", "class_entropy", "recognisable_fraction"}
