"""A folder of one's own PNG/JPEG images, read with Pillow and brought to one shape on the way in.

What ``data_dir`` may hold (names starting with "." are skipped, e.g. ``.DS_Store``):

- images only: an unlabelled data set;
- one subfolder of images per class: classes named after the subfolders, in sorted order;
- ``train/`` and ``test/``, each laid out as above, with the test classes among the train ones:
  those are the splits, each put in one seeded order so that its first images mix the classes
  (a ``test_fraction`` given is refused: these splits would ignore it); otherwise a seeded
  ``test_fraction`` (0.1 when None) is held out (see ``arrays.held_out``).

Anything else is refused with the file's name: a file that is not ``.png``/``.jpg``/``.jpeg``, one
Pillow cannot decode, an image that is not 8-bit (16-bit gray or colour, 32-bit, float), images
beside class subfolders, a folder inside a class, an empty class, fewer than two images.

The conversions, each recorded in ``provenance.conversions`` with how many images it changed:
EXIF orientation applied; every image brought to ``channels`` by Pillow's ``convert`` (colour to
gray by the ITU-R 601-2 luma, gray to RGB by repeating it, alpha dropped, palettes expanded); with
``image_size``, the shorter side resized to it (bicubic) and the centre cropped to a square. Left
as None, the images decide: ``channels`` is 1 when every image is gray, else 3, and the images must
share one size (H, W), which is kept.
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import UserError
from .arrays import seeded_order, split_dataset
from .dataset import CHANNELS, DatasetSpec, ImageDataset, Provenance

EXTENSIONS = (".png", ".jpg", ".jpeg")
HELD_OUT = 0.1  # the test fraction of a folder without train/ and test/, unless one is given
GRAY_MODES = ("1", "L", "LA")
COLOUR_MODES = ("P", "PA", "RGB", "RGBA", "CMYK", "YCbCr")
_EXIF_ORIENTATION = 0x0112  # values 5..8 turn the image by 90 degrees, swapping its sides
# A PNG opens with its 8-byte signature and then the IHDR chunk (length, b"IHDR", width, height,
# bit depth): the bit depth per sample is byte 24. Pillow opens 16-bit colour PNGs in 8-bit modes
# (RGB, RGBA), dropping the low byte, so the mode alone cannot tell them from 8-bit ones.
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_BIT_DEPTH = 24


def load_folder(
    data_dir: str | Path,
    channels: int | None = None,
    image_size: int | None = None,
    test_fraction: float | None = None,
    seed: int = 0,
) -> ImageDataset:
    """Read the images under ``data_dir`` as uint8 (N, C, H, W), labelled by subfolder or not.

    Raises ``UserError`` naming the file or folder for every refusal of the module docstring.
    """
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise UserError(f"data.dir={data_dir} is not a folder; point it at a folder of images")
    if channels is not None and channels not in CHANNELS:
        raise UserError(f"channels={channels} is not allowed; use 1 (gray) or 3 (RGB)")
    if image_size is not None and image_size < 1:
        raise UserError(f"image_size={image_size} is invalid; use a positive number of pixels")

    splits = _splits(root)  # {"all": items} or {"train": items, "test": items}
    if "all" not in splits and test_fraction is not None:
        raise UserError(
            f"data.test_fraction={test_fraction} applies to a folder without train/ and test/ "
            f"only; {root}'s train/ and test/ are its splits and would ignore it: remove it"
        )
    items = [item for split_items in splits.values() for item in split_items]  # (file, class)
    class_names = tuple(sorted({name for _, name in items if name is not None}))
    raw = {path: path.read_bytes() for path, _ in items}
    modes, sizes = zip(*(_header(path, raw[path]) for path, _ in items), strict=True)
    channels = channels or (1 if all(mode in GRAY_MODES for mode in modes) else 3)
    odd = next((i for i, size in enumerate(sizes) if size != sizes[0]), None)
    if image_size is None and odd is not None:
        raise UserError(
            f"{items[0][0]} is {sizes[0][0]}x{sizes[0][1]} but {items[odd][0]} is "
            f"{sizes[odd][0]}x{sizes[odd][1]}; set image_size to resize and centre-crop every "
            "image to one square size"
        )

    conversions = Counter()
    images = np.stack(
        [_decode(path, raw[path], channels, image_size, conversions) for path, _ in items]
    )  # (N, C, H, W)
    labels = None
    if class_names:
        labels = np.array([class_names.index(name) for _, name in items], dtype=np.int64)
    provenance = {
        "source": "folder",
        "files": {str(root): {"sha256": _manifest(root, raw)}},
        "conversions": tuple(f"{n} of {len(items)} {what}" for what, n in conversions.items()),
        "details": {"folder": str(root), "n_files": len(items)},
    }
    if "all" in splits:
        fraction = HELD_OUT if test_fraction is None else test_fraction
        return split_dataset(images, labels, class_names, fraction, seed, str(root), **provenance)

    n_train = len(splits["train"])
    train = seeded_order(n_train, seed)
    test = n_train + seeded_order(len(items) - n_train, seed)
    provenance["details"]["order"] = f"each split in torch.randperm order, seed {seed}"
    return ImageDataset(
        torch.from_numpy(images[train]),
        None if labels is None else torch.from_numpy(labels[train]),
        torch.from_numpy(images[test]),
        None if labels is None else torch.from_numpy(labels[test]),
        DatasetSpec(*images.shape[1:], len(class_names), class_names),
        Provenance(n_train=n_train, n_test=len(items) - n_train, **provenance),
    )


def _splits(root: Path) -> dict[str, list[tuple[Path, str | None]]]:
    """``{"train": ..., "test": ...}`` where both subfolders exist, else ``{"all": ...}``."""
    given = [name for name in ("train", "test") if (root / name).is_dir()]
    if not given:
        items = _scan(root)
        if not items:
            raise UserError(f"{root} holds no {'/'.join(EXTENSIONS)} images")
        return {"all": items}
    if len(given) == 1:
        missing = "test" if given == ["train"] else "train"
        raise UserError(
            f"{root} has {given[0]}/ but no {missing}/; give both, or neither to hold out a test "
            "fraction"
        )
    beside = [entry for entry in _visible(root) if entry.name not in ("train", "test")]
    if beside:
        raise UserError(f"{beside[0]} lies beside train/ and test/; move it into one of them")
    splits = {split: _scan(root / split) for split in ("train", "test")}
    for split, items in splits.items():
        if not items:
            raise UserError(f"{root / split} holds no {'/'.join(EXTENSIONS)} images")
    classes = {split: {name for _, name in items} for split, items in splits.items()}
    if (None in classes["train"]) != (None in classes["test"]):
        raise UserError(
            f"only one of {root / 'train'} and {root / 'test'} has class subfolders; give both "
            "the same classes, or neither"
        )
    extra = sorted(classes["test"] - classes["train"], key=str)
    if extra:
        raise UserError(f"{root / 'test' / extra[0]} is a class that {root / 'train'} lacks")
    return splits


def _scan(folder: Path) -> list[tuple[Path, str | None]]:
    """``(image file, class name)`` pairs under ``folder``: flat (class None) or one level of
    class subfolders, in path order."""
    entries = _visible(folder)
    subfolders = [entry for entry in entries if entry.is_dir()]
    files = [entry for entry in entries if not entry.is_dir()]
    if subfolders and files:
        raise UserError(
            f"{files[0]} lies beside the class subfolders of {folder}; put every image in a "
            "class subfolder, or none"
        )
    if not subfolders:
        return [(_image_file(file), None) for file in files]
    items = []
    for subfolder in subfolders:
        inner = _visible(subfolder)
        if not inner:
            raise UserError(f"class folder {subfolder} holds no images; add some or remove it")
        for file in inner:
            if file.is_dir():
                raise UserError(f"{file} is a folder inside class folder {subfolder}; move it out")
            items.append((_image_file(file), subfolder.name))
    return items


def _visible(folder: Path) -> list[Path]:
    return sorted(entry for entry in folder.iterdir() if not entry.name.startswith("."))


def _image_file(path: Path) -> Path:
    if path.suffix.lower() not in EXTENSIONS:
        raise UserError(
            f"{path} is not a {'/'.join(EXTENSIONS)} image; move it out of the data folder"
        )
    return path


def _header(path: Path, raw: bytes) -> tuple[str, tuple[int, int]]:
    """An image's mode and upright (width, height), read without decoding its pixels."""
    try:
        image = Image.open(io.BytesIO(raw))
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise _unreadable(path, e) from e
    if image.mode not in GRAY_MODES + COLOUR_MODES:
        raise UserError(
            f"{path} has Pillow mode {image.mode} (not 8-bit gray or colour); save it as an 8-bit "
            "image"
        )
    bits = _png_bit_depth(raw)
    if bits is not None and bits > 8:
        raise UserError(
            f"{path} is a {bits}-bit PNG (not 8-bit gray or colour); save it as an 8-bit image"
        )
    width, height = image.size
    return image.mode, ((height, width) if orientation in (5, 6, 7, 8) else (width, height))


