"""Data-parallel training: two gloo processes under torchrun take the single process's steps."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch
from tiny_runs import child_env, losses, single_thread, train_tiny, write_ini  # noqa: F401

from diffusiontools import checkpoint as ckpt_io
from diffusiontools.distributed import Ranks
from diffusiontools.errors import UserError

# One epoch, 12 steps of a global batch of 16 (8 per rank), class-conditional, with EMA: labels,
# label dropout, t and noise are all sliced from the global batch's draws.
OVERRIDES = ["training.epochs=1", "model.num_classes=10"]
STEPS = 12
LR = 2e-3  # the tiny config's
DEGENERATE = re.compile(r"(module\.)?blocks\.\d+\.net\.0\.bias")


def test_ranks_take_contiguous_equal_slices_of_the_global_batch():
    batch = torch.arange(8)
    assert Ranks(0, 2).shard(batch).tolist() == [0, 1, 2, 3]
    assert Ranks(1, 2).shard(batch).tolist() == [4, 5, 6, 7]
    assert torch.equal(Ranks().shard(batch), batch)


def test_a_global_batch_that_does_not_divide_over_the_ranks_is_refused():
    with pytest.raises(UserError, match="batch_size=15 .* 2 processes"):
        Ranks(0, 2).check_batch(15)
    Ranks(0, 4).check_batch(16)


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    single = train_tiny(tmp_path / "single", *OVERRIDES)
    parallel = tmp_path / "parallel"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", "-m", "diffusiontools", "train", str(write_ini(tmp_path))]
    command += ["--out", str(parallel), *(f"--set={o}" for o in OVERRIDES)]
    done = subprocess.run(command, env=child_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.count("done: ") == 1  # rank 0 alone reports (and writes)

    a = ckpt_io.load_checkpoint(ckpt_io.latest_path(single))
    b = ckpt_io.load_checkpoint(ckpt_io.latest_path(parallel))
    assert a["step"] == b["step"] == STEPS
    for kind in ("model", "ema"):
        for name, value in a[kind].items():
            if DEGENERATE.fullmatch(name):
                # The conv bias right before a LayerNorm has a true gradient of 0 (the norm
                # removes any constant shift): Adam turns its float noise, which differs with
                # the summation order, into steps of up to lr each.
                assert (value - b[kind][name]).abs().max() <= 2 * LR * STEPS, f"{kind} {name}"
            else:
                assert torch.allclose(value, b[kind][name], atol=1e-6), f"{kind} {name}"
    (step_a, train_a, val_a), (step_b, train_b, val_b) = losses(single)[0], losses(parallel)[0]
    assert step_a == step_b
    assert train_b == pytest.approx(train_a, rel=1e-5)  # the mean over ranks of their means
    assert val_b == pytest.approx(val_a, rel=1e-5)
