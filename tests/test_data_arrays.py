"""Images as arrays: an .npz file of each layout and each bad one, and arrays or tensors from
Python, with the seeded held-out split they share."""

import hashlib

import numpy as np
import pytest
import torch

from diffusiontools.data.arrays import held_out
from diffusiontools.data.sources import load_dataset
from diffusiontools.errors import UserError

N = 10


def images_nchw(channels: int = 3) -> np.ndarray:
    """uint8 (N, C, 4, 5), image i filled with i and its channel c offset by 100 * c."""
    base = np.arange(N, dtype=np.uint8)[:, None, None, None] + np.zeros(
        (1, channels, 4, 5), np.uint8
    )
    return base + (100 * np.arange(channels, dtype=np.uint8))[None, :, None, None]


@pytest.mark.parametrize(
    "layout, array, shape",
    [
        ("(N, H, W)", images_nchw(1)[:, 0], (1, 4, 5)),
        ("(N, H, W, C)", images_nchw(3).transpose(0, 2, 3, 1), (3, 4, 5)),
        ("(N, H, W, C)", images_nchw(1).transpose(0, 2, 3, 1), (1, 4, 5)),
        ("(N, C, H, W)", images_nchw(3), (3, 4, 5)),
    ],
)
def test_npz_layouts_become_nchw(tmp_path, layout, array, shape):
    np.savez(tmp_path / "x.npz", images=array, labels=np.arange(N) % 3)
    data = load_dataset("npz", path=tmp_path / "x.npz")
    assert data.spec.shape == shape and data.spec.class_names == ("class 0", "class 1", "class 2")
    assert data.provenance.details["layout"] == layout
    transposed = [f"{N} images transposed from (N, H, W, C) to (N, C, H, W)"]
    assert list(data.provenance.conversions) == (transposed if "C)" in layout else [])
    images = torch.cat([data.train_images, data.test_images])
    labels = torch.cat([data.train_labels, data.test_labels])
    assert (images[:, :, 0, 0] == images[:, :1, 0, 0] + 100 * torch.arange(shape[0])).all()
    assert (labels == images[:, 0, 0, 0].long() % 3).all()  # each label stays with its image
    assert (len(data.train_images), len(data.test_images)) == (9, 1)
    assert (
        data.provenance.files[str(tmp_path / "x.npz")]["sha256"]
        == hashlib.sha256((tmp_path / "x.npz").read_bytes()).hexdigest()
    )


def test_npz_without_labels_is_unlabelled(tmp_path):
    np.savez(tmp_path / "x.npz", images=images_nchw(1))
    data = load_dataset("npz", path=str(tmp_path / "x.npz"), num_classes=None)
    assert data.spec.num_classes == 0 and data.train_labels is None


@pytest.mark.parametrize(
    "arrays, message",
    [
        (
            {"images": images_nchw().astype(np.float32)},
            "x.npz key 'images' has dtype float32; .*uint8",
        ),
        (
            {"images": np.zeros((N, 4), np.uint8)},
            r"key 'images' has shape \(10, 4\); images must be",
        ),
        ({"images": np.zeros((N, 2, 4, 5), np.uint8)}, r"has shape \(10, 2, 4, 5\)"),
        ({"images": images_nchw(), "labels": np.zeros(N) + 0.5}, "key 'labels' has dtype float64"),
        (
            {"images": images_nchw(), "labels": np.zeros((N, 1), int)},
            r"key 'labels' has shape \(10, 1\)",
        ),
        ({"images": images_nchw(), "labels": np.arange(N) - 1}, "key 'labels' holds label -1"),
        (
            {"images": images_nchw(), "label": np.arange(N)},
            "holds key 'label'; the allowed keys are",
        ),
        ({"labels": np.arange(N)}, "has no key 'images'"),
        ({"images": np.array([None] * N)}, "key 'images' is not a readable plain array"),
    ],
)
def test_bad_npz_is_refused_naming_file_and_key(tmp_path, arrays, message):
    np.savez(tmp_path / "x.npz", **arrays)
    with pytest.raises(UserError, match=message):
        load_dataset("npz", path=tmp_path / "x.npz")


