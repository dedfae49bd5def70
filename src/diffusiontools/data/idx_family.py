"""The IDX family: MNIST, Fashion-MNIST and Kuzushiji-MNIST, 28x28 gray images in 10 classes.

The three ship the same four file names (``train-images-idx3-ubyte.gz`` ...), so only the bytes
tell them apart. Each ``.gz`` file is checked against its member's published md5; one whose md5 is
another member's is named as that member's file and refused, and a file is never deleted or
replaced. Uncompressed copies have no published checksum: one whose sha256 is that of a published
file's content (:attr:`Member.sha256`, known for MNIST) is verified, or named as the other
member's and refused, like a ``.gz``; any other is read, its checksums recorded, its name listed in
``provenance.details["unverified"]`` and :func:`unverified_note` logged as a warning by
``load_data`` and kept in ``provenance.details["unverified_note"]``. A folder holding some but not
all four files is refused naming the missing ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .dataset import DatasetSpec, ImageDataset, Provenance, digit_names
from .download import MIRRORS, MNIST_MD5, DownloadError, download_all, file_checksums
from .idx import read_idx
from .locate import cache_dir, download_refusal, not_found, search_folders

SIZE = 28  # every member's images are 28x28, one channel
# The four files by role, named without ".gz"; either form is accepted on disk.
STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class Member:
    """One data set of the family: its title, published md5 per ``.gz`` file, mirrors, classes,
    and the sha256 of each published file's uncompressed content where it is known."""

    title: str
    md5: dict[str, str]
    mirrors: tuple[str, ...]
    class_names: tuple[str, ...]
    sha256: dict[str, str] = field(default_factory=dict)


# sha256 of the content of MNIST's published .gz files (those of MNIST_MD5's md5s), computed with
# ``gunzip -c FILE | sha256sum``; Fashion-MNIST's and KMNIST's are not known here.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


