"""Bad images through the command line: ``diffusiontools train folder|npz`` on a folder or an
.npz file that cannot be trained on stops with one line naming the file (or key), exit status 2,
no run folder written, and the data left exactly as it was."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffusiontools import cli


def png(path: Path, size: tuple[int, int] = (8, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, 99).save(path)


def empty(data: Path) -> str:
    data.mkdir()
    return "holds no .png/.jpg/.jpeg images"


def one_image(data: Path) -> str:
    png(data / "a" / "only.png")
    return "holds 1 image; at least 2 are needed"


def corrupt(data: Path) -> str:
    png(data / "a" / "good.png")
    (data / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return f"{data / 'a' / 'broken.png'} cannot be decoded as an image"


def not_an_image(data: Path) -> str:
    png(data / "a" / "good.png")
    (data / "a" / "notes.txt").write_text("a note")
    return f"{data / 'a' / 'notes.txt'} is not a .png/.jpg/.jpeg image"


def mixed_sizes(data: Path) -> str:
    png(data / "a" / "small.png", (8, 8))
    png(data / "a" / "large.png", (12, 10))
    return f"{data / 'a' / 'large.png'} is 12x10 but {data / 'a' / 'small.png'} is 8x8"


def npz_of_floats(data: Path) -> str:
    np.savez(data, images=np.zeros((10, 8, 8), np.float32), labels=np.arange(10) % 2)
    return f"{data} key 'images' has dtype float32; images must be uint8 in 0..255"


def npz_of_rank_2(data: Path) -> str:
    np.savez(data, images=np.zeros((10, 64), np.uint8))
    return f"{data} key 'images' has shape (10, 64); images must be (N, H, W)"


def npz_label_beyond_classes(data: Path) -> str:
    np.savez(data, images=np.zeros((10, 8, 8), np.uint8), labels=np.arange(10) - 1)
    return (
        f"{data} key 'labels' holds label -1; labels must be non-negative integers 0..K-1 "
        "numbering the K classes"
    )


CASES = {
    "empty folder": ("folder", empty),
    "one image": ("folder", one_image),
    "corrupt file": ("folder", corrupt),
    "non-image file": ("folder", not_an_image),
    "mixed sizes, no image_size": ("folder_as_is", mixed_sizes),
    "npz of float32": ("npz", npz_of_floats),
    "npz of rank 2": ("npz", npz_of_rank_2),
    "npz label out of range": ("npz", npz_label_beyond_classes),
}


def files_of(path: Path) -> dict[Path, bytes]:
    paths = [path] if path.is_file() else sorted(path.rglob("*"))
    return {p: p.read_bytes() for p in paths if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_data_is_one_line_naming_the_file_and_changes_nothing(case, tmp_path, capsys):
    dataset, make = CASES[case]
    data = tmp_path / ("mine.npz" if dataset == "npz" else "mine")
    message = make(data)
    before = files_of(data)
    run = tmp_path / "run"
    config = "folder"  # folder.ini: RGB, image_size 32
    if dataset != "folder":  # folder.ini's channels and image_size set aside
        config = tmp_path / "data.ini"
        config.write_text(f"[data]\ndataset = {dataset.removesuffix('_as_is')}\n")
    argv = ["train", str(config), "--out", str(run), "--set", f"data.dir={data}"]
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert "Traceback" not in err and len(errors) == 1, err
    assert message in errors[0]
    assert not run.exists() and files_of(data) == before
