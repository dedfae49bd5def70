"""Deterministic where promised: on CPU, the same config and seed give the same losses, the same
weights, the same samples and the same metrics, in two separate runs."""

from __future__ import annotations

import torch
from tiny_runs import (  # noqa: F401 (single_thread: autouse fixture)
    losses,
    reference_run,
    single_thread,
    train_tiny,
)

from diffusiontools.evaluation import total_variance
from diffusiontools.sampling.generation import generate
from diffusiontools.training import checkpoint as ckpt_io
from diffusiontools.training.trained_model import load_trained

CPU = torch.device("cpu")


def samples(run, epoch: int) -> torch.Tensor:
    model = load_trained(run, epoch, CPU)
    return generate(model.net, model.process, model.config, 8, 5, CPU, shape=model.shape)


def test_a_second_run_repeats_the_first(tmp_path):
    # One epoch is enough: training.epochs only decides when to stop, not what happens before.
    again = train_tiny(tmp_path / "again", "training.epochs=1")
    first = reference_run()
    assert losses(again) == losses(first)[:1]
    a = ckpt_io.load_checkpoint(ckpt_io.epoch_path(again, 0))
    b = ckpt_io.load_checkpoint(ckpt_io.epoch_path(first, 0))
    for kind in ("model", "ema", "rng"):
        assert a[kind].keys() == b[kind].keys()
        for k, value in a[kind].items():  # tensors, and the noise generator's device name
            same = torch.equal(value, b[kind][k]) if torch.is_tensor(value) else value == b[kind][k]
            assert same, f"{kind} {k}"

    images_again, images_first = samples(again, 0), samples(first, 0)
    assert torch.equal(images_again, images_first)
    assert total_variance(images_again.numpy()) == total_variance(images_first.numpy())
