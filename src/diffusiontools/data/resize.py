"""``data.image_size`` for a data set of fixed size: every image resized to S x S after loading.

The resampling is Bansal et al.'s MNIST loader's: torchvision's ``transforms.Resize`` with its
default interpolation, Pillow's bilinear filter on the 8-bit image
(github.com/arpitbansal297/Cold-Diffusion-Models,
defading-diffusion-pytorch/defading_diffusion_pytorch/defading_diffusion_gaussian.py line 565,
``transforms.Resize(image_size)``: MNIST's 28 px to 32; their deblurring and super-resolution
loaders resize to 35 px with the same filter and crop the centre 32, line 1014 of
deblurring_diffusion_pytorch.py and line 779 of resolution_diffusion_pytorch.py). Pillow is
called here too, so the pixels are theirs to the bit: upsampling weights each output pixel's
two nearest source pixels per axis by distance between pixel centres; downsampling widens the
filter by the scale (antialiased). A folder keeps its own rule (``folder.py``: the shorter side
resized, bicubic, the centre cropped), on which its runs' data fingerprints depend.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from PIL import Image

from .dataset import DatasetSpec, ImageDataset

RESAMPLING = "bilinear"  # named in each resized data set's provenance


def resize_images(images: torch.Tensor, side: int) -> torch.Tensor:
    """uint8 ``images`` (N, C, H, W) resized to uint8 (N, C, side, side), each channel of each
    image by Pillow's bilinear filter (rounded to 8 bits, as Pillow rounds)."""
    pixels = images.numpy()
    out = np.empty((*pixels.shape[:2], side, side), dtype=np.uint8)
    for n, image in enumerate(pixels):  # (C, H, W)
        for c, channel in enumerate(image):
            resized = Image.fromarray(channel).resize((side, side), Image.Resampling.BILINEAR)
            out[n, c] = np.asarray(resized)
    return torch.from_numpy(out)


def resized(dataset: ImageDataset, side: int) -> ImageDataset:
    """``dataset`` with both splits' images resized to ``side`` x ``side``
    (:func:`resize_images`), the change named in its provenance's conversions; the same
    ``dataset`` where its images are that size already."""
    spec = dataset.spec
    if (spec.height, spec.width) == (side, side):
        return dataset
    note = (
        f"images resized ({RESAMPLING}) from {spec.height}x{spec.width} to {side}x{side} "
        "(data.image_size)"
    )
    provenance = dataset.provenance
    return dataclasses.replace(
        dataset,
        train_images=resize_images(dataset.train_images, side),
        test_images=resize_images(dataset.test_images, side),
        spec=DatasetSpec(spec.channels, side, side, spec.num_classes, spec.class_names),
        provenance=dataclasses.replace(provenance, conversions=(*provenance.conversions, note)),
    )
