"""The small UNet: shapes, pinned size, conditioning on t and y, and its CPU cost beside the CNN."""

from __future__ import annotations

import time

import pytest
import torch

from diffusiontools.config import ModelConfig
from diffusiontools.errors import UserError
from diffusiontools.models import make_network
from diffusiontools.models.cnn import CNN
from diffusiontools.models.unet import UNet


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One thread: on a CPU shared with other jobs, two threads mostly wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


MNIST = {"image_channels": 1, "image_size": 28}  # the networks' shape for MNIST's images


def n_parameters(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(
    "base_channels, channel_mults, expected",
    [(32, (1, 2, 2), 698_817), (16, (1, 2, 2), 207_777), (8, (1,), 46_665)],
)
def test_output_shape_and_pinned_parameter_count(base_channels, channel_mults, expected):
    torch.manual_seed(0)
    net = UNet(base_channels, channel_mults, **MNIST)
    print(f"UNet({base_channels}, {channel_mults}): {n_parameters(net):,} parameters")
    out = net(torch.randn(3, 1, 28, 28), torch.rand(3))
    assert out.shape == (3, 1, 28, 28) and torch.isfinite(out).all()
    assert n_parameters(net) == expected


def test_make_network_builds_the_configured_unet():
    net = make_network(
        ModelConfig(network="unet", base_channels=16, num_classes=10), shape=(1, 28, 28)
    )
    assert isinstance(net, UNet) and net.class_embed is not None
    assert n_parameters(net) == n_parameters(UNet(16, (1, 2, 2), num_classes=10, **MNIST))


def test_output_depends_on_time_and_on_the_label():
    torch.manual_seed(0)
    net = UNet(8, (1, 2, 2), num_classes=10, **MNIST)
    x = torch.randn(2, 1, 28, 28)
    t = torch.full((2,), 0.5)
    base = net(x, t, torch.tensor([3, 3]))
    assert not torch.allclose(base, net(x, torch.full((2,), 0.9), torch.tensor([3, 3])))
    assert not torch.allclose(base, net(x, t, torch.tensor([5, 5])))
    assert not torch.allclose(base, net(x, t))  # y = None is the "no label" entry


def test_more_levels_than_28_halves_into_are_refused():
    with pytest.raises(
        UserError, match=r"channel_mults = \(1, 2, 2, 2\) asks for 4 levels.*1 to 3"
    ):
        UNet(8, (1, 2, 2, 2), **MNIST)


@pytest.mark.parametrize("network", [UNet, CNN])
def test_the_networks_take_the_image_shape_from_their_caller(network):
    with pytest.raises(TypeError, match="image_channels.*image_size"):
        network()
    net = network(image_channels=3, image_size=8)
    assert net(torch.randn(2, 3, 8, 8), torch.rand(2)).shape == (2, 3, 8, 8)


def test_cpu_cost_beside_the_notebook_cnn():
    """Forward + backward at batch 16; prints the ratio only, timings vary too much to assert."""

    def seconds(net: torch.nn.Module) -> float:
        x, t = torch.randn(16, 1, 28, 28), torch.rand(16)
        net(x, t).square().mean().backward()  # warm-up
        start = time.perf_counter()
        net(x, t).square().mean().backward()
        return time.perf_counter() - start

    cnn, unet = seconds(CNN(**MNIST)), seconds(UNet(**MNIST))
    print(
        f"forward+backward, batch 16: CNN {cnn:.3f}s, UNet(32, (1,2,2)) {unet:.3f}s, "
        f"ratio {unet / cnn:.1f}"
    )
