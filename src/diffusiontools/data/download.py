"""Fetch data files (MNIST's four and other data sets'), verified against their published md5s.

A file is written to a temporary name beside its destination and renamed into place only once its
md5 matches, so an interrupted or corrupted download can never be mistaken for the real data.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from ..errors import UserError

# The published checksums (torchvision and the original site agree on them).
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

# Tried in order; the original yann.lecun.com site now often refuses automated downloads.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

_CHUNK = 1 << 16


class DownloadError(UserError):
    """A download did not produce a verified file; callers may try another mirror or fall back."""


class ChecksumError(DownloadError):
    """The server sent a file whose md5 is not the published one; the file has been deleted."""


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes; ``path`` may also be an importlib.resources Traversable."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def file_checksums(path: Path) -> dict[str, str]:
    """``{"md5": ..., "sha256": ...}`` of a file in one chunked read: md5 is what data sets
    publish, sha256 what provenance records."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            md5.update(chunk)
            sha256.update(chunk)
    return {"md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


def md5sum(path: Path) -> str:
    """Hex md5 of a file, read in chunks so a large file never sits in memory twice."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(url: str, dest: Path, md5: str, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``, only if the bytes have md5 ``md5``.

    Raises ``DownloadError`` when the network or the destination folder fails and
    ``ChecksumError`` (a ``DownloadError``) when the content is wrong; in both cases nothing is left
    at ``dest`` or in its folder.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as e:
        raise DownloadError(f"cannot write into {dest.parent}: {e.strerror or e}") from e
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5()
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    total = int(response.headers.get("Content-Length") or 0) or None
                    with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
                        for chunk in iter(lambda: response.read(_CHUNK), b""):
                            out.write(chunk)
                            digest.update(chunk)
                            bar.update(len(chunk))
            except OSError as e:  # URLError, HTTPError, timeouts and resets are all OSErrors
                raise DownloadError(f"could not download {url}: {e}") from e
        actual = digest.hexdigest()
        if actual != md5:
            raise ChecksumError(
                f"refused {url}: its md5 is {actual} but the expected md5 is {md5}, "
                "so the file was deleted"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def download_mnist(
    folder: Path, mirrors: Sequence[str] | None = None, timeout: float = 30.0
) -> dict[str, Path]:
    """Make sure ``folder`` holds the four verified MNIST ``.gz`` files (see ``download_all``)."""
    return download_all(folder, MNIST_MD5, MIRRORS if mirrors is None else mirrors, timeout)


def download_all(
    folder: Path, md5_by_name: dict[str, str], mirrors: Sequence[str], timeout: float = 30.0
) -> dict[str, Path]:
    """Make sure ``folder`` holds each file of ``md5_by_name``, verified; fetch only missing ones.

    Each file is tried from every mirror in turn (a mirror is a URL prefix); if one file cannot be
    had from any mirror this raises ``DownloadError`` summarising every attempt. Returns
    ``{file name: path}``.
    """
    folder = Path(folder)
    paths = {}
    for name, md5 in md5_by_name.items():
        dest = folder / name
        if dest.exists() and md5sum(dest) == md5:
            paths[name] = dest
            continue
        failures = []
        for mirror in mirrors:
            try:
                paths[name] = download_file(mirror + name, dest, md5, timeout=timeout)
                break
            except DownloadError as e:
                failures.append(str(e))
        else:
            raise DownloadError(f"could not download {name} from any mirror: {'; '.join(failures)}")
    return paths
