"""The command line end to end: train a tiny run, then sample grids, trajectories and epochs;
where sample writes and how many it may draw."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_runs import (  # noqa: F401 (single_thread: autouse fixture)
    copy_run,
    reference_run,
    single_thread,
    write_ini,
)

from diffusiontools import cli
from diffusiontools.cli.flags import path_arg, path_text
from diffusiontools.data import to_uint8
from diffusiontools.sampling.generation import generate
from diffusiontools.training import sample_files
from diffusiontools.training.run_folder import read_metrics
from diffusiontools.training.trained_model import load_trained


def assert_png(path) -> None:
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG" and image.width > 50 and image.height > 50


def test_train_then_sample_end_to_end(tmp_path, capsys):
    ini = write_ini(tmp_path)
    run = tmp_path / "run"
    smaller = [
        "data.subset=96",
        "training.epochs=2",
        "sampling.sample_every=1",
        "sampling.n_samples=4",
    ]
    argv = ["train", str(ini), "--out", str(run)]
    assert cli.main([*argv, *(x for o in smaller for x in ("--set", o))]) == 0
    assert f"run folder: {run}" in capsys.readouterr().out
    assert [r["epoch"] for r in read_metrics(run)] == [0, 1]
    for name in (
        "config.ini",
        "data.json",
        "learning_curve.png",
        "samples/epoch_0001.png",
        "checkpoints/epoch_0000.pt",
        "checkpoints/epoch_0001.pt",
        "checkpoints/latest.pt",
    ):
        assert (run / name).is_file(), name

    argv = ["sample", str(run), "-n", "4", "--trajectory", "--epochs", "0,1", "--device", "cpu"]
    assert cli.main(argv) == 0
    for name in ("sample_grid.png", "trajectory.png", "epochs.png"):
        assert_png(run / "samples" / name)
    with np.load(run / "samples" / "samples.npz") as npz:
        assert npz["images"].dtype == np.uint8 and npz["images"].shape == (4, 28, 28)


def test_python_dash_m_runs_the_cli():
    result = subprocess.run(
        [sys.executable, "-m", "diffusiontools", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0
    assert "train" in result.stdout and "sample" in result.stdout


def test_building_the_parser_imports_no_torch():
    """Every command's help (the samplers' steps included) without torch: --help is instant."""
    code = (
        "import sys\n"
        "from diffusiontools.cli import build_parser\n"
        "help = build_parser()._subparsers._group_actions[0].choices['sample'].format_help()\n"
        "print('torch' in sys.modules, 'heun 18' in help)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "True"]


def test_sample_help_says_what_default_and_no_sampler_mean(capsys):
    """--sampler default is the report's sampler; the run's own is used when none is given."""
    with pytest.raises(SystemExit):
        cli.main(["sample", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert (
        "left out: the run's sampling.sampler; default: the report's for the model's kind"
        in help_text
    )


def test_version_is_the_package_s(capsys):
    from diffusiontools import __version__

    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out == f"diffusiontools {__version__}\n"


@pytest.mark.parametrize(
    "argv, line",
    [
        (["sample", "run", "-n", "abc"],
         "diffusiontools sample: error: argument -n: invalid int value: 'abc' "
         "(diffusiontools sample --help lists the options)"),
        ([], "diffusiontools: error: the following arguments are required: COMMAND "
         "(diffusiontools --help lists the options)"),
        # an argument no parser takes: refused by the command's, whose --help lists its own
        (["reconstruct", "run", "--samplers", "naive", "improved"],
         "diffusiontools reconstruct: error: unrecognized arguments: improved "
         "(diffusiontools reconstruct --help lists the options)"),
        (["classifier", "train", "--bogus"],
         "diffusiontools classifier train: error: unrecognized arguments: --bogus "
         "(diffusiontools classifier train --help lists the options)"),
        # a control character is shown escaped, so that the error stays one line
        (["sample", "run", "--bo\ngus"],
         "diffusiontools sample: error: unrecognized arguments: '--bo\\ngus' "
         "(diffusiontools sample --help lists the options)"),
    ],
)  # fmt: skip
def test_a_bad_argument_is_refused_in_one_line_with_status_2(argv, line, capsys):
    """argparse printed its usage block, ten lines for sample, above the error."""
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines() == [line]


# --- where sample writes: what it is told, and never over what it was not told -----------------


def test_sample_writes_the_files_named_and_keeps_those_it_was_not_told_to_write(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "samples.npz").write_bytes(b"the user's own")
    base = ["sample", str(reference_run()), "-n", "3", "--device", "cpu"]
    capsys.readouterr()
    # an --out grid beside an NPZ sample would name itself: refused before anything is drawn
    assert cli.main([*base, "--out", str(mine / "x.png")]) == 2
    assert capsys.readouterr().err == (
        f"error: {mine / 'samples.npz'} already exists; it is no file you named, so sample keeps "
        "it: name the NPZ with --npz PATH, put the grid in another folder with --out PATH, or "
        "replace it with --overwrite\n"
    )
    assert sorted(p.name for p in mine.iterdir()) == ["samples.npz"]
    # a request that cannot take effect is named before the files are looked at
    for bad, said in [
        (["--sampler", "foo"], "error: unknown sampler 'foo'"),
        (["--steps", "0"], "error: --steps 0"),
        (["-n", "-3"], "error: -n -3 is not a number of samples"),
    ]:
        assert cli.main([*base[:2], *base[4:], *bad, "--out", str(mine / "x.png")]) == 2
        assert capsys.readouterr().err.startswith(said)
    # the files named are written, replacing what was there; the NPZ not named stays
    (mine / "x.png").write_bytes(b"an older grid")
    (mine / "y.npz").write_bytes(b"an older NPZ")
    assert cli.main([*base, "--out", str(mine / "x.png"), "--npz", str(mine / "y.npz")]) == 0
    assert (mine / "samples.npz").read_bytes() == b"the user's own"
    assert_png(mine / "x.png")
    with np.load(mine / "y.npz") as npz:
        assert npz["images"].shape == (3, 28, 28)
    # a trajectory.png beside the grid is not named either: kept, unless --overwrite
    (mine / "trajectory.png").write_bytes(b"the user's figure")
    argv = [*base, "--out", str(mine / "x.png"), "--npz", str(mine / "y.npz"), "--trajectory"]
    capsys.readouterr()
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == (
        f"error: {mine / 'trajectory.png'} already exists; it is no file you named, so sample "
        "keeps it: put the grid in another folder with --out PATH, or replace it with "
        "--overwrite\n"
    )
    assert (mine / "trajectory.png").read_bytes() == b"the user's figure"
    assert cli.main([*argv, "--overwrite"]) == 0
    assert_png(mine / "trajectory.png")
    assert (mine / "samples.npz").read_bytes() == b"the user's own"  # --npz named another


def test_sample_replaces_its_own_files_in_the_run_folder(tmp_path):
    run = copy_run(reference_run(), tmp_path / "run")
    argv = ["sample", str(run), "-n", "2", "--trajectory", "--device", "cpu"]
    assert cli.main(argv) == 0
    assert cli.main([*argv[:3], "3", *argv[4:]]) == 0  # RUN_DIR/samples: sample's own folder
    with np.load(run / "samples" / "samples.npz") as npz:
        assert npz["images"].shape == (3, 28, 28)


def test_an_npz_path_must_end_in_npz_so_a_typo_cannot_replace_a_run_file(tmp_path, capsys):
    """--npz naming the run's own checkpoint (or the grid, or any other kind of file) is refused
    before any work; before, the NPZ was written over latest.pt and the run could not load."""
    run = copy_run(reference_run(), tmp_path / "run")
    latest = run / "checkpoints" / "latest.pt"
    before = latest.read_bytes()
    for target in (latest, run / "data.json", tmp_path / "x.png", tmp_path / "noext"):
        argv = [
            "sample",
            str(run),
            "-n",
            "2",
            "--out",
            str(tmp_path / "x.png"),
            "--npz",
            str(target),
        ]
        capsys.readouterr()
        assert cli.main(argv) == 2
        assert capsys.readouterr().err == (
            f"error: --npz {target} does not end in .npz; name a .npz file for the NPZ\n"
        )
    assert latest.read_bytes() == before
    assert not (tmp_path / "x.png").exists()


# --- how many: -n is drawn and written a batch at a time, and bounded by the disk ----------------


def test_sample_writes_more_than_a_batch_as_generate_draws_them(tmp_path):
    """600 samples cross the 500-image batch: the NPZ written batch by batch holds exactly what
    drawing all 600 at once gives."""
    npz = tmp_path / "s.npz"
    argv = ["sample", str(reference_run()), "-n", "600", "--seed", "2", "--npz", str(npz)]
    assert cli.main([*argv, "--out", str(tmp_path / "g.png"), "--device", "cpu"]) == 0
    model = load_trained(reference_run(), None, torch.device("cpu"))
    whole = generate(
        model.net, model.process, model.config, 600, 2, torch.device("cpu"), shape=model.shape
    )
    with np.load(npz) as data:
        assert np.array_equal(data["images"], to_uint8(whole).numpy())


def test_sigterm_while_sample_writes_leaves_no_partial_file_and_the_old_npz(tmp_path, monkeypatch):
    """SIGTERM after the first of two batches is in the temporary NPZ: exit 143, the temporary
    file is removed and the NPZ of an earlier call is untouched."""
    npz = tmp_path / "s.npz"
    npz.write_bytes(b"an earlier NPZ")
    draw = sample_files.generate_batches

    def terminated_after_one_batch(*args, **kwargs):
        batches = draw(*args, **kwargs)
        yield next(batches)
        os.kill(os.getpid(), signal.SIGTERM)  # the event: one batch written, one to come
        yield from batches

    monkeypatch.setattr(sample_files, "generate_batches", terminated_after_one_batch)
    argv = ["sample", str(reference_run()), "-n", "600", "--npz", str(npz), "--overwrite"]
    assert cli.main([*argv, "--out", str(tmp_path / "g.png"), "--device", "cpu"]) == 143
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz"]
    assert npz.read_bytes() == b"an earlier NPZ"


@pytest.mark.parametrize(
    "free, n, flags, advice",
    [
        # n whose images fit: the advice is the n that fits
        (784_000_000, 1000001, [], "take up to 784 MB in {npz}, but {tmp} has 784 MB free: "
         "give -n 1..1000000"),
        # below one image's 784 bytes no -n fits: the advice is room, not "-n 0 or fewer"
        (500, 2, [], "take up to 1,568 bytes in {npz}, but {tmp} has 500 bytes free: free space "
         "there or write the NPZ elsewhere"),
        # with the floats: 784 bytes of image, 784 x 4 of floats in the NPZ and as much beside
        # it while it is written, 7,056 bytes a sample
        (7_056_000, 1001, ["--unclamped"], "take up to 7 MB in {npz}, but {tmp} has 7 MB free: "
         "give -n 1..1000"),
    ],
)  # fmt: skip
def test_sample_n_beyond_the_disk_is_refused_before_anything_is_drawn(
    tmp_path, capsys, monkeypatch, free, n, flags, advice
):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(free=free))
    argv = ["sample", str(reference_run()), "-n", str(n), "--out", str(tmp_path / "g.png")]
    argv += flags
    capsys.readouterr()
    assert cli.main(argv) == 2
    expected = advice.format(npz=tmp_path / "samples.npz", tmp=tmp_path)
    assert capsys.readouterr().err == f"error: -n {n} samples {expected}\n"
    assert sorted(tmp_path.iterdir()) == []


# --- file and folder arguments ---------------------------------------------------------------

PATH_DESTS = {"run_dir", "run_dirs", "out", "npz", "data_dir", "config", "data", "eval"}


def _commands(parser, words=()):
    """(the words that reach a (sub)command, its parser) for every command, nested ones too."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*words, name))
            return
    yield words, parser


def test_every_file_or_folder_argument_refuses_the_empty_text(capsys):
    """pathlib reads '' as the working folder: 'sample ""' sampled ./ and 'evaluate --out ""'
    wrote there. Each command's file and folder arguments refuse it before anything runs."""
    checked = []
    for words, parser in _commands(cli.build_parser()):
        for action in parser._actions:
            if action.dest not in PATH_DESTS:
                continue
            assert action.type in (path_text, path_arg), (words, action.dest)
            given = [action.option_strings[0], ""] if action.option_strings else [""]
            with pytest.raises(SystemExit) as stop:
                cli.main([*words, *given])
            assert stop.value.code == 2
            name = "/".join(action.option_strings) or action.metavar or action.dest
            prog = parser.prog  # an alias (report) is refused under its command (pages)
            assert capsys.readouterr().err == (
                f"{prog}: error: argument {name}: '' names no file or folder (write . for the "
                f"current folder) ({prog} --help lists the options)\n"
            )
            checked.append((words[0], action.dest))
    assert {"sample", "evaluate", "train", "export", "reproduce"} <= {c for c, _ in checked}
    assert len(checked) >= 20
