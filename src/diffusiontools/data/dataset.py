"""An image data set in memory: what every source returns and everything downstream reads.

The images decide the geometry and the labels the classes: a consumer takes channels, height,
width and the number of classes from ``ImageDataset.spec``, never from constants. ``spec`` and
``provenance`` serialise to plain dicts (``to_dict``/``from_dict``) so that a config, a checkpoint
or an export can carry them without the pixels.
"""

from __future__ import annotations

import hashlib
from dataclasses import MISSING, asdict, dataclass, field, fields

import torch

from ..errors import UserError

CHANNELS = (1, 3)  # grayscale or RGB: what the networks, figures and image files handle


def digit_names(count: int) -> tuple[str, ...]:
    """The names of digit classes: "0".."count-1" (MNIST's, the 8x8 digits')."""
    return tuple(str(k) for k in range(count))


def are_digits(class_names) -> bool:
    """Whether ``class_names`` name digits ("0".."K-1"): ``digit=`` takes them, and tables
    say "digits 0-9"."""
    return bool(class_names) and tuple(class_names) == digit_names(len(class_names))


def unnamed_classes(count: int) -> tuple[str, ...]:
    """Names for classes given by number only (arrays, NPZ files): "class 0".."class count-1",
    which do not pass for digits."""
    return tuple(f"class {k}" for k in range(count))


@dataclass(frozen=True)
class DatasetSpec:
    """The shape and classes of a data set's images.

    ``channels`` is 1 or 3, ``height``/``width`` are positive, ``num_classes`` is 0 for an
    unlabelled data set, and ``class_names`` holds one distinct name per class (empty when
    unlabelled). Raises ``UserError`` naming the bad field otherwise.
    """

    channels: int
    height: int
    width: int
    num_classes: int = 0
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(self.class_names))
        if self.channels not in CHANNELS:
            raise UserError(f"channels={self.channels} is not allowed; use 1 (gray) or 3 (RGB)")
        for key in ("height", "width"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise UserError(f"{key}={getattr(self, key)!r} is invalid; use a positive integer")
        if not isinstance(self.num_classes, int) or self.num_classes < 0:
            raise UserError(
                f"num_classes={self.num_classes!r} is invalid; use 0 (unlabelled) or more"
            )
        if len(self.class_names) != self.num_classes:
            raise UserError(
                f"class_names has {len(self.class_names)} names for "
                f"num_classes={self.num_classes}; give one name per class"
            )
        if len(set(self.class_names)) != len(self.class_names):
            raise UserError(
                f"class_names {list(self.class_names)} repeats a name; names must differ"
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        """One image's shape, (C, H, W)."""
        return (self.channels, self.height, self.width)

    def to_dict(self) -> dict:
        return {**asdict(self), "class_names": list(self.class_names)}

    @classmethod
    def from_dict(cls, values: dict) -> DatasetSpec:
        return cls(**_fields(cls, values, "data set spec"))


@dataclass(frozen=True)
class Provenance:
    """Where the images came from, so a run folder can say exactly which data it saw.

    ``source`` is the registry name ("mnist", "folder", "memory", ...); ``files`` maps each file
    read (or, for arrays, each array) to its checksums, e.g. ``{"md5": ..., "sha256": ...}``;
    ``n_train``/``n_test`` count the images; ``conversions`` lists, one sentence each, every change
    made to the pixels or their layout on the way in (empty when none); ``details`` holds the rest
    (folder, split seed, package version), JSON-serialisable.
    """

    source: str
    files: dict[str, dict[str, str]]
    n_train: int
    n_test: int
    conversions: tuple[str, ...] = ()
    details: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "conversions", tuple(self.conversions))

    def to_dict(self) -> dict:
        return {**asdict(self), "conversions": list(self.conversions)}

    @classmethod
    def from_dict(cls, values: dict) -> Provenance:
        return cls(**_fields(cls, values, "data provenance"))


@dataclass(frozen=True)
class ImageDataset:
    """Train and test images with their labels, spec and provenance.

    Images are uint8 ``(N, C, H, W)`` in 0..255 with ``(C, H, W) == spec.shape``; labels are int64
    ``(N,)`` in ``0..spec.num_classes - 1``, or None for both splits when ``num_classes`` is 0.
    Each split holds at least one image and ``provenance`` counts them. Construction raises
    ``UserError`` naming the first field that breaks this.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor | None
    test_images: torch.Tensor
    test_labels: torch.Tensor | None
    spec: DatasetSpec
    provenance: Provenance

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            images = getattr(self, f"{split}_images")
            labels = getattr(self, f"{split}_labels")
            _check_images(f"{split}_images", images, self.spec)
            _check_labels(f"{split}_labels", labels, len(images), self.spec.num_classes)
            count = getattr(self.provenance, f"n_{split}")
            if count != len(images):
                raise UserError(
                    f"provenance n_{split}={count} but {split}_images holds {len(images)}"
                )

    def fingerprint(self) -> str:
        """sha256 of the images and labels as loaded (after any conversion), each preceded by
        its name and shape: equal fingerprints mean the very same splits of pixels and labels,
        whatever files they came from."""
        digest = hashlib.sha256()
        for name in ("train_images", "train_labels", "test_images", "test_labels"):
            tensor = getattr(self, name)
            shape = None if tensor is None else tuple(tensor.shape)
            digest.update(f"{name} {shape}\n".encode())
            if tensor is not None:
                digest.update(tensor.contiguous().numpy().tobytes())
        return digest.hexdigest()

    def to_dict(self) -> dict:
        """``{"spec": ..., "provenance": ..., "fingerprint": ...}``: the data set without pixels."""
        return {
            "spec": self.spec.to_dict(),
            "provenance": self.provenance.to_dict(),
            "fingerprint": self.fingerprint(),
        }


def _check_images(name: str, images: torch.Tensor, spec: DatasetSpec) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        kind = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
        raise UserError(f"{name} is {kind}; it must be a uint8 tensor (N, C, H, W) in 0..255")
    if images.dim() != 4 or tuple(images.shape[1:]) != spec.shape:
        raise UserError(
            f"{name} has shape {tuple(images.shape)}; the spec needs (N, {spec.channels}, "
            f"{spec.height}, {spec.width})"
        )
    if len(images) == 0:
        raise UserError(f"{name} holds no images; each split needs at least one")


def _check_labels(name: str, labels: torch.Tensor | None, n: int, num_classes: int) -> None:
    if num_classes == 0:
        if labels is not None:
            raise UserError(f"{name} are given but num_classes=0; pass None or set the classes")
        return
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64:
        kind = labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise UserError(f"{name} is {kind}; it must be an int64 tensor (N,) of class indices")
    if tuple(labels.shape) != (n,):
        raise UserError(f"{name} has shape {tuple(labels.shape)}; it must be ({n},), one per image")
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if len(bad):
        raise UserError(
            f"{name} holds label {int(bad[0])}; labels must lie in 0..{num_classes - 1}"
        )


def _fields(cls: type, values: dict, what: str) -> dict:
    """``values`` checked against ``cls``'s fields: no unknown key, every required key present."""
    allowed = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise UserError(f"{what} has unknown key {unknown[0]!r}; its keys are {', '.join(allowed)}")
    required = [n for n, f in allowed.items() if f.default is f.default_factory is MISSING]
    missing = [n for n in required if n not in values]
    if missing:
        raise UserError(f"{what} lacks key {missing[0]!r}; it needs {', '.join(required)}")
    return dict(values)
