"""CIFAR-10 (Krizhevsky 2009): 50,000 train and 10,000 test 32x32 RGB images in 10 classes.

Read from the python tarball ``cifar-10-python.tar.gz`` in place: the tarball is md5-verified
against the published checksum, only its six expected batch members are read (nothing is extracted
to disk), and each is unpickled by an unpickler that can build nothing but numpy arrays, so a
tampered tarball cannot run code. A batch is a dict of ``data`` uint8 (N, 3072), each row the red,
green and blue 32x32 planes in turn, and ``labels``, a list of N ints in 0..9.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .dataset import DatasetSpec, ImageDataset, Provenance
from .download import DownloadError, download_all, file_checksums
from .locate import cache_dir, download_refusal, not_found, search_folders

# The tarball's name, md5 and URL, and the class names (batches.meta "label_names"), as
# torchvision.datasets.cifar publishes them
# (https://github.com/pytorch/vision/blob/main/torchvision/datasets/cifar.py).
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer")
CLASS_NAMES += ("dog", "frog", "horse", "ship", "truck")
MEMBERS = {
    "train": tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)),
    "test": ("cifar-10-batches-py/test_batch",),
}
SIZE = 32

_reconstruct = np.empty(0).__reduce__()[0]  # numpy's array rebuilder, wherever numpy keeps it


def _latin1(text: str, encoding: str) -> bytes:
    """``_codecs.encode`` as protocol-2 pickles of bytes call it, for latin1 only."""
    if encoding != "latin1":
        raise pickle.UnpicklingError(f"encoding {encoding!r} is not latin1")
    return text.encode("latin1")


class _ArraysOnly(pickle.Unpickler):
    """Unpickle dicts, lists, strings and numpy arrays; refuse every other class."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # as numpy 1 pickles arrays
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # as numpy 2 does
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1,
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not a numpy array part")
        return self.ALLOWED[(module, name)]


def load_cifar10(data_dir: str | None = None, download: bool = True) -> ImageDataset:
    """Load CIFAR-10 from ``cifar-10-python.tar.gz``, downloading it where the network is allowed.

    The folders of :mod:`~diffusiontools.data.locate` are searched for the tarball. Returns images
    uint8 (N, 3, 32, 32) with int64 labels in 0..9, 50,000 train and 10,000 test. Raises
    ``UserError`` when the tarball is found nowhere, has another md5 (it is left in place) or
    lacks a batch.
    """
    folders = search_folders("cifar10", data_dir)
    for folder in folders:
        if (folder / ARCHIVE).is_file():
            return _read(folder / ARCHIVE)
    reason = download_refusal(download)
    if reason is None:
        try:
            return _read(
                download_all(cache_dir("cifar10"), {ARCHIVE: ARCHIVE_MD5}, MIRRORS)[ARCHIVE]
            )
        except DownloadError as e:
            reason = str(e)
    raise not_found("CIFAR-10", [ARCHIVE], folders, reason)


def _read(path: Path) -> ImageDataset:
    checksums = file_checksums(path)
    if checksums["md5"] != ARCHIVE_MD5:
        raise UserError(
            f"{path} has md5 {checksums['md5']}, not CIFAR-10's published {ARCHIVE_MD5}; it was "
            f"left in place: replace it with a fresh download of {ARCHIVE}"
        )
    splits = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for split, members in MEMBERS.items():
                batches = [_batch(tar, path, member) for member in members]
                splits[split] = [np.concatenate(parts) for parts in zip(*batches, strict=True)]
    except (tarfile.TarError, OSError, EOFError) as e:
        raise UserError(f"{path} is not a readable .tar.gz file ({e}); download it again") from e

    spec = DatasetSpec(3, SIZE, SIZE, len(CLASS_NAMES), CLASS_NAMES)
    provenance = Provenance(
        source="cifar10",
        files={ARCHIVE: checksums},
        n_train=len(splits["train"][0]),
        n_test=len(splits["test"][0]),
        details={"folder": str(path.parent)},
    )
    return ImageDataset(
        *(torch.from_numpy(a) for a in (*splits["train"], *splits["test"])), spec, provenance
    )


def _batch(tar: tarfile.TarFile, path: Path, member: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch member as images uint8 (N, 3, 32, 32) and labels int64 (N,)."""
    try:
        info = tar.getmember(member)
    except KeyError:
        raise UserError(f"{path} lacks {member}; it is not CIFAR-10's python tarball") from None
    if not info.isfile():
        raise UserError(f"{path} holds {member} as a link or folder; it must be a regular file")
    raw = tar.extractfile(info).read()
    try:
        # latin1 reads the Python 2 byte strings of the original pickles, as numpy advises.
        batch = _ArraysOnly(io.BytesIO(raw), encoding="latin1").load()
    except Exception as e:  # any malformed or hostile pickle: say which member, never run it
        raise UserError(f"{path}: {member} is not a CIFAR-10 batch ({e})") from e
    batch = batch if isinstance(batch, dict) else {}
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = batch.get("data"), np.asarray(batch.get("labels", []))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise UserError(f"{path}: {member} lacks 'data' as a uint8 (N, 3072) array")
    if data.shape[1] != 3 * SIZE * SIZE or labels.shape != (len(data),):
        raise UserError(
            f"{path}: {member} holds data {data.shape} and {labels.shape} labels; CIFAR-10 "
            f"batches hold (N, {3 * SIZE * SIZE}) and N labels"
        )
    if len(labels) and (
        labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= len(CLASS_NAMES)
    ):
        raise UserError(f"{path}: {member} holds labels outside 0..{len(CLASS_NAMES) - 1}")
    return data.reshape(-1, 3, SIZE, SIZE), labels.astype(np.int64)  # rows -> (N, C, H, W)