def _png_bit_depth(raw: bytes) -> int | None:
    """Bits per sample from a PNG's IHDR chunk (1, 2, 4, 8 or 16), or None for another format."""
    if raw[:8] != _PNG_SIGNATURE or raw[12:16] != b"IHDR" or len(raw) <= _PNG_BIT_DEPTH:
        return None
    return raw[_PNG_BIT_DEPTH]


def _decode(
    path: Path, raw: bytes, channels: int, image_size: int | None, conversions: Counter
) -> np.ndarray:
    """One image as uint8 (channels, H, W), counting each conversion made in ``conversions``."""
    target = "L" if channels == 1 else "RGB"
    try:
        image = Image.open(io.BytesIO(raw))
        image.load()
        if image.getexif().get(_EXIF_ORIENTATION, 1) != 1:
            conversions["images turned upright by their EXIF orientation"] += 1
            image = ImageOps.exif_transpose(image)
        if image.mode != target:
            conversions[f"images of mode {image.mode} converted to {target} by Pillow"] += 1
            image = image.convert("L" if image.mode in GRAY_MODES else "RGB").convert(target)
        if image_size is not None and image.size != (image_size, image_size):
            conversions[
                f"images resized (bicubic) and centre-cropped to {image_size}x{image_size}"
            ] += 1
            image = ImageOps.fit(image, (image_size, image_size), Image.Resampling.BICUBIC)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise _unreadable(path, e) from e
    pixels = np.asarray(image, dtype=np.uint8)  # (H, W) or (H, W, 3)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def _unreadable(path: Path, error: Exception) -> UserError:
    return UserError(f"{path} cannot be decoded as an image ({error}); replace or remove it")


def _manifest(root: Path, raw: dict[Path, bytes]) -> str:
    """One checksum of a folder's images: the sha256 of the lines "<sha256>  <path under root>",
    in code-point order of the paths, i.e. of ``find * -type f | LC_ALL=C sort | xargs sha256sum``
    run in ``root`` over the images."""
    relative = {path.relative_to(root).as_posix(): data for path, data in raw.items()}
    lines = "".join(
        f"{hashlib.sha256(relative[name]).hexdigest()}  {name}\n" for name in sorted(relative)
    )
    return hashlib.sha256(lines.encode()).hexdigest()
