"""ImageDataset, DatasetSpec and Provenance: what construction refuses, and the dict round trip;
load_dataset's registry and option checks."""

import json

import pytest
import torch

from diffusiontools.data.dataset import DatasetSpec, ImageDataset, Provenance
from diffusiontools.data.sources import SOURCES, load_dataset
from diffusiontools.errors import UserError

SPEC = DatasetSpec(3, 4, 5, 2, ("cat", "dog"))


def make(**changes) -> ImageDataset:
    """A valid 3-train/2-test RGB 4x5 data set with two classes, with ``changes`` applied."""
    fields = {
        "train_images": torch.zeros(3, 3, 4, 5, dtype=torch.uint8),
        "train_labels": torch.tensor([0, 1, 1]),
        "test_images": torch.zeros(2, 3, 4, 5, dtype=torch.uint8),
        "test_labels": torch.tensor([1, 0]),
        "spec": SPEC,
        "provenance": Provenance("memory", {"images": {"sha256": "ab"}}, 3, 2),
    }
    return ImageDataset(**{**fields, **changes})


def test_valid_dataset_round_trips_through_a_json_dict():
    data = make()
    as_json = json.loads(json.dumps(data.to_dict()))
    assert DatasetSpec.from_dict(as_json["spec"]) == SPEC
    assert Provenance.from_dict(as_json["provenance"]) == data.provenance
    assert as_json["spec"] == {
        "channels": 3, "height": 4, "width": 5, "num_classes": 2, "class_names": ["cat", "dog"],
    }  # fmt: skip
    assert SPEC.shape == (3, 4, 5)
    assert as_json["fingerprint"] == data.fingerprint() and len(data.fingerprint()) == 64


def test_fingerprint_changes_with_one_pixel():
    images = torch.zeros(3, 3, 4, 5, dtype=torch.uint8)
    images[2, 1, 3, 4] = 1
    assert make(train_images=images).fingerprint() != make().fingerprint()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"train_images": torch.zeros(3, 3, 4, 5)}, "train_images is torch.float32; it must be"),
        ({"test_images": torch.zeros(2, 4, 5, dtype=torch.uint8)}, r"test_images has shape \(2, 4"),
        ({"test_images": torch.zeros(2, 1, 4, 5, dtype=torch.uint8)}, r"needs \(N, 3, 4, 5\)"),
        ({"train_labels": torch.tensor([0, 2, 1])}, "train_labels holds label 2; .* 0..1"),
        ({"test_labels": torch.tensor([-1, 0])}, "test_labels holds label -1"),
        ({"train_labels": torch.tensor([0, 1])}, r"train_labels has shape \(2,\); .* \(3,\)"),
        (
            {"train_labels": torch.tensor([0, 1, 1], dtype=torch.int32)},
            "train_labels is torch.int32",
        ),
        ({"test_labels": None}, "test_labels is NoneType"),
        ({"train_images": torch.zeros(0, 3, 4, 5, dtype=torch.uint8)}, "holds no images"),
        ({"provenance": Provenance("memory", {}, 4, 2)}, "provenance n_train=4 but"),
    ],
)
def test_construction_refuses_in_one_sentence(changes, message):
    with pytest.raises(UserError, match=message):
        make(**changes)


def test_unlabelled_dataset_takes_no_labels():
    unlabelled = DatasetSpec(3, 4, 5)
    data = make(train_labels=None, test_labels=None, spec=unlabelled)
    assert data.spec.num_classes == 0 and data.spec.class_names == ()
    with pytest.raises(UserError, match="train_labels are given but num_classes=0"):
        make(test_labels=None, spec=unlabelled)


@pytest.mark.parametrize(
    "fields, message",
    [
        ((2, 8, 8), "channels=2 is not allowed; use 1 .* or 3"),
        ((1, 0, 8), "height=0 is invalid"),
        ((1, 8, 8, 2, ("a",)), "class_names has 1 names for num_classes=2"),
        ((1, 8, 8, 2, ("a", "a")), "repeats a name"),
        ((1, 8, 8, -1), "num_classes=-1 is invalid"),
    ],
)
def test_spec_refuses_in_one_sentence(fields, message):
    with pytest.raises(UserError, match=message):
        DatasetSpec(*fields)


def test_from_dict_names_unknown_and_missing_keys():
    with pytest.raises(UserError, match="unknown key 'depth'"):
        DatasetSpec.from_dict({**SPEC.to_dict(), "depth": 3})
    with pytest.raises(UserError, match="lacks key 'n_test'"):
        Provenance.from_dict({"source": "npz", "files": {}, "n_train": 3})


def test_load_dataset_checks_name_and_options():
    assert {"mnist", "fashion_mnist", "kmnist", "cifar10", "folder", "npz", "memory"} <= set(
        SOURCES
    )
    with pytest.raises(UserError, match="data set 'imagenet' is unknown; use one of mnist, "):
        load_dataset("imagenet")
    with pytest.raises(UserError, match="'cifar10' takes no option 'channels'; .* data_dir, dow"):
        load_dataset("cifar10", channels=3)
    with pytest.raises(UserError, match="data set 'folder' needs option 'data_dir'"):
        load_dataset("folder", channels=3)


def test_fingerprint_tells_splits_apart_even_when_their_bytes_join_up_alike():
    moved = make(
        train_images=torch.zeros(2, 3, 4, 5, dtype=torch.uint8),
        train_labels=torch.tensor([0, 1]),
        test_images=torch.zeros(3, 3, 4, 5, dtype=torch.uint8),
        test_labels=torch.tensor([1, 1, 0]),
        provenance=Provenance("memory", {}, 2, 3),
    )
    assert moved.fingerprint() != make().fingerprint()
