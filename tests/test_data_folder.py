"""A folder of one's own images: flat, with classes, with train/ and test/; gray, RGB and odd
sizes converted and recorded; every bad input refused naming the file."""

import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffusiontools.data.sources import load_dataset
from diffusiontools.errors import UserError


def save(path: Path, mode: str = "L", size: tuple[int, int] = (6, 4), value: int = 50) -> Path:
    """An image of ``size`` (width, height) filled with ``value`` (per channel in colour)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = {"L": value, "RGB": (value, 0, 255), "RGBA": (value, 0, 255, 128)}[mode]
    Image.new(mode, size, colour).save(path)
    return path


def test_flat_folder_is_unlabelled_with_a_held_out_test_image(tmp_path):
    for i in range(5):
        save(tmp_path / f"{i}.png", value=10 * i)
    (tmp_path / ".DS_Store").write_bytes(b"\0junk")  # hidden: skipped
    data = load_dataset("folder", data_dir=str(tmp_path))
    assert data.spec.shape == (1, 4, 6) and data.spec.num_classes == 0
    assert data.train_labels is None and data.test_labels is None
    assert (len(data.train_images), len(data.test_images)) == (4, 1)
    values = sorted(int(x[0, 0, 0]) for x in [*data.train_images, *data.test_images])
    assert values == [0, 10, 20, 30, 40]
    assert data.provenance.conversions == () and data.provenance.details["split_seed"] == 0
    again = load_dataset("folder", data_dir=str(tmp_path))
    assert again.fingerprint() == data.fingerprint()
    assert (
        load_dataset("folder", data_dir=str(tmp_path), seed=1).fingerprint() != data.fingerprint()
    )


def test_class_subfolders_name_the_classes_in_sorted_order(tmp_path):
    for name, value in (("zebra", 200), ("ant", 20)):
        for i in range(3):
            save(tmp_path / name / f"{i}.jpg", value=value)
    data = load_dataset("folder", data_dir=str(tmp_path), test_fraction=0.5)
    assert data.spec.class_names == ("ant", "zebra") and data.spec.num_classes == 2
    images = [*data.train_images, *data.test_images]
    labels = [*data.train_labels.tolist(), *data.test_labels.tolist()]
    for image, label in zip(images, labels, strict=True):  # JPEG is lossy: near, not equal
        assert abs(int(image.float().mean()) - (20, 200)[label]) <= 2
    assert sorted(labels) == [0, 0, 0, 1, 1, 1] and len(data.test_images) == 3


def test_train_and_test_subfolders_are_the_splits(tmp_path):
    for split, n in (("train", 4), ("test", 2)):
        for i in range(n):
            save(tmp_path / split / ("a" if i % 2 else "b") / f"{i}.png")
    data = load_dataset("folder", data_dir=str(tmp_path))
    assert (len(data.train_images), len(data.test_images)) == (4, 2)
    assert data.spec.class_names == ("a", "b") and sorted(data.test_labels.tolist()) == [0, 1]
    assert "split_seed" not in data.provenance.details
    assert data.provenance.details["order"] == "each split in torch.randperm order, seed 0"


def test_mixed_gray_and_rgb_become_rgb_and_the_conversion_is_recorded(tmp_path):
    save(tmp_path / "gray.png", "L", value=90)
    save(tmp_path / "rgb.png", "RGB", value=30)
    save(tmp_path / "alpha.png", "RGBA", value=60)
    data = load_dataset("folder", data_dir=str(tmp_path), test_fraction=0.3)
    assert data.spec.channels == 3
    images = {int(x[0, 0, 0]): x for x in [*data.train_images, *data.test_images]}
    assert images[90][:, 0, 0].tolist() == [90, 90, 90]  # gray repeated
    assert images[60][:, 0, 0].tolist() == [60, 0, 255]  # alpha dropped
    assert set(data.provenance.conversions) == {
        "1 of 3 images of mode L converted to RGB by Pillow",
        "1 of 3 images of mode RGBA converted to RGB by Pillow",
    }


def test_channels_1_turns_colour_to_luma(tmp_path):
    save(tmp_path / "a.png", "RGB", value=100)
    save(tmp_path / "b.png", "L", value=7)
    data = load_dataset("folder", data_dir=str(tmp_path), channels=1)
    images = sorted(int(x[0, 0, 0]) for x in [*data.train_images, *data.test_images])
    assert images == [7, round(100 * 0.299 + 255 * 0.114)]  # ITU-R 601-2: 0.299 R + 0.114 B
    assert data.provenance.conversions == ("1 of 2 images of mode RGB converted to L by Pillow",)


def test_odd_sizes_are_resized_and_centre_cropped_to_image_size(tmp_path):
    wide = np.zeros((4, 12), dtype=np.uint8)
    wide[:, 4:8] = 255  # a bright centre third: all that the square crop keeps
    Image.fromarray(wide).save(tmp_path / "wide.png")
    save(tmp_path / "small.png", size=(2, 2), value=80)
    save(tmp_path / "right.png", size=(4, 4), value=5)
    data = load_dataset("folder", data_dir=str(tmp_path), image_size=4, test_fraction=0.3)
    assert data.spec.shape == (1, 4, 4)
    images = {int(x.float().mean()): x for x in [*data.train_images, *data.test_images]}
    assert sorted(images) == [5, 80, 255]
    assert data.provenance.conversions == (
        "2 of 3 images resized (bicubic) and centre-cropped to 4x4",
    )


def test_mixed_sizes_without_image_size_name_two_files(tmp_path):
    save(tmp_path / "a.png", size=(6, 4))
    save(tmp_path / "b.png", size=(8, 8))
    with pytest.raises(UserError, match=r"a.png is 6x4 but .*b.png is 8x8; set image_size"):
        load_dataset("folder", data_dir=str(tmp_path))


@pytest.mark.parametrize(
    "layout, message",
    [
        ({}, "holds no .png/.jpg/.jpeg images"),
        ({"only.png": "image"}, "holds 1 image; at least 2 are needed"),
        ({"a.png": "image", "b.png": b"not a png"}, r"b.png cannot be decoded as an image"),
        ({"a.png": "image", "c.png": "truncated"}, r"c.png cannot be decoded as an image"),
        ({"a.png": "image", "notes.txt": b"hi"}, r"notes.txt is not a .png/.jpg/.jpeg image"),
        ({"a.png": "image", "deep.png": "16-bit"}, r"deep.png has Pillow mode I;16"),
        ({"x.png": "image", "cls/y.png": "image"}, r"x.png lies beside the class subfolders"),
        ({"cls/y.png": "image", "empty/": None}, r"class folder .*empty holds no images"),
        ({"cls/sub/y.png": "image"}, r"sub is a folder inside class folder"),
        ({"train/a.png": "image", "train/b.png": "image"}, "has train/ but no test/"),
        ({"train/a/x.png": "image", "test/b/y.png": "image"}, r"test/b is a class that .*train"),
        ({"train/a/x.png": "image", "test/y.png": "image"}, r"only one of .* has class subfolders"),
        ({"train/x.png": "image", "test/y.png": "image", "z.png": "image"}, "beside train/ and"),
    ],
)
def test_bad_folders_are_refused_naming_the_file(tmp_path, layout, message):
    for name, content in layout.items():
        path = tmp_path / name
        if content is None:
            path.mkdir(parents=True)
        elif content == "image":
            save(path)
        elif content == "truncated":
            save(path, size=(64, 64))
            path.write_bytes(path.read_bytes()[:60])
        elif content == "16-bit":
            Image.fromarray(np.full((4, 6), 1000, dtype=np.uint16)).save(path)
        else:
            path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        load_dataset("folder", data_dir=str(tmp_path))


def save_png16(path: Path, colour_type: int, samples: int) -> Path:
    """A 2x2 PNG of 16 bits per sample written chunk by chunk (colour type 2: RGB, 4: gray and
    alpha, 6: RGBA), which Pillow opens in the 8-bit modes RGB and RGBA."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = b"\0" + np.full(2 * samples, 40000, dtype=">u2").tobytes()  # filter 0, then the row
    header = struct.pack(">IIBBBBB", 2, 2, 16, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * 2))
        + chunk(b"IEND", b"")
    )
    return path


