"""The one way the package gets images: a config's ``[data]`` section in, an ``ImageDataset`` out.

``data.dataset`` names the source (:data:`~diffusiontools.data.sources.SOURCES`) and the other
``data.*`` keys are its options: ``dir`` (the folder of the files; for ``npz`` the ``.npz`` file),
``channels`` (``folder``), ``image_size`` (a folder's own resize and crop; every other source's
images resized after loading, :mod:`~diffusiontools.data.resize`), ``test_fraction``
(``folder`` without ``train/`` and ``test/``, ``npz``, ``digits8``, ``memory``; None keeps the
source's own). ``memory`` names
arrays handed to ``dt.train(..., data=)``: they reach training as an ``ImageDataset``
(:func:`~diffusiontools.data.memory.load_memory`, split by ``test_fraction``), as they reach
evaluation and its classifier, and anything that would load them from the config is refused
(:data:`MEMORY_ONLY`).
``mnist`` is read by :func:`~diffusiontools.data.mnist.load_mnist`,
so ``data.source`` keeps its meaning: ``auto`` falls back to the embedded subset with a warning
where the files are neither found nor downloadable, ``mnist`` insists on the files, ``embedded``
takes the subset.

:func:`data_record` is what a run folder and its checkpoints record of the data: the keys that
identify it (``source``, ``folder``, ``n_train``, ``n_test``, ``md5``, as every earlier run
recorded them, so that the data of an old run is compared like for like) and the data set whole
(spec, provenance, fingerprint) under ``"dataset"``.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UserError
from .bundled import load_mnist_embedded
from .dataset import DatasetSpec, ImageDataset, Provenance
from .idx_family import member_spec
from .locate import ENV_VAR, OFFLINE_VAR, cache_dir
from .mnist import MnistData, load_mnist
from .notes import warn_once
from .resize import resized
from .sources import load_dataset

if TYPE_CHECKING:  # an annotation only: the data layer reads the section, it builds none
    from ..config import DataConfig

logger = logging.getLogger(__name__)

# Why the images of ``data.dataset = memory`` cannot be loaded again: arrays handed over from
# Python are kept by no file, so whatever needs them later takes them from the caller.
MEMORY_ONLY = (
    "data.dataset = memory: the run was trained on in-memory arrays, which no file holds; give "
    "the same images and labels again as data= to dt.train (resuming on), dt.evaluate or "
    "dt.train_classifier; for a cold start, save them with np.savez(PATH, images=..., "
    "labels=...) and train with data.dataset = npz, data.dir = PATH"
)

# The provenance source of the embedded subset, under the name earlier runs recorded.
RECORDED_SOURCE = {"mnist_embedded": "embedded"}


def load_data(data: DataConfig) -> ImageDataset:
    """The data set of ``data`` (a config's ``[data]`` section): uint8 (N, C, H, W) images, labels,
    spec and provenance; ``mnist`` gives (N, 1, 28, 28) with labels 0..9, (N, 1, S, S) with
    ``data.image_size`` S.

    Memoised on the keys that choose the data and on the files' sizes and times (a replaced file
    is read again): the tensors are shared by every caller, so clone one before changing it in
    place. Uncompressed IDX files that no published checksum vouches for are logged as a warning,
    once per process (``provenance.details["unverified_note"]``, which every run records).
    Raises ``UserError`` naming the key or file for data that cannot be found or read.
    """
    if data.dataset == "memory":
        raise UserError(MEMORY_ONLY)
    dataset = _load_section(data)
    note = dataset.provenance.details.get("unverified_note")
    if note:  # each run's data.json keeps it
        warn_once(logger, note)
    return dataset


def _load_section(data: DataConfig) -> ImageDataset:
    """``load_data`` without its warning: the memoised load itself, resized to
    ``data.image_size`` where set (a folder resizes as it decodes)."""
    dataset = _load_as_stored(data)
    if data.image_size is None or data.dataset == "folder":
        return dataset
    return _resized_once(dataset, data.image_size)


# Resized data sets by (their source's storage, side): a resize of MNIST takes seconds, and the
# source is held beside its resized copy so that no other tensor can take its address.
_RESIZED: dict[tuple[int, int, int], tuple[ImageDataset, ImageDataset]] = {}


def _resized_once(dataset: ImageDataset, side: int) -> ImageDataset:
    """``resize.resized(dataset, side)``, memoised on the storage of ``dataset``'s images."""
    key = (dataset.train_images.data_ptr(), dataset.test_images.data_ptr(), side)
    if key not in _RESIZED:
        if len(_RESIZED) >= 2:
            del _RESIZED[next(iter(_RESIZED))]
        _RESIZED[key] = (dataset, resized(dataset, side))
    return _RESIZED[key][1]


