"""Sampling from a trained run: shapes, range, seeding, trajectories and the NPZ format."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_runs import (  # noqa: F401 (single_thread: autouse fixture)
    reference_run,
    single_thread,
    train_tiny,
)

from diffusiontools import progress_bar
from diffusiontools.config import Config, DiffusionConfig, ModelConfig
from diffusiontools.data import to_uint8
from diffusiontools.diffusion.gaussian import GaussianDiffusion
from diffusiontools.errors import DiffusionToolsError
from diffusiontools.models import make_network
from diffusiontools.outputs.samples_io import load_samples, save_samples, write_samples
from diffusiontools.outputs.tables import shared_field_notes
from diffusiontools.sampling.generation import (
    TRAJECTORY_FRACTIONS,
    generate,
    generate_batches,
    trajectory,
)
from diffusiontools.sampling.plan import resolve_plan
from diffusiontools.training.sample_files import start_fields
from diffusiontools.training.trained_model import load_trained

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model():
    return load_trained(reference_run(), None, CPU)


def draw(model, n: int = 6, seed: int = 0) -> torch.Tensor:
    return generate(model.net, model.process, model.config, n, seed, CPU, shape=model.shape)


def test_samples_have_the_image_shape_and_a_sane_range(model):
    images = draw(model)
    assert images.shape == (6, 1, 28, 28) and images.dtype == torch.float32
    assert torch.isfinite(images).all()
    # Model units are [-0.5, 0.5]; a 36-step model overshoots (no clamping), but must not blow up.
    assert images.abs().max() < 50
    pixels = to_uint8(images)
    assert pixels.dtype == torch.uint8 and pixels.shape == (6, 28, 28)


def test_the_same_seed_gives_the_same_samples_and_another_seed_others(model):
    assert torch.equal(draw(model, seed=3), draw(model, seed=3))
    assert not torch.allclose(draw(model, seed=3), draw(model, seed=4))


@pytest.fixture(scope="module")
def cold_model(tmp_path_factory):
    run = train_tiny(tmp_path_factory.mktemp("cold") / "run", "diffusion.kind=cold")
    return load_trained(run, None, CPU)


@pytest.mark.parametrize(
    "kind, sampler, steps",
    [("gaussian", "ancestral", 20), ("gaussian", "ddim", 5), ("gaussian", "dpm_solver", 5),
     ("gaussian", "heun", 4), ("gaussian", "euler_ancestral", 5), ("cold", "naive", 20),
     ("cold", "improved", 7)],
)  # fmt: skip
def test_the_progress_bar_counts_every_step_of_every_batch_and_changes_no_sample(
    model, cold_model, monkeypatch, kind, sampler, steps
):
    """5 samples in batches of 2: 3 batches of ``steps`` steps; the bar moves one step at a time
    (a sampler's last step, which naive does not report, is added at its batch's end)."""
    m = model if kind == "gaussian" else cold_model
    plan = resolve_plan(m.config, sampler, steps)
    draw = (m.net, m.process, m.config, 5, 0, CPU)
    plain = generate(*draw, batch_size=2, plan=plan, shape=m.shape)
    moves, bars = [], []

    class RecordingBar(progress_bar.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append((self, self.disable))

        def update(self, k=1):
            moves.append(k)
            return super().update(k)

    monkeypatch.setattr(progress_bar, "tqdm", RecordingBar)
    shown = generate(*draw, batch_size=2, plan=plan, shape=m.shape, progress=True)
    assert torch.equal(shown, plain)
    ((bar, disabled),) = bars
    assert bar.total == bar.n == 3 * steps and not disabled
    assert set(moves) <= {0, 1}  # one step at a time; 0: the batch's end found all reported
    assert moves.count(1) == 3 * steps


@pytest.mark.parametrize("method", ["sample", "trajectory"])
def test_progress_false_hides_the_sampling_bar_and_changes_no_sample(model, capsys, method):
    draw = getattr(model, method)
    shown = draw(3, seed=1, steps=4)
    assert "3 samples:" in capsys.readouterr().err  # the bar's first line, shown at its start
    hidden = draw(3, seed=1, steps=4, progress=False)
    assert capsys.readouterr().err == ""
    final = (lambda x: x) if method == "sample" else (lambda times_states: times_states[1][-1])
    assert torch.equal(final(hidden), final(shown))
    with pytest.raises(DiffusionToolsError, match=r"^progress='no' is not a bool$"):
        draw(3, progress="no")


def test_samples_that_share_a_random_field_say_so_and_the_table_notes_it(cold_model, tmp_path):
    """t_per = batch: one pixel-swap field per sampling batch, which every interval over the
    samples holds fixed; t_per = image (the tiny cold run's): one field per sample, no note."""
    run = train_tiny(tmp_path / "run", "diffusion.kind=cold", "diffusion.t_per=batch",
                     "training.max_steps=1")  # fmt: skip
    shared = load_trained(run, None, CPU)
    fields = start_fields(shared, resolve_plan(shared.config, "naive", 2), 3)
    assert fields["shared_field"] == (
        "diffusion.t_per = batch: the samples of each sampling batch (up to 500) share one "
        "random field"
    )
    own = start_fields(cold_model, resolve_plan(cold_model.config, "naive", 2), 3)
    assert "shared_field" not in own
    results = {"runs": {"batch": {"source": fields}, "image": {"source": own}}}
    assert shared_field_notes(results) == [
        "batch: diffusion.t_per = batch: the samples of each sampling batch (up to 500) share "
        "one random field, so its intervals hold that field fixed and do not cover how the "
        "metrics vary with it: compare evaluations at several seeds."
    ]


def test_trajectory_ends_in_the_sample(model):
    times, states = trajectory(model.net, model.process, model.config, 3, 0, CPU, shape=model.shape)
    assert times == [20, 10, 2, 1, 0]  # the ancestral sampler visits every t: the targets
    assert len(states) == len(TRAJECTORY_FRACTIONS)
    assert all(s.shape == (3, 1, 28, 28) for s in states)
    assert torch.equal(states[-1], draw(model, n=3))
    assert states[0].std() > states[-1].std() * 0.5  # x_T is N(0, I)


def test_npz_holds_uint8_images_and_the_metadata(model, tmp_path):
    path = tmp_path / "samples.npz"
    save_samples(path, draw(model, n=4), seed=0, sampler="ancestral")
    images, meta = load_samples(path)
    assert images.dtype == np.uint8 and images.shape == (4, 28, 28)
    assert meta == {"seed": 0, "sampler": "ancestral"}


def test_batches_are_the_samples_in_order_one_batch_at_a_time(model):
    batches = list(
        generate_batches(
            model.net, model.process, model.config, 7, 0, CPU, batch_size=3, shape=model.shape
        )
    )
    assert [len(b) for b in batches] == [3, 3, 1]
    assert torch.equal(
        torch.cat(batches),
        generate(
            model.net, model.process, model.config, 7, 0, CPU, batch_size=3, shape=model.shape
        ),
    )


def test_an_npz_written_batch_by_batch_is_the_one_savez_writes(tmp_path):
    """``write_samples`` streams batches into the zip: np.load reads the same images (gray:
    (N, H, W), as every file holds them), metadata and format as from ``np.savez_compressed``
    of the whole array."""
    images = torch.randint(
        0, 256, (7, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    write_samples(tmp_path / "streamed.npz", [images[:3], images[3:6], images[6:]], 7, seed=5)
    np.savez_compressed(tmp_path / "whole.npz", images=images.numpy(), meta='{"seed": 5}', format=2)
    with np.load(tmp_path / "streamed.npz") as streamed, np.load(tmp_path / "whole.npz") as whole:
        assert sorted(streamed.files) == sorted(whole.files) == ["format", "images", "meta"]
        assert streamed["images"].shape == (7, 28, 28) and int(streamed["format"]) == 2
        assert np.array_equal(streamed["images"], whole["images"])
        assert str(streamed["meta"]) == str(whole["meta"])


def test_a_failed_batch_leaves_the_earlier_npz_as_it_was(tmp_path):
    path = tmp_path / "samples.npz"
    path.write_bytes(b"earlier samples")

    def batches():
        yield torch.zeros(2, 28, 28, dtype=torch.uint8)
        raise KeyboardInterrupt  # Ctrl-C in the middle of the drawing

    with pytest.raises(KeyboardInterrupt):
        write_samples(path, batches(), 4)
    assert path.read_bytes() == b"earlier samples"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples.npz"]  # no half-written file


@pytest.mark.parametrize("T", [5, 10])
def test_trajectory_with_colliding_fractions_fills_every_column(T):
    """For small T, fractions 0.1 and 0.05 round to the same step; every column is still drawn."""
    diffusion = DiffusionConfig(T=T, beta1=1e-3, beta2=0.2)
    config = Config(model=ModelConfig(n_hidden=(4, 4)), diffusion=diffusion)
    process = GaussianDiffusion.from_config(config.diffusion)
    times, states = trajectory(
        make_network(config.model, shape=(1, 28, 28)),
        process,
        config,
        2,
        0,
        torch.device("cpu"),
        shape=(1, 28, 28),
    )
    assert times == [round(f * T) for f in TRAJECTORY_FRACTIONS]
    assert len(states) == len(TRAJECTORY_FRACTIONS)
    assert all(s is not None and s.shape == (2, 1, 28, 28) for s in states)


def test_class_labels_cycle_through_the_digits_across_batches():
    from diffusiontools.sampling.generation import class_labels

    assert class_labels(10, None, 8, 5, torch.device("cpu")).tolist() == [8, 9, 0, 1, 2]
    assert class_labels(10, 7, 0, 3, torch.device("cpu")).tolist() == [7, 7, 7]
    assert class_labels(0, None, 0, 3, torch.device("cpu")) is None
