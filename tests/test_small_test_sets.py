"""Cold models on data sets with few test images: sampling, evaluation, figures and messages.

A cold model's ``test`` and ``test_consistent`` starts begin each sample from a test image; a data
set with fewer test images than samples asked for cycles through them, each sample with its own
random field, and says so in its record.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pytest
import torch
from test_shapes import blobs_npz
from tiny_runs import single_thread, train_tiny  # noqa: F401  (autouse: one thread)

import diffusiontools as dt
from diffusiontools.data import load_data
from diffusiontools.diffusion.cold import cycled_test_indices, start_images_record
from diffusiontools.outputs.samples_io import load_samples
from diffusiontools.training.sample_files import sample_files, sample_to_files

_scratch = Path(tempfile.mkdtemp(prefix="diffusiontools-small-test-"))


@functools.cache
def small_run() -> Path:
    """A one-epoch cold run (pixel swap: each field from its key) on 64 RGB 16 px discs, of which
    6 are test images."""
    data = _scratch / "blobs.npz"
    blobs_npz(data, n=64, size=16)
    return train_tiny(
        _scratch / "run",
        "diffusion.kind=cold",
        "data.dataset=npz",
        f"data.dir={data}",
        "data.subset=57",
        "training.epochs=1",
    )


def test_start_indices_cycle_only_past_the_end():
    assert cycled_test_indices(2, 3, 7) == slice(2, 5)
    assert cycled_test_indices(5, 4, 7).tolist() == [5, 6, 0, 1]
    assert start_images_record(7, 7) == "test images 0..6"
    assert start_images_record(9, 7) == (
        "test images 0..6, cycled: sample i starts from test image i % 7"
    )


@pytest.mark.parametrize("sampler", ["naive", "improved"])
def test_more_samples_than_test_images_cycle_them_and_say_so(tmp_path, sampler):
    model = dt.load(small_run())
    assert len(load_data(model.config.data).test_images) == 6
    where = sample_files(model.folder, tmp_path / "s.png")
    files = sample_to_files(model, where, 9, sampler=sampler)
    images, meta = load_samples(files.npz)
    assert meta["start_images"] == (
        "test images 0..5, cycled: sample i starts from test image i % 6"
    )
    assert images.shape == (9, 3, 16, 16)
    assert not (images[6:] == images[:3]).all(axis=(1, 2, 3)).any()  # own fields: new starts
    x = model.sample(9, sampler=sampler)
    assert torch.equal(x[:6], model.sample(6, sampler=sampler))  # the first 6 as before


def test_as_many_samples_as_test_images_record_them_uncycled(tmp_path):
    model = dt.load(small_run())
    files = sample_to_files(model, sample_files(model.folder, tmp_path / "s.png"), 6)
    assert load_samples(files.npz)[1]["start_images"] == "test images 0..5"
