"""Images handed over as arrays: their layouts, their labels and the seeded held-out test split.

Shared by the sources that bring no test set of their own (a flat folder, an ``.npz`` file, arrays
from Python, scikit-learn's digits): the test images are the first ``max(1, round(N *
test_fraction))`` of one seeded ``torch.randperm(N)``, the train images the rest in that order, so
both splits mix the classes and the same seed gives the same split on every machine.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import UserError
from .dataset import CHANNELS, DatasetSpec, ImageDataset, Provenance

LAYOUTS = "(N, H, W), (N, H, W, C) or (N, C, H, W) with C = 1 or 3"
CHANNELS_LAST = "(N, H, W, C)"


def to_nchw(images: np.ndarray, where: str) -> tuple[np.ndarray, str]:
    """uint8 images in one of ``LAYOUTS`` -> uint8 (N, C, H, W) and the layout found.

    Channels-first when the second axis is 1 or 3, else channels-last when the last one is.
    ``where`` names the array in errors (e.g. "x.npz key 'images'").
    """
    if images.dtype != np.uint8:
        raise UserError(f"{where} has dtype {images.dtype}; images must be uint8 in 0..255")
    if images.ndim == 3:
        return images[:, None], "(N, H, W)"  # -> (N, 1, H, W)
    if images.ndim == 4 and images.shape[1] in CHANNELS:
        return images, "(N, C, H, W)"
    if images.ndim == 4 and images.shape[3] in CHANNELS:
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2)), CHANNELS_LAST
    raise UserError(f"{where} has shape {images.shape}; images must be {LAYOUTS}")


def class_labels(
    labels: np.ndarray, n: int, where: str, num_classes: int | None = None
) -> tuple[np.ndarray, int]:
    """Integer labels (n,) -> int64 labels and the class count (``num_classes``, else max + 1)."""
    if labels.dtype.kind not in "iu":
        raise UserError(f"{where} has dtype {labels.dtype}; labels must be integers")
    if labels.shape != (n,):
        raise UserError(f"{where} has shape {labels.shape}; labels must be ({n},), one per image")
    negative = labels[labels < 0]
    if len(negative):  # before the count is inferred from the labels, which a shift misleads
        raise UserError(
            f"{where} holds label {negative[0]}; labels must be non-negative integers 0..K-1 "
            "numbering the K classes"
        )
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if n else 0
    bad = labels[labels >= num_classes]
    if len(bad):
        raise UserError(f"{where} holds label {bad[0]}; labels must lie in 0..{num_classes - 1}")
    return labels.astype(np.int64), num_classes


def held_out(n: int, test_fraction: float, seed: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) index arrays into ``range(n)``, as the module docstring says."""
    if not 0.0 < test_fraction < 1.0:
        raise UserError(f"test_fraction={test_fraction} is invalid; use a value in (0, 1)")
    if n < 2:
        raise UserError(
            f"{where} holds {n} image{'s' * (n != 1)}; at least 2 are needed, one to train on and "
            "one to test"
        )
    n_test = min(n - 1, max(1, round(n * test_fraction)))
    order = seeded_order(n, seed)
    return order[n_test:], order[:n_test]


def seeded_order(n: int, seed: int) -> np.ndarray:
    """``torch.randperm(n)`` under ``seed``: the same order on every machine."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()


def split_dataset(
    images: np.ndarray,
    labels: np.ndarray | None,
    class_names: tuple[str, ...],
    test_fraction: float,
    seed: int,
    where: str,
    **provenance: object,
) -> ImageDataset:
    """An ``ImageDataset`` of uint8 (N, C, H, W) ``images`` with a held-out test split.

    ``labels`` are int64 (N,) or None (unlabelled, ``class_names`` empty); ``where`` names the
    data in errors; ``provenance`` holds ``Provenance``'s ``source``, ``files`` and optionally
    ``conversions`` and ``details``, to which the split's fraction and seed are added (and, for
    ``details["layout"]`` channels-last, the transposition to ``conversions``).
    """
    train, test = held_out(len(images), test_fraction, seed, where)
    details = {**provenance.pop("details", {}), "test_fraction": test_fraction, "split_seed": seed}
    if details.get("layout") == CHANNELS_LAST:  # the pixels moved: a conversion, on record
        provenance["conversions"] = (
            *provenance.get("conversions", ()),
            f"{len(images)} images transposed from {CHANNELS_LAST} to (N, C, H, W)",
        )

    def tensor(array: np.ndarray | None, index: np.ndarray) -> torch.Tensor | None:
        return None if array is None else torch.from_numpy(np.ascontiguousarray(array[index]))

    return ImageDataset(
        tensor(images, train),
        tensor(labels, train),
        tensor(images, test),
        tensor(labels, test),
        DatasetSpec(*images.shape[1:], len(class_names), class_names),
        Provenance(n_train=len(train), n_test=len(test), details=details, **provenance),
    )