@pytest.mark.parametrize(
    "colour_type, samples, mode", [(2, 3, "RGB"), (6, 4, "RGBA"), (4, 2, "RGBA")]
)
def test_16_bit_colour_pngs_are_refused_naming_the_file(tmp_path, colour_type, samples, mode):
    save(tmp_path / "a.png", "RGB", size=(2, 2))
    deep = save_png16(tmp_path / "deep.png", colour_type, samples)
    assert Image.open(deep).mode == mode  # Pillow alone would read it as 8-bit
    with pytest.raises(UserError) as refused:
        load_dataset("folder", data_dir=str(tmp_path))
    assert str(refused.value) == (
        f"{deep} is a 16-bit PNG (not 8-bit gray or colour); save it as an 8-bit image"
    )


def test_test_fraction_beside_train_and_test_subfolders_is_refused(tmp_path):
    for split in ("train", "test"):
        for i in range(2):
            save(tmp_path / split / f"{i}.png")
    with pytest.raises(UserError) as refused:
        load_dataset("folder", data_dir=str(tmp_path), test_fraction=0.2)
    assert str(refused.value) == (
        f"data.test_fraction=0.2 applies to a folder without train/ and test/ only; {tmp_path}'s "
        "train/ and test/ are its splits and would ignore it: remove it"
    )


def test_bad_options_and_missing_folder(tmp_path):
    with pytest.raises(UserError, match="channels=2 is not allowed"):
        load_dataset("folder", data_dir=str(tmp_path), channels=2)
    with pytest.raises(UserError, match="is not a folder"):
        load_dataset("folder", data_dir=str(tmp_path / "missing"))


def test_exif_orientation_is_applied_and_recorded(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown turned by 90 degrees
    Image.new("L", (6, 4), 9).save(tmp_path / "turned.png", exif=exif)
    save(tmp_path / "upright.png", size=(4, 6))
    data = load_dataset("folder", data_dir=str(tmp_path))
    assert data.spec.shape == (1, 6, 4)
    assert data.provenance.conversions == (
        "1 of 2 images turned upright by their EXIF orientation",
    )


def test_folder_checksum_is_sha256sum_of_its_images_in_byte_order(tmp_path):
    first, second = save(tmp_path / "a-b" / "x.png"), save(tmp_path / "a" / "y.png", value=3)
    digest = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in (first, second)}
    sha256sum = f"{digest[first]}  a-b/x.png\n{digest[second]}  a/y.png\n"  # '-' sorts before '/'
    data = load_dataset("folder", data_dir=str(tmp_path))
    expected = hashlib.sha256(sha256sum.encode()).hexdigest()
    assert data.provenance.files == {str(tmp_path): {"sha256": expected}}
