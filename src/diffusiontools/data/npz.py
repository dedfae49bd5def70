"""An ``.npz`` file of images, with or without labels: the format NumPy users already have.

Keys: ``images`` uint8 in one of :data:`~diffusiontools.data.arrays.LAYOUTS` and, optionally,
``labels``, integers (N,) in 0..num_classes-1. Any other key is refused rather than ignored, so a
misspelt ``label`` cannot silently make the data unlabelled. The test split is held out by
:func:`~diffusiontools.data.arrays.held_out`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import UserError
from .arrays import class_labels, split_dataset, to_nchw
from .dataset import ImageDataset, unnamed_classes
from .download import file_checksums

KEYS = ("images", "labels")


def load_npz(
    path: str | Path,
    num_classes: int | None = None,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> ImageDataset:
    """Load the images (and labels) of ``path``; classes are named "class 0", "class 1", ...

    ``num_classes`` defaults to the largest label + 1. Raises ``UserError`` naming the file and
    key for a missing file, an unreadable archive, an unknown or missing key, a wrong dtype or
    rank, or labels out of range.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"{path} is a folder, not an .npz file; data.dir must name an .npz file")
    if not path.is_file():
        raise UserError(f"{path} does not exist; data.dir must name an .npz file")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise UserError(f"{path} is not a readable .npz archive ({e})") from e
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise UserError(
            f"{path} holds one bare array; save an .npz with np.savez(path, images=...)"
        )
    arrays = {}
    with archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
                raise UserError(f"{path} key {key!r} is not a readable plain array ({e})") from e
    unknown = sorted(set(arrays) - set(KEYS))
    if unknown:
        raise UserError(f"{path} holds key {unknown[0]!r}; the allowed keys are {', '.join(KEYS)}")
    if "images" not in arrays:
        raise UserError(f"{path} has no key 'images'; it must hold uint8 images under 'images'")

    images, layout = to_nchw(arrays["images"], f"{path} key 'images'")
    labels, count = None, 0
    if "labels" in arrays:
        labels, count = class_labels(
            arrays["labels"], len(images), f"{path} key 'labels'", num_classes
        )
    return split_dataset(
        images,
        labels,
        unnamed_classes(count),
        test_fraction,
        seed,
        str(path),
        source="npz",
        files={str(path): file_checksums(path)},
        details={"layout": layout},
    )
