"""Every output path a command will write is checked before any work and before any folder is
made: an image name must end in an image format, no output may be an existing folder, its folder
must be creatable, and two evaluated sets may not share a label. A refusal is one line naming
the flag, exit code 2, and the folder is left exactly as it was."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest
import torch
from tiny_runs import reference_run, single_thread  # noqa: F401 (single_thread: autouse fixture)

import diffusiontools.data
import diffusiontools.outputs.degradation_figure
import diffusiontools.training.sample_files
from diffusiontools import cli
from diffusiontools.errors import UserError
from diffusiontools.evaluation.sample_sets import set_labels
from diffusiontools.outputs.samples_io import save_samples

IMAGES = ".jpeg, .jpg, .pdf, .png, .svg"


def no_work(*args, **kwargs):
    raise AssertionError("the work started before the output paths were checked")


@pytest.fixture
def tmp(tmp_path, monkeypatch):
    """tmp_path holding a user's foo.png, an empty folder adir, a file file.txt, folders d.npz,
    dd.png and beside/samples.npz; sampling or reading MNIST (degrade, classifier) fails the
    test."""
    reference_run()  # trained (once per session) before MNIST reading is barred
    # Every module imported before the patch: one imported first under it would bind no_work
    # by `from ..data import load_data` for the rest of the session.
    for module in pkgutil.walk_packages(diffusiontools.__path__, "diffusiontools."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    (tmp_path / "foo.png").write_bytes(b"the user's figure")
    (tmp_path / "dangling").symlink_to("nowhere")
    (tmp_path / "file.txt").write_text("a file")
    for folder in ("adir", "d.npz", "dd.png", "beside/samples.npz"):
        (tmp_path / folder).mkdir(parents=True)
    monkeypatch.setattr(diffusiontools.training.sample_files, "generate_batches", no_work)
    monkeypatch.setattr(diffusiontools.outputs.degradation_figure, "load_data", no_work)
    monkeypatch.setattr(diffusiontools.data, "load_data", no_work)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def snapshot(folder: Path) -> dict[str, bytes | None]:
    def content(p: Path) -> bytes | None:
        if p.is_symlink():
            return str(p.readlink()).encode()
        return None if p.is_dir() else p.read_bytes()

    return {str(p.relative_to(folder)): content(p) for p in sorted(folder.rglob("*"))}


CASES = [
    # (name, argv after the command name, the error line; {run} is the reference run)
    (
        "degrade, a name without extension",
        ["degrade", "--degradation", "blur", "--out", "foo"],
        f"error: --out foo: the figure is an image; end the name in one of {IMAGES}",
    ),
    (
        "degrade, an existing folder",
        ["degrade", "--degradation", "blur", "--out", "adir"],
        f"error: --out adir: the figure is an image; end the name in one of {IMAGES}",
    ),
    (
        "degrade, not an image",
        ["degrade", "--degradation", "blur", "--out", "x.txt"],
        f"error: --out x.txt: the figure is an image; end the name in one of {IMAGES}",
    ),
    (
        "degrade, not an image in a new folder",
        ["degrade", "--degradation", "blur", "--out", "newdir2/x.txt"],
        f"error: --out newdir2/x.txt: the figure is an image; end the name in one of {IMAGES}",
    ),
    (
        "degrade, an image named as a folder",
        ["degrade", "--degradation", "blur", "--out", "dd.png"],
        "error: --out dd.png is a folder; name a file for the figure",
    ),
    (
        "degrade, below a file",
        ["degrade", "--degradation", "blur", "--out", "file.txt/sub/d.png"],
        "error: --out file.txt/sub/d.png: its folder file.txt/sub is not writable ({tmp}/file.txt "
        "is a file)",
    ),
    (
        "sample, the NPZ is a folder",
        ["sample", "{run}", "-n", "2", "--out", "g.png", "--npz", "d.npz"],
        "error: --npz d.npz is a folder; name a file for the NPZ",
    ),
    (
        "sample, the grid is a folder",
        ["sample", "{run}", "-n", "2", "--out", "dd.png", "--npz", "s.npz"],
        "error: --out dd.png is a folder; name a file for the grid",
    ),
    (
        "sample, the NPZ beside the grid is a folder",
        ["sample", "{run}", "-n", "2", "--out", "beside/g.png", "--overwrite"],
        "error: beside/samples.npz is a folder, where the NPZ would go beside the grid; put the "
        "grid in another folder with --out PATH",
    ),
    (
        "sample, the NPZ below a file",
        ["sample", "{run}", "-n", "2", "--out", "g.png", "--npz", "file.txt/s.npz"],
        "error: --npz file.txt/s.npz: its folder file.txt is not writable ({tmp}/file.txt is a "
        "file)",
    ),
    (
        "classifier, an existing folder",
        ["classifier", "train", "--out", "adir"],
        "error: --out adir is a folder; name a file for the weights",
    ),
    (
        "classifier, below a file",
        ["classifier", "train", "--out", "file.txt/w.pt"],
        "error: --out file.txt/w.pt: its folder file.txt is not writable ({tmp}/file.txt is a "
        "file)",
    ),
    # Every command's output folder, in the same words (evaluate said "output folder X is not
    # writable: Not a directory" once it had read the data)
    (
        "train, a file",
        ["train", "quickstart", "--out", "file.txt"],
        "error: --out file.txt is a file; name a folder for the run",
    ),
    (
        "evaluate, a file",
        ["evaluate", "{run}", "--out", "file.txt"],
        "error: --out file.txt is a file; name a folder for the evaluation",
    ),
    (
        "evaluate, below a file",
        ["evaluate", "{run}", "--out", "file.txt/ev"],
        "error: --out file.txt/ev is not writable ({tmp}/file.txt is a file); name a folder for "
        "the evaluation",
    ),
    (
        "pages, a file",
        ["pages", "{run}", "--out", "file.txt"],
        "error: --out file.txt is a file; name a folder for the pages",
    ),
    (
        "export, a file",
        ["export", "{run}", "--format", "safetensors", "--out", "file.txt"],
        "error: --out file.txt is a file; name a folder for the export",
    ),
    (
        "reproduce, a file",
        ["reproduce", "--out", "file.txt"],
        "error: --out file.txt is a file; name a folder for the reproduction",
    ),
    (
        "classifier, another ending",
        ["classifier", "train", "--out", "w.txt"],
        "error: --out w.txt does not end in .pt; name a .pt file for the weights",
    ),
    (
        "evaluate, a broken link",
        ["evaluate", "{run}", "--out", "dangling"],
        "error: --out dangling is not writable ({tmp}/dangling is a broken symbolic link to "
        "nowhere); name a folder for the evaluation",
    ),
    (
        "sample, below a broken link",
        ["sample", "{run}", "-n", "2", "--out", "dangling/g.png"],
        "error: --out dangling/g.png: its folder dangling is not writable ({tmp}/dangling is a "
        "broken symbolic link to nowhere)",
    ),
    (
        "export, a name too long",
        ["export", "{run}", "--format", "safetensors", "--out", "x" * 300],
        f"error: --out {'x' * 300} cannot be used: File name too long",
    ),
    (
        "evaluate, a name with a newline",
        ["evaluate", "{run}", "--out", "a\nb"],
        "error: --out 'a\\nb' holds the non-printing character '\\n'; name a folder for the "
        "evaluation without one",
    ),
]


@pytest.mark.parametrize("argv, line", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_output_path_is_refused_before_any_work_leaving_nothing(argv, line, tmp, capsys):
    before = snapshot(tmp)
    argv = [a.format(run=reference_run()) for a in argv]
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err == line.format(tmp=tmp) + "\n"
    assert snapshot(tmp) == before  # foo.png kept, no newdir2, no NPZ


def npz(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_samples(path, torch.zeros(10, 28, 28, dtype=torch.uint8))
    return path


def test_two_npz_files_of_one_name_are_refused_not_merged(tmp, capsys):
    a, b = npz(tmp / "a" / "samples.npz"), npz(tmp / "b" / "samples.npz")
    argv = ["evaluate", "--npz", str(a), "--npz", str(b), "--out", str(tmp / "ev")]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == (
        "error: the labels ['samples', 'samples'] are not distinct as file names; set them apart "
        "with --label NAME ...\n"
    )
    assert not (tmp / "ev").exists()


def test_a_run_and_an_npz_of_one_name_are_refused(tmp, capsys):
    run = reference_run()
    same = npz(tmp / f"{run.name}.npz")
    assert cli.main(["evaluate", str(run), "--npz", str(same), "--out", str(tmp / "ev")]) == 2
    assert capsys.readouterr().err == (
        f"error: the labels ['{run.name}', '{run.name}'] are not distinct as file names; set "
        "them apart with --label NAME ...\n"
    )
    assert not (tmp / "ev").exists()


@pytest.mark.parametrize("label", ["", " ", "\t"])
def test_a_blank_label_is_refused_before_anything_is_written(tmp, capsys, label):
    a = npz(tmp / "a.npz")
    argv = ["evaluate", "--npz", str(a), "--label", label, "--out", str(tmp / "ev")]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == (
        f"error: the label {label!r} is blank: give each set a name that shows in the table and "
        "in its files' names with --label NAME ...\n"
    )
    assert not (tmp / "ev").exists()


@pytest.mark.parametrize("label", ["a\nb", "a\u202eb"])
def test_a_label_with_a_non_printing_character_is_refused(tmp, capsys, label):
    """--label $'a\\nb' split the header row of metrics.md over two lines."""
    a = npz(tmp / "a.npz")
    argv = ["evaluate", "--npz", str(a), "--label", label, "--out", str(tmp / "ev")]
    assert cli.main(argv) == 2
    hidden = label[1]
    assert capsys.readouterr().err == (
        f"error: the label {label!r} holds the non-printing character {hidden!r}: give each set "
        "a name that shows in the table and in its files' names with --label NAME ...\n"
    )
    assert not (tmp / "ev").exists()


def test_an_error_quoting_a_name_with_a_newline_stays_one_line(tmp, capsys):
    """evaluate --npz $'a\\nb.npz' printed its error over two lines."""
    argv = ["evaluate", "--npz", "x\ny/a.npz", "--out", str(tmp / "ev")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --npz x\\ny/a.npz does not exist")


def test_set_labels_refuses_every_kind_of_clash():
    with pytest.raises(UserError, match=r"labels \['x', 'x'\] are not distinct"):
        set_labels([], [Path("a/x.npz"), Path("b/x.npz")], [])
    with pytest.raises(UserError, match=r"labels \['x', 'x'\] are not distinct"):
        set_labels([Path("runs/x")], [Path("b/x.npz")], [])
    with pytest.raises(UserError, match=r"labels \['a b', 'a_b'\] are not distinct"):
        set_labels([], [Path("1.npz"), Path("2.npz")], ["a b", "a_b"])
    assert set_labels([Path("runs/x")], [Path("b/x.npz")], ["run", "npz"]) == ["run", "npz"]


def test_repeated_npz_and_label_flags_add_up():
    args = cli.build_parser().parse_args(
        ["evaluate", "--npz", "a.npz", "b.npz", "--npz", "c.npz", "--label", "A", "--label", "B"]
    )
    assert args.npz == [Path("a.npz"), Path("b.npz"), Path("c.npz")]
    assert args.label == ["A", "B"]
