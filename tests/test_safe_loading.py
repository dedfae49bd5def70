"""Checkpoints are plain data: loading never runs code, and they carry their version and config."""

from __future__ import annotations

import os

import pytest
import torch
from tiny_runs import reference_run, single_thread  # noqa: F401 (single_thread: autouse fixture)

from diffusiontools.config import config_from_dict
from diffusiontools.errors import UserError
from diffusiontools.training import checkpoint as ckpt_io

PLAIN = (dict, list, tuple, str, int, float, bool, type(None))


class WritesAMarker:
    """Unpickling this calls os.system: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    torch.save({"format_version": 1, "model": {}, "payload": WritesAMarker(marker)}, path)
    with pytest.raises(UserError, match=r"evil\.pt was refused: it would import .*system") as info:
        ckpt_io.load_checkpoint(path)
    assert "\n" not in str(info.value)
    assert not marker.exists()


def assert_plain(value, where: str) -> None:
    assert isinstance(value, PLAIN), f"{where} is a {type(value).__name__}"
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), where
            assert_plain(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for k, item in enumerate(value):
            assert_plain(item, f"{where}[{k}]")


def test_checkpoints_carry_the_format_version_and_the_config_as_plain_data():
    ckpt = ckpt_io.load_checkpoint(ckpt_io.latest_path(reference_run()))
    assert type(ckpt["format_version"]) is int and ckpt["format_version"] == ckpt_io.FORMAT_VERSION
    assert_plain(ckpt["config"], "config")
    assert_plain(ckpt["history"], "history")
    config = config_from_dict(ckpt["config"])
    assert config.model.n_hidden == (8, 8) and config.diffusion.T == 20
    for kind in ("model", "ema"):
        assert all(isinstance(t, torch.Tensor) for t in ckpt[kind].values())


def test_a_newer_format_version_is_refused(tmp_path):
    path = tmp_path / "future.pt"
    torch.save({"format_version": ckpt_io.FORMAT_VERSION + 1, "model": {}}, path)
    with pytest.raises(UserError, match="newer than this diffusiontools reads"):
        ckpt_io.load_checkpoint(path)
