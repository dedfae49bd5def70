"""Exports: a safetensors folder that ``dt.load`` samples exactly as the run, and a diffusers
folder that diffusers loads and samples from as our DDIM does; the EMA choice; refusals."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tiny_runs import (  # noqa: F401 (single_thread: autouse fixture)
    copy_run,
    reference_run,
    run_python,
    single_thread,
    train_tiny,
)

import diffusiontools as dt
from diffusiontools import cli
from diffusiontools.config import ModelConfig
from diffusiontools.diffusion.cold import cold_levels
from diffusiontools.models import make_network
from diffusiontools.sampling.ddim import sample_ddim
from diffusiontools.sampling.generation import clip_x0, model_fn
from diffusiontools.training import checkpoint as ckpt_io
from diffusiontools.training.trained_model import TrainedModel, export_run

# diffusers' UNet2DModel at 28 -> 14 with 8 and 16 channels, one optimiser step: the comparisons
# below hold for any weights, so the run only has to exist.
UNET2D = (
    "model.network=unet2d_diffusers",
    "model.base_channels=8",
    "model.channel_mults=1, 2",
    "data.subset=64",
    "training.max_steps=1",
)


def description(folder: Path) -> dict:
    return json.loads((folder / "diffusiontools.json").read_text())


def test_a_safetensors_export_holds_the_ema_weights_and_samples_as_the_run(tmp_path):
    run = reference_run()  # the tiny CNN run with EMA, T = 20, beta 1e-3 .. 0.2
    out = export_run(run, tmp_path / "st")  # ema=None: the EMA weights where the run kept them
    assert sorted(p.name for p in out.iterdir()) == ["diffusiontools.json", "model.safetensors"]
    ckpt = ckpt_io.load_checkpoint(ckpt_io.latest_path(run))
    weights = load_file(out / "model.safetensors")
    assert weights.keys() == ckpt["ema"].keys()
    assert all(torch.equal(weights[k], ckpt["ema"][k]) for k in weights)
    about = description(out)
    assert (about["weights"], about["epoch"], about["null_label"]) == ("ema", 2, None)
    schedule = about["schedule"]
    # beta_t = beta1 + (beta2 - beta1) t / T for t = 0..T: T + 1 entries; alpha_bar their product
    expected_beta = [1e-3 + (0.2 - 1e-3) * t / 20 for t in range(21)]
    assert schedule["beta"] == pytest.approx(expected_beta, rel=1e-6)
    expected_alpha_bar = torch.cumprod(1 - torch.tensor(expected_beta, dtype=torch.float64), 0)
    assert schedule["alpha_bar"] == pytest.approx(expected_alpha_bar.tolist(), rel=1e-5)
    assert (
        about["config"]["model"]["n_hidden"] == [8, 8] and about["config"]["diffusion"]["T"] == 20
    )

    exported, original = dt.load(out, device="cpu"), dt.load(run, device="cpu")
    assert exported.config == original.config and exported.ema and exported.epoch == 2
    assert exported.folder == out and original.folder == run
    for options in ({}, {"sampler": "ddim", "steps": 5}):
        same_seed = [m.sample(4, seed=3, **options) for m in (exported, original)]
        assert torch.equal(*same_seed)


def test_a_cold_run_exports_its_levels_and_samples_as_the_run(tmp_path):
    run = train_tiny(tmp_path / "cold", "diffusion.kind=cold", "training.max_steps=2")
    out = export_run(run, tmp_path / "st")
    exported, original = dt.load(out, device="cpu"), dt.load(run, device="cpu")
    levels = description(out)["schedule"]["levels"]
    lo, hi = cold_levels(original.config.diffusion)  # level_t = lo + (hi - lo) t / T, t = 0..T
    assert levels == pytest.approx([lo + (hi - lo) * t / 20 for t in range(21)], rel=1e-6)
    assert torch.equal(exported.sample(3, seed=2), original.sample(3, seed=2))


def test_ema_none_true_false_choose_the_weights_and_true_is_refused_without_ema(tmp_path):
    run = reference_run()
    raw = export_run(run, tmp_path / "raw", ema=False)
    ckpt = ckpt_io.load_checkpoint(ckpt_io.latest_path(run))
    weights = load_file(raw / "model.safetensors")
    assert all(torch.equal(weights[k], ckpt["model"][k]) for k in ckpt["model"])
    assert description(raw)["weights"] == "raw" and not dt.load(raw).ema
    assert description(export_run(run, tmp_path / "ema", ema=True))["weights"] == "ema"
    with pytest.raises(dt.DiffusionToolsError, match="ema=False asks for raw weights, but .* EMA"):
        dt.load(tmp_path / "ema", ema=False)

    plain = train_tiny(tmp_path / "plain", "training.ema_decay=0", "training.max_steps=1")
    with pytest.raises(dt.DiffusionToolsError) as refused:
        export_run(plain, tmp_path / "x", ema=True)
    assert "ema=True asks for EMA weights, but" in str(refused.value)
    assert "training.ema_decay = 0" in str(refused.value)
    assert not (tmp_path / "x").exists()
    assert description(export_run(plain, tmp_path / "y"))["weights"] == "raw"


def test_the_cli_exports_into_the_run_folder_and_names_its_flags(tmp_path, capsys):
    run = copy_run(reference_run(), tmp_path / "run")
    assert (
        cli.main(["export", str(run), "--format", "safetensors", "--epoch", "1", "--no-ema"]) == 0
    )
    out = run / "exports" / "safetensors_epoch_0001"
    assert f"export folder: {out}" in capsys.readouterr().out
    about = description(out)
    assert (about["epoch"], about["weights"]) == (1, "raw")
    assert about["checkpoint"] == str((run / "checkpoints" / "epoch_0001.pt").resolve())
    assert about["step"] == 24  # epochs 0 and 1 of 12 steps: a finished epoch, not a mid-epoch one

    assert cli.main(["export", str(run), "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert (
        err == "error: --format 'onnx' is not an export format: choose safetensors or diffusers\n"
    )
    assert cli.main(["export", str(run), "--format", "diffusers"]) == 2
    err = capsys.readouterr().err
    assert "error: --format 'diffusers' needs a run of model.network = unet2d_diffusers" in err
    assert "this run's cnn has no diffusers counterpart" in err and err.count("\n") == 1


def test_exports_and_checkpoints_follow_the_umask_and_the_cli_names_an_export(tmp_path, capsys):
    import os

    old = os.umask(0o022)
    try:
        run = copy_run(reference_run(), tmp_path / "run")
        out = export_run(run, tmp_path / "ex", format="safetensors")
        train_tiny(tmp_path / "fresh", "training.max_steps=2")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in [out, *out.iterdir()]}
    assert modes == {"ex": 0o755, "model.safetensors": 0o644, "diffusiontools.json": 0o644}
    latest = ckpt_io.latest_path(tmp_path / "fresh")
    assert latest.stat().st_mode & 0o777 == 0o644
    mid_epoch = description(export_run(tmp_path / "fresh", tmp_path / "mid"))
    assert (mid_epoch["epoch"], mid_epoch["step"]) == (0, 2)  # inside epoch 0: step says so
    assert dt.load(tmp_path / "mid", device="cpu").step == 2
    capsys.readouterr()  # the training's progress bars
    assert cli.main(["export", str(out), "--format", "safetensors"]) == 2  # needs a run folder
    assert capsys.readouterr().err == (
        f"error: {out} is an export, which holds no checkpoints: this needs the run folder it "
        "came from (sample, evaluate, reconstruct and diffusiontools.load read exports)\n"
    )


def test_a_cold_run_is_refused_by_the_diffusers_format(tmp_path):
    # Bansal et al.'s MNIST blur (a UNet), on the one network diffusers could take
    config = dt.load_config("blur_bansal", {"model.network": "unet2d_diffusers"})
    model = TrainedModel(config, net=None, process=None, epoch=0, path=tmp_path / "x.pt")
    with pytest.raises(dt.DiffusionToolsError, match="diffusers has no scheduler for cold"):
        model.export(tmp_path / "out", format="diffusers")
    assert not (tmp_path / "out").exists()


def test_an_export_replaces_an_earlier_export_and_nothing_else(tmp_path):
    run = reference_run()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(dt.DiffusionToolsError, match="holds files that are not an export"):
        export_run(run, mine)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    again = tmp_path / "again"
    export_run(run, again, ema=False)
    export_run(run, again)  # an earlier export: replaced
    assert description(again)["weights"] == "ema"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "mine"]  # no staging left


def test_a_changed_or_newer_export_is_refused(tmp_path):
    out = export_run(reference_run(), tmp_path / "e")
    with pytest.raises(dt.DiffusionToolsError, match="epoch=1 applies to run folders"):
        dt.load(out, epoch=1)
    about = description(out)
    about["schedule"]["beta"][3] += 1e-3
    (out / "diffusiontools.json").write_text(json.dumps(about))
    with pytest.raises(dt.DiffusionToolsError, match=r"schedule \(beta\) differs"):
        dt.load(out)
    about["format_version"] = 99
    (out / "diffusiontools.json").write_text(json.dumps(about))
    with pytest.raises(dt.DiffusionToolsError, match="format version 99, newer than"):
        dt.load(out)


@pytest.mark.parametrize("format", ["safetensors", "diffusers"])
def test_an_export_whose_weights_changed_after_it_was_written_is_refused(tmp_path, format):
    """One weight's last byte flipped inside the file, its header intact: the file still reads
    as safetensors, and only the recorded weights_sha256 tells the weights apart."""
    run = reference_run() if format == "safetensors" else train_tiny(tmp_path / "r", *UNET2D)
    out = export_run(run, tmp_path / "e", format=format)
    (weights,) = [p for p in out.rglob("*.safetensors")]
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # the last tensor's last byte
    weights.write_bytes(bytes(data))
    with pytest.raises(dt.DiffusionToolsError) as refused:
        dt.load(out, device="cpu")
    assert str(refused.value) == (
        f"the weights in {weights if format == 'safetensors' else out / 'unet'} are not those "
        "its diffusiontools.json records (weights_sha256): the file was changed or damaged "
        "since it was exported; export the run again"
    )


def test_unet2d_diffusers_is_fed_t_times_T_and_none_as_the_null_label():
    config = ModelConfig(network="unet2d_diffusers", base_channels=8, channel_mults=(1, 2))
    conditional = dataclasses.replace(config, num_classes=10)
    net = make_network(conditional, seed=0, T=20, shape=(1, 28, 28)).eval()
    x, t, y = torch.randn(3, 1, 28, 28), torch.tensor([0, 7, 20]), torch.tensor([4, 10, 9])
    with torch.no_grad():
        ours = net(x, t / 20, y)
        theirs = net.unet(x, t, class_labels=y).sample  # integer timesteps, as a scheduler gives
        assert torch.allclose(ours, theirs, atol=1e-6)
        assert torch.equal(net(x, t / 20), net(x, t / 20, torch.full((3,), 10)))
    assert net.unet.config.num_class_embeds == 11 and net.unet.config.norm_num_groups == 8
    with pytest.raises(dt.DiffusionToolsError, match="needs T="):
        make_network(config, shape=(1, 28, 28))
    with pytest.raises(dt.DiffusionToolsError, match=r"asks for 4 levels, but 28x28 images"):
        make_network(
            dataclasses.replace(config, channel_mults=(1, 2, 2, 2)), T=20, shape=(1, 28, 28)
        )


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(
            ("model.num_classes=10", "sampling.guidance=2", "sampling.clip_x0=true"),
            id="linear-eps-guided-clipped",
        ),
        pytest.param(("diffusion.schedule=cosine", "diffusion.prediction=v"), id="cosine-v"),
    ],
)
def test_diffusers_loads_the_export_and_its_ddim_matches_ours_on_the_same_timesteps(
    tmp_path, overrides
):
    from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel

    run = train_tiny(tmp_path / "run", *UNET2D, *overrides)
    model = dt.load(run, device="cpu")
    folder = model.export(tmp_path / "diffusers", format="diffusers")
    about = description(folder)
    unet = UNet2DModel.from_pretrained(folder / "unet").eval()  # a local folder: offline
    # Our DDIM with K = 4 of T = 20 evaluates at round(linspace(20, 0, 5)) = 20, 15, 10, 5 and
    # steps from 5 to alpha_bar = 1. diffusers' "leading" spacing with steps_offset = 5 visits
    # the same 20, 15, 10, 5 (stride (T + 1) // K = 5) and steps from 5 to t = 0, where
    # alphas_cumprod[0] = 1 - beta_0: 1 for the cosine schedule (beta_0 = 0), 1 - 1e-3 for the
    # linear one, whose final x0_hat (pred_original_sample) is then what our last step returns.
    scheduler = DDIMScheduler.from_pretrained(
        folder, subfolder="scheduler", timestep_spacing="leading", steps_offset=5
    )
    scheduler.set_timesteps(4)
    assert scheduler.timesteps.tolist() == [20, 15, 10, 5]
    assert scheduler.config.num_train_timesteps == 21
    assert torch.allclose(scheduler.alphas_cumprod, model.process.alpha_bar, atol=1e-6)
    ddpm = DDPMScheduler.from_config(scheduler.config)  # the same betas for ancestral sampling
    assert torch.allclose(ddpm.alphas_cumprod, model.process.alpha_bar, atol=1e-6)

    x_T = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    w = model.config.sampling.guidance
    y = torch.tensor([0, 1, 2, 3]) if model.config.model.num_classes else None
    ours_at = {}
    ours = model_fn(model.net, 20, y, w)
    if model.config.sampling.clip_x0:
        ours = clip_x0(ours, model.process)
    with torch.no_grad():
        final = sample_ddim(ours, model.process, x_T, None, steps=4, on_step=ours_at.setdefault)

        x, theirs_at = x_T.clone(), {}
        for t in scheduler.timesteps:
            if y is None:
                out = unet(x, t).sample
            else:  # classifier-free guidance; the null label is the class table's last row
                null = torch.full_like(y, about["null_label"])
                cond, uncond = (
                    unet(x, t, class_labels=y).sample,
                    unet(x, t, class_labels=null).sample,
                )
                out = uncond + w * (cond - uncond)
            step = scheduler.step(out, t, x, use_clipped_model_output=True)  # eps from clipped x0
            x = theirs_at[int(t) - 5] = step.prev_sample
    for t in (15, 10, 5):
        assert torch.allclose(theirs_at[t], ours_at[t], atol=1e-5), t
    theirs_final = x if model.config.diffusion.schedule == "cosine" else step.pred_original_sample
    assert torch.allclose(theirs_final, final, atol=1e-5)
    assert final.abs().max() > 0.1  # the comparison is not between two zeros

    back = dt.load(folder, device="cpu")  # diffusiontools reads its diffusers export too
    assert torch.equal(back.sample(2, seed=1), model.sample(2, seed=1))


def test_without_diffusers_the_package_works_and_names_the_extra(tmp_path):
    run = train_tiny(tmp_path / "unet2d", *UNET2D)
    code = f"""
        import json, sys
        sys.modules["diffusers"] = None  # as if not installed: importing it raises ImportError
        import diffusiontools as dt
        said = []
        cnn = dt.load({str(reference_run())!r}, device="cpu")
        back = dt.load(cnn.export({str(tmp_path / "st")!r}), device="cpu")  # needs no diffusers
        said.append(list(back.sample(2, seed=0).shape))
        for call in (
            lambda: dt.load({str(run)!r}),
            lambda: dt.train(dt.load_config({str(run / "config.ini")!r}), "r"),
            lambda: cnn.export("d", format="diffusers"),
        ):
            try:
                call()
            except dt.DiffusionToolsError as error:
                said.append(str(error))
        print(json.dumps(said))
        """
    done = run_python(code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    shape, load, train, export = json.loads(done.stdout.splitlines()[-1])
    assert shape == [2, 1, 28, 28]
    missing = (
        "model.network = unet2d_diffusers needs the optional package 'diffusers', which is not "
        "installed; install it with: pip install 'diffusiontools[diffusers]'"
    )
    assert load == train == missing
    assert export.startswith("format='diffusers' needs a run of model.network = unet2d_diffusers")


def test_the_cli_samples_and_evaluates_an_export_as_the_run_itself(tmp_path, capsys):
    """An export folder is a model to the command line as to ``dt.load``: the same seed gives
    the same samples from the export as from the run it came from."""
    run = copy_run(reference_run(), tmp_path / "run")
    assert cli.main(["export", str(run), "--format", "safetensors"]) == 0
    export = run / "exports" / "safetensors"
    drawn = {}
    for name, folder in (("run", run), ("export", export)):
        npz = tmp_path / f"{name}.npz"
        argv = ["sample", str(folder), "-n", "6", "--seed", "4", "--sampler", "ddim", "--steps"]
        assert cli.main([*argv, "5", "--npz", str(npz), "--device", "cpu"]) == 0
        with np.load(npz) as data:
            drawn[name] = torch.from_numpy(data["images"])
    assert drawn["run"].shape == (6, 28, 28) and torch.equal(drawn["run"], drawn["export"])
    assert (export / "samples" / "sample_grid.png").is_file()  # its own folder, as a run's

    out = tmp_path / "evaluation"
    argv = ["evaluate", str(run), str(export), "--label", "run", "export", "--n-samples", "10",
            "--tsne-reference", "50", "--test-reference", "50", "--n-boot", "5",
            "--n-boot-set", "3", "--out", str(out), "--device", "cpu"]  # fmt: skip
    assert cli.main(argv) == 0
    sets = [np.load(out / f"samples_{label}.npz")["images"] for label in ("run", "export")]
    assert sets[0].shape == (10, 28, 28) and np.array_equal(*sets)
    source = json.loads((out / "metrics.json").read_text())["runs"]["export"]["source"]
    assert (source["run_dir"], source["epoch"]) == (str(export), 2)

    capsys.readouterr()
    assert cli.main(["sample", str(export), "--epoch", "1"]) == 2
    assert capsys.readouterr().err == (
        f"error: --epoch 1 applies to run folders; the export {export} holds one\n"
    )
