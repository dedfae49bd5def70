"""The NPZ exchange format every command and benchmark reads: ``images`` uint8, gray (N, H, W)
or RGB (N, 3, H, W), ``meta`` (JSON) and ``format`` (:data:`FORMAT`), and where the writer kept
them, ``unclamped``: the samples as the model drew them, float32 in the images' layout, in the
model's range [-0.5, 0.5] and beyond it (the report's total variance is of these). Gray images
keep the layout of every earlier file, so readers of MNIST samples read them as ever; a file
without ``format`` (an earlier version's, or one made with ``np.savez(path, images=...)``) is read
the same way; readers that know no ``unclamped`` pass it by."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from ..data import to_uint8
from ..errors import UserError

FORMAT = 2  # images (N, H, W) or (N, 3, H, W) of any size; the first version wrote no format


def save_samples(path: Path, images: torch.Tensor, unclamped: bool = False, **meta) -> None:
    """Write samples (model range or uint8) and JSON metadata (seed, sampler, epoch, ...);
    ``unclamped``: keep the float samples as drawn too (:func:`write_samples`)."""
    write_samples(path, [images], len(images), unclamped, **meta)


def file_layout(batch: torch.Tensor) -> np.ndarray:
    """A batch (b, C, H, W) as the file holds it: gray (b, H, W), the layout of every file;
    RGB as it is."""
    array = batch[:, 0] if batch.dim() == 4 and batch.shape[1] == 1 else batch
    return array.cpu().numpy()


def write_samples(
    path: Path, batches: Iterable[torch.Tensor], n: int, unclamped: bool = False, **meta
) -> None:
    """Write ``n`` samples that arrive in ``batches`` (each (b, C, H, W) or, gray, (b, H, W);
    model range or uint8) into the NPZ at ``path`` as they come, so memory holds one batch
    whatever n.

    The file is the one ``np.savez_compressed(path, images=..., meta=json, format=FORMAT)``
    writes: ``images`` uint8 (n, H, W) gray or (n, 3, H, W) RGB, ``meta`` the JSON of ``meta``;
    with ``unclamped`` (float batches only) also ``unclamped``, the batches as float32 in the
    images' layout, unclamped and unrounded (4 bytes a value; gathered in a file beside
    ``path`` meanwhile, not in memory). It is written beside ``path`` and renamed into place
    once whole: a failure (or Ctrl-C) in any batch leaves no file and the old one, if any, as
    it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    floats = path.with_name(f".{path.name}.unclamped.tmp")  # raw float32, while images are written
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            written = 0
            gathered = open(floats, "wb") if unclamped else contextlib.nullcontext()
            with archive.open("images.npy", "w", force_zip64=True) as f, gathered as raw:
                shape = None  # the first batch's image shape, written as the header's
                for batch in batches:
                    if unclamped and batch.dtype == torch.uint8:
                        raise RuntimeError("write_samples keeps unclamped samples of floats only")
                    array = file_layout(batch if batch.dtype == torch.uint8 else to_uint8(batch))
                    if shape is None:
                        shape = array.shape[1:]
                        header = {"descr": "|u1", "fortran_order": False, "shape": (n, *shape)}
                        np.lib.format.write_array_header_1_0(f, header)
                    elif array.shape[1:] != shape:
                        raise RuntimeError(
                            f"write_samples got images {array.shape[1:]} after {shape}"
                        )
                    written += len(array)
                    if written > n:
                        break
                    f.write(array.tobytes())
                    if unclamped:
                        raw.write(file_layout(batch.float()).astype("<f4").tobytes())
            if written != n:
                raise RuntimeError(f"write_samples was promised {n} images and given {written}")
            if unclamped:
                with (
                    archive.open("unclamped.npy", "w", force_zip64=True) as f,
                    open(floats, "rb") as raw,
                ):
                    header = {"descr": "<f4", "fortran_order": False, "shape": (n, *shape)}
                    np.lib.format.write_array_header_1_0(f, header)
                    shutil.copyfileobj(raw, f)
            with archive.open("meta.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(json.dumps(meta, sort_keys=True)))
            with archive.open("format.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(FORMAT))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        floats.unlink(missing_ok=True)


def check_room(path: Path, n: int, shape: tuple[int, int, int], unclamped: bool = False) -> None:
    """Refuse ``n`` samples of ``shape`` (C, H, W) for the NPZ at ``path`` where its disk could
    not hold them (``unclamped``: with their float32 samples too).

    An NPZ of n images takes at most n * C * H * W bytes, 5 times that with the unclamped
    samples (compression only shrinks it; while it is written, the floats take as much again
    beside it): refused when that exceeds the free space of the folder (or of its nearest
    existing parent)."""
    image_bytes = math.prod(shape) * (1 + 2 * 4 if unclamped else 1)  # one sample, uncompressed
    folder = Path(path).absolute().parent
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if n * image_bytes > free:
        # n = 1 is the fewest samples there are: below one image's room, only space can help.
        advice = (
            f"give n=1..{free // image_bytes}"
            if free >= image_bytes
            else "free space there or write the NPZ elsewhere"
        )
        raise UserError(
            f"n={n} samples take up to {_size(n * image_bytes)} in {path}, but {folder} "
            f"has {_size(free)} free: {advice}"
        )


def _size(n_bytes: int) -> str:
    """A size in MB, or in bytes below one MB (where MB would read 0)."""
    return f"{n_bytes / 1e6:,.0f} MB" if n_bytes >= 1e6 else f"{n_bytes:,} bytes"


def load_samples(path: Path, name: str = "npz") -> tuple[np.ndarray, dict]:
    """Read ``images`` uint8, gray (N, H, W) or RGB (N, 3, H, W), and the metadata written by
    :func:`save_samples`, or the ``images`` of a file without ``format`` or ``meta`` (a user's;
    gray (N, 1, H, W) is read as (N, H, W)).

    ``name``: the argument that gave ``path`` (``npz``, or ``set 'a'`` for a set of
    ``evaluate``), named in the one-sentence refusal of a file that is not such an NPZ (an
    image, a pickle, a damaged archive): numpy's own message is never passed on.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{name}={path} does not exist: give a samples NPZ that sample wrote")
    expected = (
        "an NPZ archive holding 'images', uint8 (N, H, W) or (N, 3, H, W), as diffusiontools "
        "sample writes"
    )
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array
            raise ValueError
        with loaded as npz:
            images = npz["images"]
            meta = json.loads(str(npz["meta"])) if "meta" in npz else {}
            version = int(npz["format"]) if "format" in npz else None
        if not isinstance(meta, dict):
            raise ValueError
    except (ValueError, TypeError, KeyError, OSError, EOFError, zipfile.BadZipFile, zlib.error):
        # a PNG, a pickle, a truncated archive, no 'images', garbled metadata
        raise UserError(f"{name}={path} is not a samples NPZ: expected {expected}") from None
    if version not in (None, FORMAT):
        raise UserError(
            f"{name}={path} has format {version}; this version reads format {FORMAT} and "
            "files without one: update diffusiontools"
        )
    if images.ndim == 4 and images.shape[1] == 1:  # torch's gray layout, in a user's file
        images = images[:, 0]
    fits = images.ndim == 3 or (images.ndim == 4 and images.shape[1] == 3)
    if images.dtype != np.uint8 or not fits:
        raise UserError(
            f"{name}={path} holds 'images' of {images.dtype} {images.shape}: expected {expected}"
        )
    return images, meta


def load_unclamped(path: Path, images: np.ndarray, name: str = "npz") -> np.ndarray | None:
    """The ``unclamped`` samples of the NPZ at ``path`` (read by :func:`load_samples` as
    ``images``): float32 in the images' layout, or None where the file holds none (written
    without them, or by another tool). ``name`` as :func:`load_samples`'s; refused: an
    ``unclamped`` array whose dtype or shape is not float32 of the images' shape, that holds
    NaN or infinity, or whose pixels (``to_uint8``) are not ``images``: floats of another draw
    or scale would give numbers of samples that are not the file's."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "unclamped" not in npz:
                return None
            floats = npz["unclamped"]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error):  # a damaged entry
        raise UserError(f"{name}={path} holds 'unclamped' samples that cannot be read") from None
    if floats.ndim == 4 and floats.shape[1] == 1 and images.ndim == 3:  # as load_samples reads
        floats = floats[:, 0]
    if floats.dtype != np.float32 or floats.shape != images.shape:
        raise UserError(
            f"{name}={path} holds 'unclamped' of {floats.dtype} {floats.shape}: expected float32 "
            f"{images.shape}, the shape of its 'images'"
        )
    finite = np.isfinite(floats).reshape(len(floats), -1).all(axis=1)
    if not finite.all():
        raise UserError(
            f"{name}={path} holds 'unclamped' samples that are not finite: "
            f"{int((~finite).sum())} of {len(floats)}"
        )
    differ = (to_uint8(torch.from_numpy(floats)).numpy() != images).reshape(len(images), -1)
    if differ.any():
        raise UserError(
            f"{name}={path} holds 'unclamped' samples that are not its images: "
            f"{int(differ.any(axis=1).sum())} of {len(images)} differ from them once clamped "
            "and rounded (as sample --unclamped writes them, they are the same draw)"
        )
    return floats