def test_labels_shifted_below_zero_are_refused_naming_the_value(tmp_path):
    """Labels in -1..1 are not read as a class count of 2 with a bad label: the count comes from
    the labels only once they are class indices."""
    np.savez(tmp_path / "x.npz", images=images_nchw(), labels=np.arange(N) % 3 - 1)
    with pytest.raises(UserError) as refused:
        load_dataset("npz", path=tmp_path / "x.npz")
    assert str(refused.value) == (
        f"{tmp_path / 'x.npz'} key 'labels' holds label -1; labels must be non-negative integers "
        "0..K-1 numbering the K classes"
    )


def test_npz_labels_beyond_num_classes_and_bad_files(tmp_path):
    np.savez(tmp_path / "x.npz", images=images_nchw(), labels=np.arange(N))
    with pytest.raises(UserError, match="holds label 4; labels must lie in 0..3"):
        load_dataset("npz", path=tmp_path / "x.npz", num_classes=4)
    np.save(tmp_path / "bare.npy", images_nchw())
    with pytest.raises(UserError, match="bare.npy holds one bare array"):
        load_dataset("npz", path=tmp_path / "bare.npy")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(UserError, match="junk.npz is not a readable .npz archive"):
        load_dataset("npz", path=tmp_path / "junk.npz")
    with pytest.raises(UserError, match="missing.npz does not exist"):
        load_dataset("npz", path=tmp_path / "missing.npz")


@pytest.mark.parametrize("as_tensor", [False, True])
def test_memory_arrays_record_the_checksum_of_their_bytes(as_tensor):
    images, labels = images_nchw(1).transpose(0, 2, 3, 1), np.arange(N) % 2
    given = (torch.from_numpy(images), torch.from_numpy(labels)) if as_tensor else (images, labels)
    data = load_dataset("memory", images=given[0], labels=given[1], class_names=("even", "odd"))
    assert data.provenance.source == "memory" and data.spec.class_names == ("even", "odd")
    assert data.provenance.files == {
        "images": {"sha256": hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()},
        "labels": {"sha256": hashlib.sha256(labels.tobytes()).hexdigest()},
    }
    assert data.provenance.details["images_array"] == "uint8 (10, 4, 5, 1)"
    assert data.spec.shape == (1, 4, 5) and len(data.test_images) == 1


def test_memory_refuses_non_arrays_and_floats():
    with pytest.raises(UserError, match="images is a list; pass a NumPy array or a torch tensor"):
        load_dataset("memory", images=[[0]])
    with pytest.raises(UserError, match="images has dtype float32; images must be uint8"):
        load_dataset("memory", images=torch.zeros(N, 1, 4, 4))
    with pytest.raises(UserError, match=r"labels has shape \(3,\); labels must be \(10,\)"):
        load_dataset("memory", images=images_nchw(), labels=np.arange(3))


def test_held_out_split_is_seeded_disjoint_and_never_empty():
    train, test = held_out(10, 0.25, seed=3, where="x")
    assert len(test) == 2 and sorted([*train, *test]) == list(range(10))  # round(2.5) == 2
    again = held_out(10, 0.25, seed=3, where="x")
    assert (again[0] == train).all() and (again[1] == test).all()
    assert [len(part) for part in held_out(2, 0.01, 0, "x")] == [1, 1]
    assert [len(part) for part in held_out(3, 0.99, 0, "x")] == [1, 2]
    with pytest.raises(UserError, match="x holds 1 image; at least 2 are needed"):
        held_out(1, 0.1, 0, "x")
    with pytest.raises(UserError, match="test_fraction=1.0 is invalid; use a value in"):
        held_out(10, 1.0, 0, "x")


def test_classes_given_by_number_do_not_pass_for_digits():
    from diffusiontools.data.dataset import are_digits, digit_names, unnamed_classes

    assert digit_names(3) == ("0", "1", "2") and are_digits(digit_names(10))
    assert unnamed_classes(2) == ("class 0", "class 1") and not are_digits(unnamed_classes(2))
    assert not are_digits(()) and not are_digits(("1", "2"))  # none, or not from 0
