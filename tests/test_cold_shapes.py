"""Cold diffusion on square gray and RGB images of any side: every degradation keeps the shape and
acts on every channel alike, the size-bound levels follow the images' side (refused in one
sentence at config load where the side is declared, else when the data meets the process), and
a tiny cold run trains and samples on an RGB 16x16 npz and on digits8."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_shapes import blobs_npz
from tiny_runs import single_thread, train_tiny  # noqa: F401  (autouse: one thread)

import diffusiontools as dt
from diffusiontools.data import load_data, to_model
from diffusiontools.diffusion.cold import ColdDiffusion, degraded_gmm
from diffusiontools.diffusion.degradations import DEGRADATIONS, Degradation, make_degradation
from diffusiontools.diffusion.degradations.base import BACKGROUND
from diffusiontools.diffusion.degradations.blur_repeated import bansal_kernel, blur_circular
from diffusiontools.diffusion.degradations.mask import Mask
from diffusiontools.diffusion.degradations.pixel_swap import PixelSwap, swap_offsets
from diffusiontools.diffusion.degradations.pixelate import Pixelate
from diffusiontools.diffusion.degradations.resolution import Resolution, halve_resolution
from diffusiontools.errors import UserError
from diffusiontools.outputs.samples_io import load_samples
from diffusiontools.training.run_config import load_config
from diffusiontools.training.sample_files import sample_files, sample_to_files

SHAPES = [(1, 8, 8), (3, 16, 16), (3, 32, 32)]
# The level that leaves images of every side unchanged: pixel swap's default level_min (0.035)
# does so only below 1 / 0.035 = 28.6 px, where every offset truncates to 0.
IDENTITY = {"pixel_swap": 0.0}


def images(shape: tuple[int, int, int], n: int = 4) -> torch.Tensor:
    """``n`` seeded images (n, *shape) in [-0.5, 0.5]."""
    return torch.rand((n, *shape), generator=torch.Generator().manual_seed(0)) - 0.5


def top_level(degradation: Degradation, side: int) -> float:
    """The default level_max, lowered to what ``side`` px images take."""
    return min(degradation.default_levels[1], degradation.max_level(side))


@pytest.fixture(params=sorted(DEGRADATIONS))
def degradation(request: pytest.FixtureRequest) -> Degradation:
    return make_degradation(request.param)


@pytest.mark.parametrize("shape", SHAPES)
def test_shape_kept_and_identity_at_the_lowest_level(degradation, shape):
    x, key = images(shape), torch.arange(4)
    out = degradation(x, torch.full((4,), top_level(degradation, shape[-1])), key)
    assert out.shape == x.shape and out.dtype == x.dtype and not torch.equal(out, x)
    lowest = IDENTITY.get(degradation.name, degradation.default_levels[0])
    assert torch.equal(degradation(x, torch.full((4,), lowest), key), x)


@pytest.mark.parametrize("shape", SHAPES[1:])
def test_every_channel_is_degraded_alike(degradation, shape):
    """Each channel of an RGB image goes the way a gray image of that channel goes."""
    x, key = images(shape), torch.arange(4) * 7919
    level = torch.full((4,), top_level(degradation, shape[-1]) / 2)
    out = degradation(x, level, key)
    for c in range(shape[0]):
        alone = degradation(x[:, c : c + 1], level, key)[:, 0]
        assert torch.allclose(out[:, c], alone, atol=1e-6)


def test_pixelate_block_4_on_8x8_is_the_4x4_block_means():
    x = images((3, 8, 8), 2)
    out = Pixelate()(x, torch.full((2,), 4.0), torch.arange(2))
    means = x.reshape(2, 3, 2, 4, 2, 4).mean(dim=(3, 5))  # (2, 3, 2, 2) cell means
    expected = means.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    assert torch.allclose(out, expected, atol=1e-6)


def test_pixelate_block_of_the_side_gives_each_channel_its_mean():
    x = images((3, 16, 16), 2)
    out = Pixelate()(x, torch.full((2,), 16.0), torch.arange(2))
    assert torch.allclose(out, x.mean(dim=(2, 3), keepdim=True).expand_as(x), atol=1e-6)


def test_resolution_halvings_on_16px():
    """16 -> 8 -> 4 -> 2 -> 1 px: after n halvings each 2**n x 2**n block holds one value."""
    x = images((3, 16, 16), 2)
    current = x
    for step, block in enumerate((2, 4, 8, 16)):
        current = halve_resolution(current, step)
        assert current.shape == x.shape
        cells = current.reshape(2, 3, 16 // block, block, 16 // block, block)
        assert (cells == cells[:, :, :, :1, :, :1]).all()
        out = Resolution()(x, torch.full((2,), float(step + 1)), torch.arange(2))
        assert torch.equal(out, current)


@pytest.mark.parametrize(("side", "most"), [(8, 3), (16, 4), (28, 4), (32, 5), (64, 6)])
def test_resolution_halves_while_a_pixel_is_left(side, most):
    assert Resolution().max_level(side) == most
    assert side // 2**most >= 1 and side // 2 ** (most + 1) == 0


@pytest.mark.parametrize(("s", "largest"), [(0.035, 1), (0.1, 3), (0.2, 6)])
def test_pixel_swap_offsets_scale_with_a_32px_side(s, largest):
    """|offset| <= int(s * 32): 0.035 * 32 = 1.12, so 0.035 moves pixels on 32 px."""
    dr, dc = swap_offsets(torch.full((64,), s), torch.arange(64), (32, 32))
    assert largest == int(s * 32)
    for offsets in (dr, dc):
        assert offsets.shape == (64, 32, 32)
        assert offsets.abs().max().item() == largest and offsets.min().item() == -largest


def test_pixel_swap_permutes_each_rgb_image_once_for_all_channels():
    index = (
        torch.arange(3 * 32 * 32, dtype=torch.float64).reshape(1, 3, 32, 32).expand(2, -1, -1, -1)
    )
    moved = PixelSwap()(index, torch.full((2,), 0.2), torch.tensor([1, 2])).to(torch.int64)
    sources = moved - torch.arange(3)[None, :, None, None] * 32 * 32  # flat index within a plane
    assert (sources == sources[:, :1]).all()  # the same permutation in every channel
    assert torch.equal(sources[:, 0].flatten(1).sort().values, torch.arange(1024).expand(2, -1))


def test_mask_on_rgb_masks_all_channels_alike():
    x = images((3, 16, 16), 4)
    out = Mask()(x, torch.full((4,), 0.3), torch.arange(4))
    masked = out == BACKGROUND  # (4, 3, 16, 16)
    assert (masked == masked[:, :1]).all() and masked.any() and not masked.all()
    assert torch.equal(out[~masked], x[~masked])


def test_repeated_blur_wraps_like_circular_padding_and_takes_small_images():
    kernel = bansal_kernel()
    x = images((3, 16, 16), 2)
    padded = F.pad(x.reshape(6, 1, 16, 16), (5, 5, 5, 5), mode="circular")
    k = kernel.float()
    reference = F.conv2d(F.conv2d(padded, k[None, None, None, :]), k[None, None, :, None])
    assert torch.equal(blur_circular(x, kernel), reference.reshape(x.shape))
    flat = torch.full((1, 1, 4, 4), 0.25)  # narrower than the 5-px radius: wraps more than once
    assert torch.allclose(blur_circular(flat, kernel), flat)


# --- level bounds: at config load where the side is declared, else where the data meets it -----


def cold(*overrides: str):
    return load_config(None, ["diffusion.kind=cold", *overrides])


@pytest.mark.parametrize("dataset", ["cifar10", "coloured_mnist"])
def test_pixelate_beyond_a_32px_sets_side_is_refused_at_config_load(dataset):
    with pytest.raises(UserError) as e:
        cold(f"data.dataset={dataset}", "diffusion.degradation=pixelate", "diffusion.level_max=40")
    assert str(e.value) == (
        "diffusion.level_max = 40 exceeds 32, the most pixelate takes on the 32x32 images of "
        f"data.dataset = {dataset}: use at most 32"
    )
    cold(f"data.dataset={dataset}", "diffusion.degradation=pixelate", "diffusion.level_max=32")


def test_mnist_keeps_its_28px_bounds():
    cold("diffusion.degradation=pixelate", "diffusion.level_max=28")
    with pytest.raises(UserError, match="exceeds 4, the most resolution takes on the 28x28"):
        cold("diffusion.degradation=resolution", "diffusion.level_max=5")


def test_a_folders_image_size_is_its_declared_side(tmp_path):
    with pytest.raises(UserError, match="exceeds 4, the most resolution takes on the 16x16"):
        cold(
            "data.dataset=folder",
            f"data.dir={tmp_path}",
            "data.image_size=16",
            "diffusion.degradation=resolution",
            "diffusion.level_max=5",
        )


def test_an_npz_side_is_checked_when_its_data_loads(tmp_path):
    data = tmp_path / "blobs.npz"
    blobs_npz(data, size=16)
    settings = ("data.dataset=npz", f"data.dir={data}", "diffusion.degradation=pixelate")
    cold(*settings, "diffusion.level_max=20")  # loads: the config alone does not say the side
    with pytest.raises(UserError) as e:
        train_tiny(
            tmp_path / "run",
            "diffusion.kind=cold",
            *settings,
            "data.subset=64",
            "diffusion.level_max=20",
        )
    assert str(e.value) == (
        "diffusion.level_max = 20 exceeds 16, the most pixelate takes on the 16x16 images of "
        "data.dataset = npz: use at most 16"
    )
    assert not list(tmp_path.glob("run/checkpoints/*"))
    ColdDiffusion.from_config(cold(*settings), (3, 16, 16))  # the default, 14, fits 16 px


# --- tiny cold runs on other shapes -------------------------------------------------------------


def test_a_cold_run_trains_and_samples_on_rgb_16x16(tmp_path):
    data = tmp_path / "blobs.npz"
    blobs_npz(data, size=16)
    run = train_tiny(
        tmp_path / "run",
        "diffusion.kind=cold",
        "diffusion.degradation=blur",
        "data.dataset=npz",
        f"data.dir={data}",
        "data.subset=64",
        "training.epochs=1",
    )
    model = dt.load(run)
    assert model.shape == (3, 16, 16)
    for sampler in ("naive", "improved"):
        x = model.sample(3, sampler=sampler)
        assert x.shape == (3, 3, 16, 16) and x.isfinite().all()
    stored, _ = load_samples(sample_to_files(model, sample_files(run), 3).npz)  # clamped to uint8
    assert stored.shape == (3, 3, 16, 16) and stored.dtype == np.uint8 and stored.max() > 0
    x_T = degraded_gmm(model.config, load_data(model.config.data).train_images).sample(
        5, torch.Generator().manual_seed(0), torch.device("cpu")
    )
    assert x_T.shape == (5, 3, 16, 16) and x_T.min() >= -0.5 and x_T.max() <= 0.5


@pytest.mark.parametrize("degradation", ["resolution", "pixel_swap", "blur_repeated"])
def test_a_cold_run_trains_and_samples_on_digits8(tmp_path, degradation):
    run = train_tiny(
        tmp_path / "run",
        "diffusion.kind=cold",
        f"diffusion.degradation={degradation}",
        "data.dataset=digits8",
        "data.subset=256",
        "training.epochs=1",
    )
    model = dt.load(run)
    x = model.sample(4)
    assert x.shape == (4, 1, 8, 8) and x.isfinite().all()
    stored, _ = load_samples(sample_to_files(model, sample_files(run), 4).npz)
    assert stored.shape == (4, 8, 8) and stored.dtype == np.uint8
    x0 = to_model(load_data(model.config.data).test_images[:4])
    start = model.process.start_from(x0, "test_consistent", torch.Generator().manual_seed(0))
    assert start.x.shape == (4, 1, 8, 8) and start.t == model.process.T
    assert start.x.isfinite().all()


def test_the_degradation_figure_checks_an_npz_side(tmp_path):
    from diffusiontools.outputs.degradation_figure import degradation_figure

    data = tmp_path / "blobs.npz"
    blobs_npz(data, n=200, size=16)  # the figure shows test images 1, 2, 4 and 18
    settings = ("data.dataset=npz", f"data.dir={data}", "diffusion.degradation=resolution")
    with pytest.raises(UserError, match="exceeds 4, the most resolution takes on the 16x16"):
        degradation_figure(cold(*settings, "diffusion.level_max=5"), tmp_path / "bad.png")
    assert degradation_figure(cold(*settings), tmp_path / "ok.png").is_file()
