"""Data-parallel training: two gloo processes under torchrun take the single process's steps."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch
from tiny_runs import child_env, losses, single_thread, train_tiny, write_ini  # noqa: F401

from diffusiontools.errors import UserError
from diffusiontools.training import checkpoint as ckpt_io
from diffusiontools.training.distributed import Ranks

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
                # Each rank's gradient is the mean of its half batch, all-reduced: the same sum
                # in another float32 order. Measured up to 2.9e-7 on weights up to 2.8.
                assert torch.allclose(value, b[kind][name], atol=1e-6), f"{kind} {name}"
    (step_a, train_a, val_a), (step_b, train_b, val_b) = losses(single)[0], losses(parallel)[0]
    assert step_a == step_b
    assert train_b == pytest.approx(train_a, rel=1e-5)  # the mean over ranks of their means
    assert val_b == pytest.approx(val_a, rel=1e-5)


# --- The lifecycle under torchrun: a signal, a resume, a refused overwrite ------------------------

# 640 images -> 512 train: 32 steps of 16 per epoch, so the ranks' every-20-steps agreement on a
# stop falls inside the epoch (at step 20).
LIFECYCLE = ["data.subset=640", "training.epochs=1"]

# Loaded by every Python process of the job (PYTHONPATH): at the training step given in
# DT_SIGTERM_AT_STEP each worker sends itself SIGTERM, as Slurm signals every task of a job;
# each worker records its exit status in DT_EXIT_DIR/rank<RANK>.
SITECUSTOMIZE = """
import os
if os.environ.get("DT_EXIT_DIR") and "RANK" in os.environ:
    import signal
    import torch
    import diffusiontools.cli
    from diffusiontools.diffusion.gaussian import GaussianDiffusion

    at, count = int(os.environ.get("DT_SIGTERM_AT_STEP", "0")), 0
    original_loss, original_main = GaussianDiffusion.loss, diffusiontools.cli.main

    def loss(self, *args, **kwargs):
        global count
        if torch.is_grad_enabled():
            count += 1
            if count == at:
                os.kill(os.getpid(), signal.SIGTERM)
        return original_loss(self, *args, **kwargs)

    def main(argv=None):
        code = 1
        try:
            code = original_main(argv)
        except SystemExit as exc:
            code = exc.code
            raise
        finally:
            path = os.path.join(os.environ["DT_EXIT_DIR"], "rank" + os.environ["RANK"])
            with open(path, "w") as f:
                f.write(str(code))
        return code

    GaussianDiffusion.loss = loss
    diffusiontools.cli.main = main
"""


def torchrun(
    tmp_path, run, *flags, sigterm_at: int = 0
) -> tuple[subprocess.CompletedProcess, dict]:
    """``torchrun --nproc_per_node=2 -m diffusiontools train`` on the tiny config; returns the
    finished process and each rank's exit status."""
    hooks, exits = (
        tmp_path / "hooks",
        tmp_path / f"exits-{run.name}-{len(list(tmp_path.iterdir()))}",
    )
    hooks.mkdir(exist_ok=True)
    exits.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {**child_env(), "DT_EXIT_DIR": str(exits), "DT_SIGTERM_AT_STEP": str(sigterm_at)}
    env["PYTHONPATH"] = os.pathsep.join([str(hooks), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", "diffusiontools", "train", str(write_ini(tmp_path)), "--out", str(run)]
    command += [*(f"--set={o}" for o in LIFECYCLE), *flags]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    codes = {p.name: int(p.read_text()) for p in exits.iterdir()}
    return done, codes


def checkpoint_files(run) -> dict:
    return {p.name: p.read_bytes() for p in sorted((run / ckpt_io.CHECKPOINT_DIR).iterdir())}


@pytest.mark.slow
def test_torchrun_lifecycle_sigterm_resume_and_a_refused_overwrite(
    tmp_path,
):
    straight, codes = torchrun(tmp_path, tmp_path / "straight")
    assert straight.returncode == 0 and codes == {"rank0": 0, "rank1": 0}, straight.stderr[-2000:]

    # SIGTERM at step 7 on both ranks: they agree at step 20, rank 0 alone writes one checkpoint,
    # both exit 128 + 15; the epoch is not counted as finished.
    run = tmp_path / "run"
    stopped, codes = torchrun(tmp_path, run, sigterm_at=7)
    assert codes == {"rank0": 143, "rank1": 143}, stopped.stderr[-2000:]
    assert stopped.stderr.count("stopped by signal 15 at step 20") == 1
    assert list(checkpoint_files(run)) == ["latest.pt"]
    ckpt = ckpt_io.load_checkpoint(ckpt_io.latest_path(run))
    assert (ckpt["epoch"], ckpt["batch"], ckpt["step"]) == (0, 20, 20)
    assert not (run / "metrics.csv").exists()

    resumed, codes = torchrun(tmp_path, run, "--resume")
    assert resumed.returncode == 0 and codes == {"rank0": 0, "rank1": 0}, resumed.stderr[-2000:]
    a = ckpt_io.load_checkpoint(ckpt_io.latest_path(straight_run := tmp_path / "straight"))
    b = ckpt_io.load_checkpoint(ckpt_io.latest_path(run))
    assert (a["epoch"], a["batch"], a["step"]) == (b["epoch"], b["batch"], b["step"]) == (1, 0, 32)
    for kind in ("model", "ema"):
        for name, value in a[kind].items():
            assert torch.equal(value, b[kind][name]), f"{kind} {name}"
    assert losses(run) == losses(straight_run)

    # A global batch that does not divide over the 2 ranks, with --overwrite: refused by both
    # ranks (exit 2) before anything in the folder changes.
    before = {
        p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and p.name != ".lock"
    }
    refused, codes = torchrun(tmp_path, run, "--overwrite", "--set=training.batch_size=15")
    assert codes == {"rank0": 2, "rank1": 2}, refused.stderr[-2000:]
    assert "training.batch_size=15 is the global batch and must divide evenly" in refused.stderr
    after = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and p.name != ".lock"}
    assert after == before
