"""The one mapping between stored pixels (uint8 0..255) and model inputs (float32 in [-0.5, 0.5]).

Keeping both directions in one file keeps them exact inverses: the reference code scaled by
``x / 255 - 0.5`` on the way in but forgot the ``+ 0.5`` on the way out.
"""

from __future__ import annotations

import torch


def _drop_channel(images: torch.Tensor) -> torch.Tensor:
    """(B, H, W) or (B, 1, H, W) -> (B, H, W); (B, 3, H, W) as it is; anything else is a
    programming error."""
    if images.dim() == 4 and images.shape[1] == 1:
        return images[:, 0]
    if images.dim() == 3 or (images.dim() == 4 and images.shape[1] == 3):
        return images
    raise ValueError(
        f"expected images of shape (B, H, W), (B, 1, H, W) or (B, 3, H, W), got "
        f"{tuple(images.shape)}"
    )


def to_model(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W) or (B, C, H, W) (C = 1 or 3) in 0..255 -> float32 (B, C, H, W) in
    [-0.5, 0.5] (C = 1 for (B, H, W))."""
    if images_uint8.dtype != torch.uint8:
        raise ValueError(f"expected uint8 images, got {images_uint8.dtype}")
    images = _drop_channel(images_uint8)
    images = images.unsqueeze(1) if images.dim() == 3 else images
    return images.float() / 255.0 - 0.5


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Model inputs or samples back to pixels: a float torch tensor (B, 1, H, W), (B, H, W) or
    (B, 3, H, W) in the model's range [-0.5, 0.5] -> uint8 (B, H, W) for gray images (the
    channel axis dropped), (B, 3, H, W) for RGB ones. Not for images in [0, 1] (their values
    would land in 128..255) nor for NumPy arrays: scale those with ``round(x * 255)``.

    Computes ``round((x + 0.5) * 255)`` clamped to 0..255, the exact inverse of ``to_model`` on
    uint8 inputs; samples that overshoot the range saturate rather than wrap around. Non-finite
    input is refused: NaN would otherwise become a black pixel and inf a saturated one.
    """
    finite = torch.isfinite(x).flatten(1).all(dim=1)
    if not finite.all():
        raise ValueError(
            f"{int((~finite).sum())} of {len(x)} images hold NaN or inf values; "
            "they have no pixel values"
        )
    return ((_drop_channel(x).float() + 0.5) * 255.0).round().clamp(0, 255).to(torch.uint8)