def _load_as_stored(data: DataConfig) -> ImageDataset:
    """The data set ``data`` names at its own size (a folder: at ``data.image_size``)."""
    if data.dataset == "mnist":
        return _from_mnist(load_mnist(data.dir, data.source))  # load_mnist keeps its own cache
    options = {"data_dir": data.dir} if data.dir is not None else {}
    if data.dataset == "npz":
        options = {"path": data.dir}  # the config keeps data.dir set for npz
    if data.dataset == "folder":
        options.update(channels=data.channels, image_size=data.image_size)
    if data.test_fraction is not None:
        options["test_fraction"] = data.test_fraction
    return _load(data.dataset, tuple(sorted(options.items())), _stamp(data))


@functools.lru_cache(maxsize=4)
def _load(name: str, options: tuple[tuple[str, object], ...], stamp: tuple) -> ImageDataset:
    """``load_dataset`` cached by its arguments and ``stamp`` (:func:`_stamp`)."""
    return load_dataset(name, **dict(options))


def _stamp(data: DataConfig) -> tuple:
    """What else decides what ``data`` loads: the environment that steers the search and each
    file's path, size and modification time under ``data.dir`` and the source's cache folder."""
    environment = tuple(os.environ.get(v) for v in (ENV_VAR, OFFLINE_VAR, "XDG_CACHE_HOME"))
    files = []
    for root in (data.dir, cache_dir(data.dataset)):
        if root is None:
            continue
        root = Path(root)
        paths = [root] if root.is_file() else sorted(root.rglob("*")) if root.is_dir() else []
        files += [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths if p.is_file()]
    return environment, tuple(files)


def _from_mnist(mnist: MnistData) -> ImageDataset:
    """``load_mnist``'s data as an ``ImageDataset``: the same tensors, a channel axis added."""
    if mnist.provenance["source"] == "embedded":
        return load_mnist_embedded()
    provenance = mnist.provenance
    return ImageDataset(
        mnist.train_images.unsqueeze(1),  # (N, 28, 28) -> (N, 1, 28, 28), a view
        mnist.train_labels,
        mnist.test_images.unsqueeze(1),
        mnist.test_labels,
        member_spec("mnist"),
        Provenance(
            source="mnist",
            files={name: {"md5": md5} for name, md5 in provenance["md5"].items()},
            n_train=provenance["n_train"],
            n_test=provenance["n_test"],
            details={
                "folder": provenance["folder"],
                **{k: provenance[k] for k in ("unverified", "unverified_note") if k in provenance},
            },
        ),
    )


# The shape (C, H, W) of a run whose data record holds no spec: every such run trained on the
# report's 28x28 gray images (MNIST and its look-alikes).
UNRECORDED_SHAPE = member_spec("mnist").shape


def recorded_shape(record: dict | None) -> tuple[int, int, int]:
    """The image shape (C, H, W) of the data a run trained on, from its :func:`data_record`
    (the checkpoint's or export's ``data``): what builds its network and draws its noise when
    the data itself is not at hand. A record without a spec (or none) gives
    :data:`UNRECORDED_SHAPE`."""
    spec = (record or {}).get("dataset", {}).get("spec")
    if spec is None:
        return UNRECORDED_SHAPE
    return DatasetSpec.from_dict(spec).shape


def data_record(dataset: ImageDataset) -> dict:
    """What a run records of ``dataset`` (JSON): ``source``, ``folder``, ``n_train``, ``n_test``,
    ``md5`` (file name -> md5, for the files that have one) and ``dataset``
    (:meth:`ImageDataset.to_dict`)."""
    provenance = dataset.provenance
    return {
        "source": RECORDED_SOURCE.get(provenance.source, provenance.source),
        "folder": provenance.details.get("folder"),
        "n_train": provenance.n_train,
        "n_test": provenance.n_test,
        "md5": {name: sums["md5"] for name, sums in provenance.files.items() if "md5" in sums},
        "dataset": dataset.to_dict(),
    }