# md5s, mirrors and class names as torchvision.datasets.mnist publishes them
# (https://github.com/pytorch/vision/blob/main/torchvision/datasets/mnist.py); MNIST's are kept
# in download.py, where download_mnist reads them too.
FAMILY = {
    "mnist": Member("MNIST", MNIST_MD5, MIRRORS, digit_names(10), MNIST_SHA256),
    "fashion_mnist": Member(
        "Fashion-MNIST",
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat")
        + ("Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    "kmnist": Member(
        "Kuzushiji-MNIST",
        {
            "train-images-idx3-ubyte.gz": "bdb82020997e1d708af4cf47b453dcf7",
            "train-labels-idx1-ubyte.gz": "e144d726b3acfaa3e44228e80efcd344",
            "t10k-images-idx3-ubyte.gz": "5c965bf0a639b31b8f53240b1b52f4d7",
            "t10k-labels-idx1-ubyte.gz": "7320c461ea6c1c855c0b718fb2a4b134",
        },
        ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        # The romanised hiragana of the ten classes, お き す つ な は ま や れ を.
        ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
    ),
}


def member_spec(name: str) -> DatasetSpec:
    """The spec of family member ``name``: 1 x 28 x 28 gray images in its 10 classes."""
    return DatasetSpec(1, SIZE, SIZE, len(FAMILY[name].class_names), FAMILY[name].class_names)


def load_idx_dataset(name: str, data_dir: str | None = None, download: bool = True) -> ImageDataset:
    """Load family member ``name`` ("mnist", "fashion_mnist" or "kmnist") from its four IDX files.

    The folders of :mod:`~diffusiontools.data.locate` are searched for all four files (``.gz`` or
    uncompressed); with none found they are downloaded into the cache where the network is allowed.
    Returns train 60,000 and test 10,000 images uint8 (N, 1, 28, 28) with int64 labels in 0..9 for
    the published files. Raises ``UserError`` for files found nowhere, a folder with some of the
    four only, a file of another member or of unknown md5, or a malformed file.
    """
    member = FAMILY[name]
    folders = search_folders(name, data_dir)
    for folder in folders:
        files = find_files(folder, None if folder == folders[-1] else member.title)
        if files is not None:
            return _read(name, files)

    reason = download_refusal(download)
    if reason is None:
        cache = cache_dir(name)
        for file_name in member.md5:  # a wrong file already there is named, not overwritten
            if (cache / file_name).is_file():
                verify_gz(name, cache / file_name, file_checksums(cache / file_name)["md5"])
        try:
            download_all(cache, member.md5, member.mirrors)
            return _read(name, find_files(cache))
        except DownloadError as e:
            reason = str(e)
    raise not_found(member.title, list(member.md5), folders, reason)


def find_files(folder: Path, title: str | None = None) -> dict[str, Path] | None:
    """Map each role to its file in ``folder`` (``.gz`` preferred), or None if any is missing.

    With ``title`` (the data set's, for a folder the user chose rather than the download cache,
    which a download completes), a folder with some but not all four files raises ``UserError``
    naming the missing ones.
    """
    found = {}
    for role, stem in STEMS.items():
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                found[role] = folder / name
                break
    if len(found) == len(STEMS):
        return found
    if found and title is not None:
        missing = [f"{stem}(.gz)" for role, stem in STEMS.items() if role not in found]
        raise UserError(
            f"{folder} holds {len(found)} of {title}'s four IDX files but not "
            f"{', '.join(missing)}; add {'it' if len(missing) == 1 else 'them'}, or point "
            "data.dir at a folder with all four"
        )
    return None


def verify_gz(name: str, path: Path, md5: str) -> None:
    """Refuse a ``.gz`` file whose md5 is not ``name``'s published one, saying whose it is."""
    member = FAMILY[name]
    published = member.md5[path.name]
    if md5 == published:
        return
    for other_name, other in FAMILY.items():
        if other.md5.get(path.name) == md5:
            raise UserError(
                f"{path} is {other.title}'s {path.name}, not {member.title}'s; use data.dataset = "
                f"{other_name} for these files, or point data.dir at {member.title}'s (nothing "
                "was deleted)"
            )
    raise UserError(
        f"{path} has md5 {md5}, not {member.title}'s published {published}; it was left in "
        f"place: replace it with a fresh copy of {member.title}'s {path.name}, or, for data of "
        "one's own in this layout, store the files uncompressed (read and recorded as unverified) "
        "or as one .npz file with data.dataset = npz"
    )


def verify_uncompressed(name: str, path: Path, sha256: str) -> bool:
    """Whether an uncompressed file's ``sha256`` is the content of ``name``'s published file;
    one that is another member's is refused naming that member, one unknown gives False."""
    member = FAMILY[name]
    if member.sha256.get(path.name) == sha256:
        return True
    for other_name, other in FAMILY.items():
        if other.sha256.get(path.name) == sha256:
            raise UserError(
                f"{path} is {other.title}'s {path.name} (uncompressed), not {member.title}'s; use "
                f"data.dataset = {other_name} for these files, or point data.dir at "
                f"{member.title}'s (nothing was deleted)"
            )
    return False


def unverified_note(title: str, folder: Path, names: list[str]) -> str:
    """The warning for uncompressed files whose content no published checksum vouches for."""
    return (
        f"{', '.join(names)} in {folder} are uncompressed and match no published checksum, so "
        f"their content could not be verified as {title}'s; they were read as {title}"
    )


def _read(name: str, files: dict[str, Path]) -> ImageDataset:
    """Verify and parse the four files found for ``name`` (roles as ``STEMS``)."""
    checksums, unverified = {}, []
    for path in files.values():
        checksums[path.name] = file_checksums(path)
        if path.suffix == ".gz":
            verify_gz(name, path, checksums[path.name]["md5"])
        elif not verify_uncompressed(name, path, checksums[path.name]["sha256"]):
            unverified.append(path.name)

    arrays = {role: read_idx(path) for role, path in files.items()}
    for split in ("train", "test"):
        images_path, labels_path = files[f"{split}_images"], files[f"{split}_labels"]
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.shape[1:] != (SIZE, SIZE) or labels.ndim != 1:
            raise UserError(
                f"{images_path} and {labels_path} hold shapes {images.shape} and {labels.shape}; "
                f"{FAMILY[name].title} needs images (N, {SIZE}, {SIZE}) and labels (N,)"
            )
        if len(images) != len(labels):
            raise UserError(
                f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} "
                "labels; they must match"
            )
        if len(labels) and labels.max() >= len(FAMILY[name].class_names):
            raise UserError(
                f"{labels_path} holds label {labels.max()}; {FAMILY[name].title}'s labels are "
                f"0..{len(FAMILY[name].class_names) - 1}"
            )

    spec = member_spec(name)
    folder = next(iter(files.values())).parent
    details = {"folder": str(folder), "unverified": unverified}
    if unverified:
        details["unverified_note"] = unverified_note(FAMILY[name].title, folder, unverified)
    provenance = Provenance(
        source=name,
        files=checksums,
        n_train=len(arrays["train_images"]),
        n_test=len(arrays["test_images"]),
        details=details,
    )
    return ImageDataset(
        torch.from_numpy(arrays["train_images"]).unsqueeze(1),  # (N, 28, 28) -> (N, 1, 28, 28)
        torch.from_numpy(arrays["train_labels"].astype(np.int64)),
        torch.from_numpy(arrays["test_images"]).unsqueeze(1),
        torch.from_numpy(arrays["test_labels"].astype(np.int64)),
        spec,
        provenance,
    )
