"""Contract tests over every registered degradation, plus what each one promises on its own."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffusiontools.data import load_mnist, to_model
from diffusiontools.diffusion.degradations import DEGRADATIONS, Degradation, make_degradation
from diffusiontools.diffusion.degradations.blur import GaussianBlur
from diffusiontools.diffusion.degradations.blur_repeated import RepeatedBlur
from diffusiontools.diffusion.degradations.fade import Fade
from diffusiontools.diffusion.degradations.mask import Mask, square_mask
from diffusiontools.diffusion.degradations.pixelate import Pixelate
from diffusiontools.diffusion.degradations.random_fields import uniform_fields
from diffusiontools.diffusion.degradations.resolution import Resolution
from diffusiontools.errors import UserError


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """The embedded subset's first 32 test images (real MNIST digits), (32, 1, 28, 28) in
    [-0.5, 0.5]."""
    return to_model(load_mnist(None, source="embedded").test_images[:32])


@pytest.fixture(params=sorted(DEGRADATIONS))
def degradation(request: pytest.FixtureRequest) -> Degradation:
    return make_degradation(request.param)


def _full(value: float, n: int) -> torch.Tensor:
    return torch.full((n,), value, dtype=torch.float32)


# --- the contract, for every entry of DEGRADATIONS ---------------------------------------------


def test_follows_protocol(degradation: Degradation) -> None:
    assert isinstance(degradation, Degradation)
    assert DEGRADATIONS[degradation.name] is type(degradation)
    degradation.check_levels(*degradation.default_levels)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_and_dtype_preserved(
    degradation: Degradation, digits: torch.Tensor, dtype: torch.dtype
) -> None:
    x = digits[:4].to(dtype)
    levels = torch.linspace(*degradation.default_levels, 4)
    out = degradation(x, levels, torch.arange(4))
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device


def test_identity_at_default_level_min(degradation: Degradation, digits: torch.Tensor) -> None:
    n = len(digits)
    out = degradation(digits, _full(degradation.default_levels[0], n), torch.arange(n))
    assert torch.equal(out, digits)


def test_deterministic_for_one_key(degradation: Degradation, digits: torch.Tensor) -> None:
    n = len(digits)
    level, key = _full(sum(degradation.default_levels) / 2, n), torch.arange(n) * 7919
    assert torch.equal(degradation(digits, level, key), degradation(digits, level, key))


def test_degrades_monotonically(degradation: Degradation, digits: torch.Tensor) -> None:
    """Mean squared distance to x0 over the batch never falls as the level rises."""
    n = len(digits)
    key = torch.arange(n)
    sweep = np.linspace(*degradation.default_levels, 12)
    distance = [
        ((degradation(digits, _full(s, n), key) - digits) ** 2).mean().item() for s in sweep
    ]
    assert distance[0] == 0
    assert all(b >= a for a, b in zip(distance, distance[1:], strict=False)), distance
    assert distance[-1] > 0.01


def test_check_levels_refuses_out_of_range(degradation: Degradation) -> None:
    low, high = degradation.default_levels
    for bad in [(low - 1, high), (high, low), (low, low), (low, math.nan)]:
        with pytest.raises(UserError, match=degradation.name):
            degradation.check_levels(*bad)
    # Far too high a level_max: refused for every size, or beyond 28-px images' max_level.
    if math.isinf(degradation.max_level(28)):
        with pytest.raises(UserError, match=degradation.name):
            degradation.check_levels(low, high + 100)
    else:
        assert high <= degradation.max_level(28) < high + 100


def test_unknown_name_lists_the_registry() -> None:
    with pytest.raises(UserError, match="nope") as error:
        make_degradation("nope")
    assert all(name in str(error.value) for name in DEGRADATIONS)


# --- random fields ------------------------------------------------------------------------------


def test_uniform_fields_depend_only_on_the_key() -> None:
    fields = uniform_fields(torch.tensor([3, 5, 3, -(2**62)]), (2, 28, 28))
    assert fields.shape == (4, 2, 28, 28) and fields.dtype == torch.float32
    assert torch.equal(fields[0], fields[2])
    assert not torch.equal(fields[0], fields[1])
    # Across batch sizes, exactly: integer hashing, then an exact scaling by 2**-24.
    assert torch.equal(uniform_fields(torch.tensor([5]), (2, 28, 28))[0], fields[1])
    assert 0 <= fields.min() and fields.max() < 1


def test_uniform_fields_look_uniform() -> None:
    u = uniform_fields(torch.arange(128), (784,)).double()
    assert abs(u.mean().item() - 0.5) < 0.005
    assert abs(u.var().item() - 1 / 12) < 0.002
    # Neighbouring keys and neighbouring elements are uncorrelated.
    assert abs(torch.corrcoef(torch.stack([u[:-1].flatten(), u[1:].flatten()]))[0, 1]) < 0.02
    assert abs(torch.corrcoef(torch.stack([u[:, :-1].flatten(), u[:, 1:].flatten()]))[0, 1]) < 0.02


def _lowbias32(x: int) -> int:
    """Pure-Python reference of the hash, on plain ints (no overflow to worry about)."""
    x = (x + 0x9E3779B9) % 2**32
    x ^= x >> 16
    x = x * 0x7FEB352D % 2**32
    x ^= x >> 15
    x = x * 0x846CA68B % 2**32
    return x ^ (x >> 16)


def test_uniform_fields_match_pure_python_and_pinned_values() -> None:
    """Against an independent integer implementation, and hard-coded for every device/version."""
    keys = [0, 1, 2**40 + 7, -3]
    u = uniform_fields(torch.tensor(keys), (3,))
    for b, key in enumerate(keys):
        seed = _lowbias32(_lowbias32(key % 2**32) ^ (key >> 32) % 2**32)
        expected = [(_lowbias32(_lowbias32(n) ^ seed) >> 8) * 2.0**-24 for n in range(3)]
        assert u[b].tolist() == expected
    pinned = [[3058869, 5447271, 7784281], [1109528, 6204941, 3716386]]
    assert (u[:2] * 2**24).to(torch.int64).tolist() == pinned


# --- blur ---------------------------------------------------------------------------------------


def test_blur_per_image_sigma_matches_one_at_a_time(digits: torch.Tensor) -> None:
    blur = GaussianBlur()
    sigma = torch.tensor([0.0, 0.4, 1.0, 3.0])
    together = blur(digits[:4], sigma, torch.arange(4))
    for b in range(4):
        alone = blur(digits[b : b + 1], sigma[b : b + 1], torch.arange(1))
        # A grouped convolution over 4 images or over 1 may sum in another order: float32's
        # default tolerance (rtol 1.3e-6, atol 1e-5) on pixels in [-0.5, 0.5]; measured 1.2e-7.
        torch.testing.assert_close(together[b : b + 1], alone)


def test_blur_keeps_background_and_mass() -> None:
    blur = GaussianBlur()
    background = torch.full((1, 1, 28, 28), -0.5)
    torch.testing.assert_close(blur(background, _full(3.0, 1), torch.arange(1)), background)
    dot = background.clone()
    dot[..., 14, 14] = 0.5  # far from the border: the blur only spreads the ink
    ink = blur(dot, _full(2.0, 1), torch.arange(1)) + 0.5
    assert ink.sum().item() == pytest.approx(1.0, abs=1e-4)
    assert ink[..., 14, 14] < 0.1 and ink[..., 14, 8] > 0  # reaches ceil(3 * 2) = 6 px
    assert ink[..., 14, 7].abs() < 1e-6  # not beyond (up to rounding)


def test_repeated_blur_is_their_circular_conv_applied_n_times(digits: torch.Tensor) -> None:
    """Against a Conv2d built as Bansal et al.'s ``get_conv``: the 2-D kernel (outer product of
    the normalised 11-tap Gaussian of std 7), padding_mode='circular', applied n times."""
    g = torch.exp(-((torch.arange(11.0) - 5) ** 2) / (2 * 7.0**2))
    g = g / g.sum()
    conv = torch.nn.Conv2d(1, 1, 11, padding=5, padding_mode="circular", bias=False)
    with torch.no_grad():
        conv.weight.copy_((g[:, None] * g[None, :])[None, None])
    levels = torch.tensor([0.0, 1.0, 3.0, 20.0])
    out = RepeatedBlur()(digits[:4], levels, torch.arange(4))
    for b, n in enumerate([0, 1, 3, 20]):
        expected = digits[b : b + 1]
        with torch.no_grad():
            for _ in range(n):
                expected = conv(expected)
        torch.testing.assert_close(out[b : b + 1], expected, atol=1e-5, rtol=0)
    # Circular padding keeps the mean; at n = 20 the digit is almost its mean (contrast 0.4%).
    torch.testing.assert_close(out.mean((2, 3)), digits[:4].mean((2, 3)), atol=1e-5, rtol=0)
    assert float(out[3].std() / digits[3].std()) < 0.01


def test_resolution_halves_the_side_t_times() -> None:
    """Level 1: 14 px cells of 2 x 2 (bicubic down, nearest up); level 3: 3 x 3 cells on 28 px."""
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)) - 0.5
    out = Resolution()(x, torch.tensor([1.0, 3.0]), torch.arange(2))
    half = out[0, 0]
    assert torch.equal(half[0::2, 0::2], half[1::2, 1::2])  # constant 2 x 2 blocks
    assert len(torch.unique(out[1])) <= 9  # at most 3 x 3 distinct values
    assert torch.equal(Resolution()(x, torch.tensor([0.0, 0.4]), torch.arange(2)), x)


def test_fade_centre_goes_to_grey_and_far_pixels_follow_the_product_of_masks() -> None:
    """After n steps pixel factor = prod_{i<n} (1 - exp(-r^2 / (2 (0.1 (i + 11))^2)))."""
    x = torch.full((1, 1, 28, 28), 0.5)
    key = torch.tensor([12345])
    out = Fade()(x, torch.tensor([2.0]), key)[0, 0]
    r, c = divmod(int(out.argmin()), 28)
    assert out[r, c] == 0  # the centre fades to 0 (mid-grey) at the first step
    d2 = 3.0**2 + 4.0**2
    factor = (1 - math.exp(-d2 / (2 * 1.1**2))) * (1 - math.exp(-d2 / (2 * 1.2**2)))
    if 0 <= r + 3 < 28 and 0 <= c + 4 < 28:
        assert float(out[r + 3, c + 4]) == pytest.approx(0.5 * factor, abs=1e-6)
    # The hole only widens with n and keeps its centre (one key).
    more = Fade()(x, torch.tensor([10.0]), key)[0, 0]
    assert (more <= out + 1e-7).all() and more[r, c] == 0


# --- pixelate -----------------------------------------------------------------------------------


def test_pixelate_blocks(digits: torch.Tensor) -> None:
    pixelate = Pixelate()
    x = digits[:2]
    whole = pixelate(x, _full(28.0, 2), torch.arange(2))
    torch.testing.assert_close(whole, x.mean(dim=(2, 3), keepdim=True).expand_as(x))
    quarters = pixelate(x, _full(14.0, 2), torch.arange(2))
    torch.testing.assert_close(
        quarters[..., :14, :14], x[..., :14, :14].mean((2, 3), True).expand(2, 1, 14, 14)
    )
    # Level 1.49 is still block 1; 1.5 rounds up to block 2.
    assert torch.equal(pixelate(x, _full(1.49, 2), torch.arange(2)), x)
    assert not torch.equal(pixelate(x, _full(1.5, 2), torch.arange(2)), x)


def test_pixelate_uneven_cells() -> None:
    """Block 3: 28 px make ceil(28 / 3) = 10 cells per side, of 3 px but two of 2 px."""
    cells = torch.arange(100.0).reshape(1, 1, 10, 10)
    sizes = torch.tensor([3, 3, 2, 3, 3, 3, 3, 2, 3, 3])  # symmetric
    x = cells.repeat_interleave(sizes, dim=2).repeat_interleave(sizes, dim=3)  # (1, 1, 28, 28)
    torch.testing.assert_close(Pixelate()(x, _full(3.0, 1), torch.arange(1)), x)  # already blocky


# --- mask ---------------------------------------------------------------------------------------


def test_mask_is_nested_and_placed_by_key() -> None:
    levels = torch.linspace(0, 1, 21)
    key = torch.full((21,), 1234)
    masks = square_mask(levels, key, (28, 28))
    assert not masks[0].any() and masks[-1].all()
    assert all((masks[i] <= masks[i + 1]).all() for i in range(20))  # grows, never moves
    other = square_mask(levels, torch.full((21,), 99), (28, 28))
    assert not torch.equal(masks[5], other[5])


def test_mask_fills_background(digits: torch.Tensor) -> None:
    out = Mask()(digits[:4], _full(0.3, 4), torch.arange(4))
    masked = square_mask(_full(0.3, 4), torch.arange(4), (28, 28))[:, None]
    assert (out[masked] == -0.5).all() and torch.equal(out[~masked], digits[:4][~masked])
