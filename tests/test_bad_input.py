"""Every bad input through the real CLI: exit code 2, one line "error: ..." naming the bad value,
no traceback; ``--debug`` shows the traceback instead.

One table, one row per kind of mistake. A row's ``setup`` builds whatever the mistake needs (a
broken file, a damaged copy of the tiny reference run) under ``tmp`` and returns the argv.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_runs import (  # noqa: F401 (single_thread: autouse fixture)
    child_env,
    copy_run,
    reference_run,
    single_thread,
    tiny_ini_for,
    write_ini,
)

import diffusiontools as dt
from diffusiontools import cli
from diffusiontools.data import idx_family, mnist
from diffusiontools.errors import UserError
from diffusiontools.training import checkpoint as ckpt_io


@dataclass
class Row:
    name: str
    setup: Callable[[Path], list[str]]
    fragments: tuple[str, ...]  # each must appear in the error line


def train(*overrides: str, out: str = "run", extra: tuple[str, ...] = ()) -> Callable:
    def setup(tmp: Path) -> list[str]:
        sets = [x for o in overrides for x in ("--set", o)]
        ini = write_ini(tmp, tiny_ini_for(overrides))
        return ["train", str(ini), "--out", str(tmp / out), *sets, *extra]

    return setup


def sample(*flags: str) -> Callable:
    def setup(tmp: Path) -> list[str]:
        return ["sample", str(reference_run()), "--out", str(tmp / "grid.png"), *flags]

    return setup


def config_file(text: str) -> Callable:
    def setup(tmp: Path) -> list[str]:
        (tmp / "bad.ini").write_text(text)
        return ["train", str(tmp / "bad.ini"), "--out", str(tmp / "run")]

    return setup


# --- MNIST folders with one broken file ---------------------------------------------------------

STEMS = list(idx_family.STEMS.values())  # train images, train labels, test images, test labels


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    magic = 0x800 + array.ndim if magic is None else magic
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def raw_folder(
    tmp: Path, n_train: int = 300, n_labels: int = 300, magic: int | None = None
) -> Path:
    """Four small uncompressed IDX files (raw names carry no published md5 to check against)."""
    folder = tmp / "mnist"
    folder.mkdir()
    arrays = [
        np.zeros((n_train, 28, 28), np.uint8),
        np.zeros(n_labels, np.uint8),
        np.zeros((10, 28, 28), np.uint8),
        np.zeros(10, np.uint8),
    ]
    for k, (stem, array) in enumerate(zip(STEMS, arrays, strict=True)):
        (folder / stem).write_bytes(idx_bytes(array, magic if k == 0 else None))
    return folder


def gz_folder_with(tmp: Path, train_images_gz: bytes) -> Path:
    """A raw folder whose training images are the canonical ``.gz`` name holding ``content``:
    its md5 is checked first, against the published one."""
    folder = raw_folder(tmp)
    (folder / STEMS[0]).unlink()
    (folder / f"{STEMS[0]}.gz").write_bytes(train_images_gz)
    return folder


def data(make_folder: Callable[[Path], Path]) -> Callable:
    def setup(tmp: Path) -> list[str]:
        return train(f"data.dir={make_folder(tmp)}", "data.source=mnist")(tmp)

    return setup


def truncated_gz(tmp: Path) -> Path:
    whole = gzip.compress(idx_bytes(np.arange(300 * 28 * 28, dtype=np.uint8).reshape(300, 28, 28)))
    return gz_folder_with(tmp, whole[: len(whole) // 2])


def wrong_content_gz(tmp: Path) -> Path:
    return gz_folder_with(tmp, gzip.compress(idx_bytes(np.zeros((300, 28, 28), np.uint8))))


# --- damaged copies of the reference run --------------------------------------------------------


def damaged_run(damage: Callable[[Path], None], command: str = "sample") -> Callable:
    def setup(tmp: Path) -> list[str]:
        run = copy_run(reference_run(), tmp / "run")
        damage(ckpt_io.latest_path(run))
        if command == "sample":
            return ["sample", str(run), "-n", "2"]
        return ["train", str(write_ini(tmp)), "--out", str(run), "--resume"]

    return setup


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def newer_format(path: Path) -> None:
    ckpt = torch.load(path, weights_only=True)
    torch.save({**ckpt, "format_version": ckpt_io.FORMAT_VERSION + 98}, path)


def other_architecture(tmp: Path) -> list[str]:
    run = copy_run(reference_run(), tmp / "run")
    sets = ["--set", "model.n_hidden=4,4", "--set", "training.epochs=4"]
    return ["train", str(write_ini(tmp)), "--out", str(run), "--resume", *sets]


def under_a_file(command: str) -> Callable:
    """An output folder below a regular file: not creatable, even for root (chmod is not enough)."""

    def setup(tmp: Path) -> list[str]:
        (tmp / "file.txt").write_text("a file, not a folder")
        if command == "sample":
            return ["sample", str(reference_run()), "--out", str(tmp / "file.txt/sub/grid.png")]
        return ["train", str(write_ini(tmp)), "--out", str(tmp / "file.txt/sub")]

    return setup


ROWS = [
    # The config file and --set.
    Row("missing config", lambda tmp: ["train", str(tmp / "missing.ini")], ("missing.ini",)),
    Row("unparsable config", config_file("no section header\n"), ("bad.ini", "cannot be parsed")),
    Row("unknown section", config_file("[trainin]\nlr = 1\n"), ("[trainin]", "'training'")),
    Row("unknown key", train("training.lrr=1"), ("training.lrr", "did you mean 'lr'")),
    Row("wrong type", train("training.epochs=two"), ("training.epochs='two'", "int")),
    Row("not key=value", train("training"), ("'training'", "section.key=value")),
    Row("T < 2", train("diffusion.T=1"), ("diffusion.T=1", ">= 2")),
    Row("beta1 >= beta2", train("diffusion.beta1=0.3"), ("diffusion.beta1=0.3", "beta1 < beta2")),
    Row("beta2 = 1", train("diffusion.beta2=1"), ("diffusion.beta2=1.0", "beta2 < 1")),
    Row("cold level out of range", train("diffusion.kind=cold", "diffusion.level_max=5"), ("5.0",)),
    Row("lr = 0", train("training.lr=0"), ("training.lr=0.0", "> 0")),
    Row("lr < 0", train("training.lr=-1"), ("training.lr=-1.0",)),
    Row("batch > data", train("training.batch_size=300"), ("training.batch_size=300",)),
    Row("empty n_hidden", train("model.n_hidden=,"), ("model.n_hidden",)),
    Row(
        "n_hidden on a UNet",  # the UNet's tiny INI: --set is the one place n_hidden is written
        train("model.network=unet", "model.n_hidden=8,8"),
        (
            "model.n_hidden=8, 8 applies to the cnn (model.network = cnn) only; a UNet would "
            "ignore it: remove it, or unset it with an empty override: --set model.n_hidden=",
        ),
    ),
    Row(
        "beta2 in a cold INI",
        config_file("[diffusion]\nkind = cold\nT = 20\nbeta2 = 0.02\n"),
        ("diffusion.beta2=0.02 applies to the linear schedule", "a cold process"),
    ),
    Row("unknown device", train("training.device=banana"), ("training.device='banana'",)),
    # Run folders and flags.
    Row("--resume without a run", train(extra=("--resume",)), ("--resume", "no checkpoint")),
    Row("--resume and --overwrite", train(extra=("--resume", "--overwrite")), ("--overwrite",)),
    Row("unwritable train folder", under_a_file("train"), ("file.txt/sub", "not writable")),
    Row("unwritable sample folder", under_a_file("sample"), ("file.txt/sub", "not writable")),
    Row(
        "train --out a file",  # said "not writable: File exists" where sample says "is a file"
        lambda tmp: (tmp / "file.txt").write_text("x") and train(out="file.txt")(tmp),
        ("file.txt is a file; name a folder for the run",),
    ),
    Row("no such run", lambda tmp: ["sample", str(tmp / "nope")], ("nope", "does not exist")),
    Row("epoch without checkpoint", sample("--epoch", "9"), ("--epoch 9", "0, 1, 2")),
    Row("-n 0", sample("-n", "0"), ("-n 0",)),
    Row("sampler for cold on gaussian", sample("--sampler", "naive"), ("'naive'", "gaussian")),
    Row("unknown sampler", sample("--sampler", "magic"), ("'magic'", "ancestral")),
    Row("steps above T", sample("--steps", "500"), ("--steps 500", "give 1..")),
    Row("digit on unconditional", sample("--digit", "3"), ("--digit",)),
    # Data.
    Row("missing data folder", train("data.dir=/no/such/mnist"), ("data.dir=/no/such/mnist",)),
    Row("truncated gz", data(truncated_gz), ("train-images-idx3-ubyte.gz", "md5")),
    Row("checksum mismatch", data(wrong_content_gz), ("train-images-idx3-ubyte.gz", "md5")),
    Row("wrong IDX magic", data(lambda t: raw_folder(t, magic=0x1234)), ("0x00001234",)),
    Row(
        "count mismatch", data(lambda t: raw_folder(t, n_labels=299)), ("300 images", "299 labels")
    ),
    # Checkpoints.
    Row("truncated checkpoint", damaged_run(truncate), ("latest.pt", "truncated")),
    Row("random bytes", damaged_run(lambda p: p.write_bytes(os.urandom(999))), ("latest.pt",)),
    Row("text file", damaged_run(lambda p: p.write_text("hello\n")), ("latest.pt", "not a check")),
    Row("truncated on resume", damaged_run(truncate, "train"), ("latest.pt", "truncated")),
    Row("newer format", damaged_run(newer_format), ("format version 99", "upgrade")),
    Row(
        "other architecture on resume",
        other_architecture,
        ("model.n_hidden (8, 8) -> (4, 4)", "may change on resume"),
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_bad_input_is_one_line_exit_2(row: Row, tmp_path, capsys):
    argv = row.setup(tmp_path)
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.rstrip("\n").endswith(errors[0]), err
    for fragment in row.fragments:
        assert fragment in errors[0]


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(UserError, match="missing.ini"):
        cli.main(["--debug", "train", str(tmp_path / "missing.ini")])


def test_exit_codes_of_the_real_process(tmp_path):
    """Through ``python -m diffusiontools``: 2 and one line; with --debug, a traceback."""
    command = [sys.executable, "-m", "diffusiontools"]
    args = ["train", str(tmp_path / "missing.ini")]
    plain = subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=120, env=child_env()
    )
    assert plain.returncode == 2
    assert plain.stderr.splitlines() == [
        f"error: config file {tmp_path / 'missing.ini'} does not exist"
    ]
    debug = subprocess.run(
        [*command, "--debug", *args], capture_output=True, text=True, timeout=120, env=child_env()
    )
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "UserError" in debug.stderr


def test_missing_data_folder_is_refused_before_anything_else(tmp_path):
    """An explicit data.dir that does not exist never falls through to $DIFFUSIONTOOLS_DATA."""
    with pytest.raises(UserError, match="does not exist"):
        mnist.load_mnist(str(tmp_path / "nowhere"), source="auto")


# --- errors name the flag typed, never the config key or argument it sets ------------------------


FLAG_ROWS = [
    # (name, argv under tmp, the whole error line)
    (
        "degrade --T 0",
        lambda tmp: ["degrade", "--degradation", "blur", "--T", "0", "--out", str(tmp / "d.png")],
        "error: --T 0 is out of range: must be >= 2",
    ),
    (
        "degrade --levels above the degradation's range",
        lambda tmp: [
            "degrade",
            "--degradation",
            "blur",
            "--levels",
            "0.1,50",
            "--out",
            str(tmp / "d.png"),
        ],  # fmt: skip
        "error: --levels 0.1,50.0 are not levels of blur: give 0.0 <= MIN < MAX <= 10.0",
    ),
    (
        "sample --device banana",
        lambda tmp: ["sample", str(reference_run()), "--device", "banana"],
        "error: --device 'banana' is not a device: use auto, cpu, cuda or cuda:N",
    ),
    (
        "evaluate --data-dir that does not exist",
        lambda tmp: [
            "evaluate",
            "--npz",
            str(tmp / "s.npz"),
            "--data-dir",
            "/no/such/mnist",
            "--out",
            str(tmp / "ev"),
        ],  # fmt: skip
        "error: --data-dir /no/such/mnist does not exist; fix the path or leave --data-dir unset",
    ),
    (
        "classifier train --data-dir that does not exist",
        lambda tmp: [
            "classifier",
            "train",
            "--data-dir",
            "/no/such/mnist",
            "--out",
            str(tmp / "c.pt"),
        ],  # fmt: skip
        "error: --data-dir /no/such/mnist does not exist; fix the path or leave --data-dir unset",
    ),
]


@pytest.mark.parametrize("argv, line", [r[1:] for r in FLAG_ROWS], ids=[r[0] for r in FLAG_ROWS])
def test_errors_name_the_flags_typed(argv, line, tmp_path, capsys):
    capsys.readouterr()
    assert cli.main(argv(tmp_path)) == 2
    assert capsys.readouterr().err == line + "\n"


# --- a file given that is not what diffusiontools wrote: one sentence in our words ---------------
# (name, setup(tmp) -> (argv, the whole error line)). Never the library's own text: numpy's
# "Cannot load file containing pickled data", torch's zip and unpickler messages, json's
# "Expecting value: line 1 column 1 (char 0)", configparser's multi-line spans.

CHECKPOINT_EXPECTED = (
    "expected a .pt file that diffusiontools train wrote (a dict of tensors and plain data)"
)
NPZ_EXPECTED = (
    "expected an NPZ archive holding 'images', uint8 (N, H, W) or (N, 3, H, W), as "
    "diffusiontools sample writes"
)


def npz_given(content: bytes, name: str) -> Callable:
    def setup(tmp: Path) -> tuple[list[str], str]:
        (tmp / name).write_bytes(content)
        argv = ["evaluate", "--npz", str(tmp / name), "--out", str(tmp / "ev")]
        return argv, f"error: --npz {tmp / name} is not a samples NPZ: {NPZ_EXPECTED}"

    return setup


def checkpoint_text(tmp: Path) -> tuple[list[str], str]:
    argv = damaged_run(lambda p: p.write_text("hello\n"))(tmp)
    latest = ckpt_io.latest_path(tmp / "run")
    return (
        argv,
        f"error: checkpoint {latest} is truncated or not a checkpoint: {CHECKPOINT_EXPECTED}",
    )


def checkpoint_newer_key(tmp: Path) -> tuple[list[str], str]:
    def add_key(path: Path) -> None:
        ckpt = torch.load(path, weights_only=True)
        ckpt["config"]["training"]["warp_drive"] = True
        torch.save(ckpt, path)

    argv = damaged_run(add_key)(tmp)
    latest = ckpt_io.latest_path(tmp / "run")
    return argv, (
        f"error: checkpoint {latest} holds config key training.warp_drive, unknown to this "
        "diffusiontools (a newer version wrote it?); upgrade diffusiontools"
    )


def export_garbled(tmp: Path) -> tuple[list[str], str]:
    (tmp / "export").mkdir()
    (tmp / "export" / "diffusiontools.json").write_text("{not json")
    return ["sample", str(tmp / "export"), "-n", "2"], (
        f"error: {tmp / 'export' / 'diffusiontools.json'} is not an export description: "
        "expected the JSON file that diffusiontools export writes (format, format_version, "
        "epoch, weights, config)"
    )


def config_unparsable(tmp: Path) -> tuple[list[str], str]:
    argv = config_file("no section header\n")(tmp)
    return argv, (
        f"error: config file {tmp / 'bad.ini'} cannot be parsed: line 1 'no section header' "
        "comes before any [section]; expected [section] headers, each followed by key = value "
        "lines"
    )


def eval_garbled(tmp: Path) -> tuple[list[str], str]:
    (tmp / "ev").mkdir()
    (tmp / "ev" / "metrics.json").write_text("")
    argv = ["pages", str(reference_run()), "--eval", str(tmp / "ev"), "--out", str(tmp / "r")]
    return argv, (
        f"error: --eval {tmp / 'ev'}: its metrics.json is not the one 'diffusiontools evaluate' "
        "writes (a JSON table of settings and runs)"
    )


PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
UNREADABLE = [
    ("evaluate --npz a PNG", npz_given(PNG, "grid.png")),
    ("evaluate --npz a pickle", npz_given(pickle.dumps({"images": [1, 2]}), "s.npz")),
    ("evaluate --npz a truncated NPZ", npz_given(b"PK\x03\x04" + bytes(30), "cut.npz")),
    ("a text file as checkpoint", checkpoint_text),
    ("a checkpoint of a newer version", checkpoint_newer_key),
    ("an export description that is no JSON", export_garbled),
    ("an INI file without a section", config_unparsable),
    ("pages --eval with an empty metrics.json", eval_garbled),
]


@pytest.mark.parametrize("setup", [r[1] for r in UNREADABLE], ids=[r[0] for r in UNREADABLE])
def test_a_file_that_is_not_ours_is_refused_in_one_sentence(setup, tmp_path, capsys):
    argv, line = setup(tmp_path)
    capsys.readouterr()
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == line + "\n"


def test_a_config_key_set_from_no_flag_keeps_its_name():
    from diffusiontools.cli.flags import keys_as_flags

    flags = {"diffusion.T": "--T", "data.dir": "--data-dir"}
    message = "diffusion.T=0 is out of range; diffusion.Tx, model.T=3 and data.dir stay keys"
    assert keys_as_flags(message, flags) == (
        "--T 0 is out of range; diffusion.Tx, model.T=3 and --data-dir stay keys"
    )


# --- a refused command leaves nothing behind: every input is checked before a folder is made ---

NOTHING_WRITTEN = [
    ("evaluate, unknown sampler", lambda tmp: ["evaluate", str(reference_run()), "--sampler",
                                              "magic", "--out", str(tmp / "new" / "ev")]),
    ("evaluate, steps above T", lambda tmp: ["evaluate", str(reference_run()), "--steps", "500",
                                             "--out", str(tmp / "new" / "ev")]),
    ("evaluate, t-SNE reference too small", lambda tmp: ["evaluate", str(reference_run()),
                                                         "--tsne-reference", "5", "--out",
                                                         str(tmp / "new" / "ev")]),
    ("sample, steps above T", lambda tmp: ["sample", str(reference_run()), "--steps", "500",
                                           "--out", str(tmp / "new" / "g.png")]),
    ("sample, an epoch without checkpoint", lambda tmp: ["sample", str(reference_run()),
                                                         "--epochs", "0,9", "--out",
                                                         str(tmp / "new" / "g.png")]),
    ("reconstruct, a Gaussian run", lambda tmp: ["reconstruct", str(reference_run()), "--out",
                                                 str(tmp / "new" / "rec")]),
    ("pages, a folder without checkpoints", lambda tmp: ["pages", str(tmp), "--out",
                                                          str(tmp / "new" / "rep")]),
    ("export, an unknown format", lambda tmp: ["export", str(reference_run()), "--format", "onnx",
                                               "--out", str(tmp / "new" / "ex")]),
    ("degrade, T = 1", lambda tmp: ["degrade", "--degradation", "blur", "--T", "1", "--out",
                                    str(tmp / "new" / "d.png")]),
    ("reproduce, an unknown scale", lambda tmp: ["reproduce", "--scale", "huge", "--out",
                                                 str(tmp / "new" / "rp")]),
]  # fmt: skip


@pytest.mark.parametrize(
    "argv", [r[1] for r in NOTHING_WRITTEN], ids=[r[0] for r in NOTHING_WRITTEN]
)
def test_a_refused_command_creates_no_folder(argv, tmp_path):
    assert cli.main(argv(tmp_path)) == 2
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    "library, command_line",
    [
        ("ema=False asks for raw weights", "--no-ema asks for raw weights"),
        ("device='tpu' is not a device", "--device 'tpu' is not a device"),
        ("epochs=0 is not a number of passes", "--epochs 0 is not a number of passes"),
        (
            "npz=x.npz, eta=0.5 and timestep_spacing=ours",
            "--npz x.npz, --eta 0.5 and --timestep-spacing ours",
        ),  # fmt: skip
        ("steps=5 applies to ddim", "--steps 5 applies to ddim"),
        ("n=0 is not a number of samples", "-n 0 is not a number of samples"),
        ("resume=True and overwrite=True contradict", "--resume and --overwrite contradict"),
        ("override='x' is not of the form", "--set 'x' is not of the form"),
        ("sampling.steps=5 applies", "sampling.steps=5 applies"),  # a config key stays
        ("training.max_steps=3 is below", "training.max_steps=3 is below"),
        ("n_samples=5 is too few", "--n-samples 5 is too few"),
        # a quoted value is the user's text, whatever it holds
        ("override='training.lr\\n=1' holds", "--set 'training.lr\\n=1' holds"),
        ("out='/runs/seed=3/x' and seed=4", "--out '/runs/seed=3/x' and --seed 4"),
        ('out="it\'s/n=2" exists', '--out "it\'s/n=2" exists'),
        ("the run's steps=5 and 'x'", "the run's --steps 5 and 'x'"),
        ("a {'data.source': ''} unset", "a --set data.source= unset"),
        # a path's own "name=" is the user's text
        ("out=odd/seed=3 is a file", "--out odd/seed=3 is a file"),
        ("runs/n=5 already holds a run", "runs/n=5 already holds a run"),
        ("out=seed=3/x is a file", "--out seed=3/x is a file"),
    ],
)
def test_the_cli_names_its_flags_where_the_library_names_arguments(library, command_line):
    assert cli.as_flags(library) == command_line


def test_a_quoted_value_stays_as_written_once_its_key_is_a_flag():
    from diffusiontools.cli.flags import keys_as_flags

    message = keys_as_flags("run_dir='/runs/seed=3' is a file", {"run_dir": "--out"})
    assert message == "--out '/runs/seed=3' is a file"
    assert cli.as_flags(message) == "--out '/runs/seed=3' is a file"
    message = keys_as_flags("run_dir=odd/run_dir=y is a file", {"run_dir": "--out"})
    assert cli.as_flags(message) == "--out odd/run_dir=y is a file"


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: dt.train("quickstart", run_dir=3), "run_dir=3 is not a path"),
        (lambda: dt.evaluate({"a": np.zeros((10, 28, 28), np.uint8)}, out=b"ev"),
         "out=b'ev' is not a path"),
    ],
)  # fmt: skip
def test_a_path_argument_that_is_no_path_is_refused_in_our_words(call, message, tmp_path):
    """out=b'ev' raised pathlib's TypeError."""
    with pytest.raises(UserError) as refused:
        call()
    assert str(refused.value) == f"{message}: give a str or a pathlib.Path"
