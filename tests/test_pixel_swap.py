"""The vectorised pixel swap against the original's per-pixel loop, and the report's facts."""

from __future__ import annotations

import pytest
import torch

from diffusiontools.diffusion.degradations.pixel_swap import (
    PixelSwap,
    swap_offsets,
    swap_pixels,
    swap_pixels_reference,
)


def _images(n: int, seed: int = 0) -> torch.Tensor:
    """(n, 1, 28, 28) random images with distinct pixel values, so every move shows."""
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) - 0.5


def _reference_per_image(x: torch.Tensor, dr: torch.Tensor, dc: torch.Tensor) -> torch.Tensor:
    """The loop, one image at a time, each with its own field: what per-image fields cost it."""
    return torch.stack([swap_pixels_reference(x[b], dr[b], dc[b]) for b in range(len(x))])


def test_hand_computed_row() -> None:
    """Row [a, b, c], each partner one to the right: swaps (0,1), (1,2), (2,0) give [a, c, b]."""
    x = torch.tensor([[[[10.0, 20.0, 30.0]]]])  # (1, 1, 1, 3)
    dr, dc = torch.zeros(1, 1, 3, dtype=torch.int64), torch.ones(1, 1, 3, dtype=torch.int64)
    expected = torch.tensor([[[[10.0, 30.0, 20.0]]]])
    assert torch.equal(swap_pixels_reference(x, dr[0], dc[0]), expected)
    assert torch.equal(swap_pixels(x, dr, dc), expected)


def test_matches_reference_on_fixed_fields() -> None:
    """Arbitrary offsets (also beyond the image, wrapping), fed directly: bit-identical."""
    gen = torch.Generator().manual_seed(1)
    x = _images(3)
    for span in (1, 5, 40):
        dr = torch.randint(-span, span + 1, (3, 28, 28), generator=gen)
        dc = torch.randint(-span, span + 1, (3, 28, 28), generator=gen)
        assert torch.equal(swap_pixels(x, dr, dc), _reference_per_image(x, dr, dc))


@pytest.mark.parametrize("levels", [[0.05, 0.05, 0.05], [0.15, 0.15, 0.15], [0.035, 0.1, 0.2]])
def test_matches_reference_through_levels_and_keys(levels: list[float]) -> None:
    x, level, key = _images(3), torch.tensor(levels), torch.tensor([11, 12, 13])
    dr, dc = swap_offsets(level, key, (28, 28))
    assert torch.equal(PixelSwap()(x, level, key), _reference_per_image(x, dr, dc))


def test_output_is_a_permutation_of_each_image() -> None:
    x = _images(4)
    out = PixelSwap()(x, torch.full((4,), 0.2), torch.arange(4))
    assert not torch.equal(out, x)
    assert torch.equal(out.flatten(1).sort().values, x.flatten(1).sort().values)


def test_identity_at_report_level_min() -> None:
    level, key = torch.full((64,), 0.035), torch.arange(64)
    dr, dc = swap_offsets(level, key, (28, 28))
    assert not dr.any() and not dc.any()
    x = _images(64)
    assert torch.equal(PixelSwap()(x, level, key), x)


@pytest.mark.parametrize(("s", "largest"), [(0.035, 0), (0.1, 2), (0.15, 4), (0.2, 5)])
def test_offset_bounds(s: float, largest: int) -> None:
    """|offset| <= int(s * 28), and the report's largest offsets, 4 px at 0.15 and 5 at 0.2."""
    dr, dc = swap_offsets(torch.full((64,), s), torch.arange(64), (28, 28))
    assert largest == int(s * 28)
    for offsets in (dr, dc):
        assert offsets.dtype == torch.int64 and offsets.shape == (64, 28, 28)
        assert offsets.abs().max().item() == largest
        assert offsets.min().item() == -largest  # truncation is symmetric about 0


def test_offsets_grow_with_the_level_for_one_key() -> None:
    key = torch.full((2,), 5)
    (dr_low, dc_low), (dr_high, dc_high) = (
        swap_offsets(torch.full((2,), s), key, (28, 28)) for s in (0.1, 0.2)
    )
    assert (dr_low.abs() <= dr_high.abs()).all() and (dc_low.abs() <= dc_high.abs()).all()


def test_same_key_same_output_other_key_other_output() -> None:
    swap, x, level = PixelSwap(), _images(2), torch.full((2,), 0.15)
    first = swap(x, level, torch.tensor([3, 4]))
    assert torch.equal(first, swap(x, level, torch.tensor([3, 4])))
    # B = 1, same key: exact across batch sizes, as a swap moves values and computes none.
    assert torch.equal(first[1:], swap(x[1:], level[1:], torch.tensor([4])))
    other = swap(x, level, torch.tensor([5, 6]))
    assert not torch.equal(first[0], other[0]) and not torch.equal(first[1], other[1])


def test_shared_field_mode_gives_one_permutation() -> None:
    """The original's mode: one key and one level for the whole batch, so one permutation."""
    index_image = torch.arange(784.0).reshape(1, 1, 28, 28).expand(5, 1, 28, 28)
    level, key = torch.full((5,), 0.2), torch.full((5,), 42)
    moved = PixelSwap()(index_image, level, key).flatten(1).to(torch.int64)  # (5, 784) sources
    assert (moved == moved[0]).all()
    x = _images(5)
    out = PixelSwap()(x, level, key)
    assert torch.equal(out.flatten(1), x.flatten(1)[:, moved[0]])
    dr, dc = swap_offsets(level, key, (28, 28))
    assert torch.equal(out, swap_pixels_reference(x, dr[0], dc[0]))  # the original's batch loop


def test_follows_the_input_dtype() -> None:
    x = _images(2).double()
    out = PixelSwap()(x, torch.full((2,), 0.2, dtype=torch.float64), torch.arange(2))
    assert out.dtype == torch.float64


def test_repeated_keys_and_levels_match_single_image_calls() -> None:
    """Permutations are shared only between images with the same key *and* the same level."""
    swap = PixelSwap()
    x = torch.arange(784.0).reshape(1, 1, 28, 28).expand(4, 1, 28, 28)  # shows the permutation
    key, level = torch.tensor([1, 2, 1, 1]), torch.tensor([0.2, 0.2, 0.1, 0.2])
    out = swap(x, level, key)
    for b in range(4):
        assert torch.equal(out[b : b + 1], swap(x[b : b + 1], level[b : b + 1], key[b : b + 1]))
    assert torch.equal(out[0], out[3])
    assert not torch.equal(out[0], out[1]) and not torch.equal(out[0], out[2])
