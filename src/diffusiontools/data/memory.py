"""Images handed over from Python: ``(images, labels)`` as NumPy arrays or torch tensors.

Nothing on disk says where such data came from, so the source is recorded as "memory" with the
sha256 of each array's bytes as given (``provenance.files``; the bytes only) and its dtype and
shape (``details["images_array"]``, ``details["labels_array"]``). What identifies the data on a
resume is the data set's fingerprint (``ImageDataset.fingerprint``): the images as (N, C, H, W)
and the labels as int64, so the same values in another layout or integer type are the same data.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from ..errors import UserError
from .arrays import class_labels, split_dataset, to_nchw
from .dataset import ImageDataset, unnamed_classes

# The share of the arrays held out as the test split when no data.test_fraction is given.
TEST_FRACTION = 0.1


def load_memory(
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor | None = None,
    num_classes: int | None = None,
    class_names: tuple[str, ...] | None = None,
    test_fraction: float = TEST_FRACTION,
    seed: int = 0,
) -> ImageDataset:
    """Wrap uint8 ``images`` in one of :data:`~diffusiontools.data.arrays.LAYOUTS` and optional
    integer ``labels`` (N,) as an ``ImageDataset`` with a held-out test split of ``test_fraction``
    (in (0, 1)) under ``seed`` (``arrays.held_out``).

    The classes are ``class_names`` when given, else "class 0".."class K-1" with K
    ``num_classes`` or the largest label + 1 (not "0".."K-1", which name digits: give those
    as ``class_names`` where the classes are digits, so that ``digit=`` takes them). Raises
    ``UserError`` naming ``images`` or ``labels`` when one is of the wrong type, dtype or
    shape, or a label is out of range.
    """
    arrays = {"images": _numpy(images, "images")}
    if labels is not None:
        arrays["labels"] = _numpy(labels, "labels")
    if class_names is not None:
        num_classes = len(class_names)

    nchw, layout = to_nchw(arrays["images"], "images")
    labels_int64, count = None, 0
    if labels is not None:
        labels_int64, count = class_labels(arrays["labels"], len(nchw), "labels", num_classes)
    names = tuple(class_names) if class_names is not None else unnamed_classes(count)
    return split_dataset(
        nchw,
        labels_int64,
        names,
        test_fraction,
        seed,
        "images",
        source="memory",
        files={
            key: {"sha256": hashlib.sha256(array.tobytes()).hexdigest()}
            for key, array in arrays.items()
        },
        details={
            "layout": layout,
            **{f"{key}_array": f"{array.dtype} {array.shape}" for key, array in arrays.items()},
        },
    )


def _numpy(array: object, name: str) -> np.ndarray:
    """A C-contiguous NumPy copy-or-view of an array or a tensor (on any device)."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    if not isinstance(array, np.ndarray):
        raise UserError(f"{name} is a {type(array).__name__}; pass a NumPy array or a torch tensor")
    return np.ascontiguousarray(array)
