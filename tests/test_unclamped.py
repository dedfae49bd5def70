"""The samples as drawn, kept beside their uint8 images: the report's sampler does not clamp
(REFERENCE.md), so its total variance counts values beyond [-0.5, 0.5] at their full size, which
the images saturate, and its t-SNE embedded them. The NPZ's ``unclamped`` array, evaluate's
``total_variance_unclamped``, the reason a set without floats gives for leaving it out, and
``tsne_samples``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_runs import reference_run, single_thread  # noqa: F401 (autouse: one thread)

import diffusiontools as dt
from diffusiontools.cli import main
from diffusiontools.errors import UserError
from diffusiontools.evaluation import set_scoring
from diffusiontools.evaluation.scores import pixel_scores
from diffusiontools.evaluation.settings import EvaluationSettings
from diffusiontools.outputs.samples_io import load_samples, load_unclamped, write_samples


def overshooting(n: int, seed: int = 0) -> torch.Tensor:
    """n gray 28x28 samples (n, 1, 28, 28) in the model's range and well beyond it."""
    return torch.from_numpy(np.random.default_rng(seed).normal(0, 0.5, (n, 1, 28, 28))).float()


def test_the_floats_are_kept_exactly_batch_by_batch_and_the_images_are_their_pixels(tmp_path):
    x = overshooting(7)
    path = tmp_path / "s.npz"
    write_samples(path, [x[:3], x[3:5], x[5:]], 7, unclamped=True, seed=0)
    images, meta = load_samples(path)
    floats = load_unclamped(path, images)
    assert floats.dtype == np.float32 and floats.shape == (7, 28, 28)  # the images' gray layout
    assert np.array_equal(floats, x[:, 0].numpy())
    # the images as ever: round((x + 0.5) * 255), saturating beyond the range
    expected = np.clip(np.round((x[:, 0].numpy().astype(np.float64) + 0.5) * 255), 0, 255)
    assert np.array_equal(images, expected.astype(np.uint8)) and meta == {"seed": 0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz"]  # no stand-in left


def test_without_the_option_a_file_holds_no_floats_and_uint8_cannot_be_kept(tmp_path):
    path = tmp_path / "s.npz"
    write_samples(path, [overshooting(3)], 3)
    assert load_unclamped(path, load_samples(path)[0]) is None
    with pytest.raises(RuntimeError, match="of floats only"):
        write_samples(path, [torch.zeros(3, 28, 28, dtype=torch.uint8)], 3, unclamped=True)


def test_a_failure_in_a_batch_leaves_the_old_file_and_no_stand_ins(tmp_path):
    path = tmp_path / "s.npz"
    write_samples(path, [overshooting(2)], 2)
    before = path.read_bytes()

    def batches():
        yield overshooting(2)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_samples(path, batches(), 4, unclamped=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz"]


@pytest.mark.parametrize(
    "floats, fragment",
    [
        (np.zeros((3, 28, 28), np.float64), "float64 (3, 28, 28): expected float32 (3, 28, 28)"),
        (np.zeros((2, 28, 28), np.float32), "float32 (2, 28, 28): expected float32 (3, 28, 28)"),
        (np.full((3, 28, 28), np.nan, np.float32), "'unclamped' samples that are not finite: "
         "3 of 3"),
        # zeros are mid-grey pixels (128), not the black images: another draw or scale
        (np.zeros((3, 28, 28), np.float32), "'unclamped' samples that are not its images: 3 of "
         "3 differ from them once clamped and rounded"),
        (np.concatenate([np.full((2, 28, 28), -0.5, np.float32), np.full((1, 28, 28), 100.0,
         np.float32)]), "1 of 3 differ"),
        # far below the range: clamped to black, the images; the floats are the file's draw
        (np.full((3, 28, 28), -3.0, np.float32), None),
    ],
)  # fmt: skip
def test_floats_that_are_not_the_images_samples_are_refused(tmp_path, floats, fragment):
    path = tmp_path / "s.npz"
    np.savez(path, images=np.zeros((3, 28, 28), np.uint8), unclamped=floats)
    if fragment is None:
        assert np.array_equal(load_unclamped(path, load_samples(path)[0]), floats)
        return
    images, _ = load_samples(path, "npz")
    with pytest.raises(UserError) as refused:
        load_unclamped(path, images, "npz")
    assert str(refused.value).startswith(f"npz={path} holds ") and fragment in str(refused.value)


def test_total_variance_unclamped_against_a_hand_computed_case():
    # four one-pixel samples 0.9, -0.9, 0.9, -0.9: variance (ddof=1) 4 * 0.81 / 3 = 1.08;
    # their images saturate at 0.5, -0.5: 4 * 0.25 / 3 = 1/3
    x = np.array([0.9, -0.9, 0.9, -0.9]).reshape(4, 1, 1, 1)
    scores = pixel_scores(np.clip(x, -0.5, 0.5), x, seed=0, n_boot=4)
    assert scores["total_variance_unclamped"]["value"] == pytest.approx(1.08, rel=1e-12)
    assert scores["total_variance"]["value"] == pytest.approx(1 / 3, rel=1e-12)
    assert "total_variance_unclamped" not in pixel_scores(np.clip(x, -0.5, 0.5), None, 0, 4)


def numpy_total_variance(x: np.ndarray) -> float:
    """The report's number, written out: per-pixel variance (ddof=1), summed."""
    return float(np.asarray(x, np.float64).reshape(len(x), -1).var(axis=0, ddof=1).sum())


def test_evaluate_scores_float_arrays_unclamped_and_says_why_uint8_has_no_such_number(tmp_path):
    floats = overshooting(20, seed=1)
    pixels = np.random.default_rng(2).integers(0, 256, (20, 28, 28), np.uint8)
    images = dt.evaluate(
        {"drawn": floats, "pixels": pixels},
        out=tmp_path / "e", tsne_reference=50, test_reference=50, n_boot=10, n_boot_set=4,
        device="cpu",
    )  # fmt: skip
    results = json.loads((tmp_path / "e" / "metrics.json").read_text())
    drawn, pixels = results["runs"]["drawn"], results["runs"]["pixels"]
    unclamped = drawn["metrics"]["total_variance_unclamped"]["value"]
    assert unclamped == pytest.approx(numpy_total_variance(floats.numpy()), rel=1e-9)
    clamped = drawn["metrics"]["total_variance"]["value"]
    assert clamped == pytest.approx(numpy_total_variance(np.clip(floats.numpy(), -0.5, 0.5)), 2e-3)
    assert unclamped > 1.5 * clamped  # a quarter of the values lie beyond the range
    assert "total_variance_unclamped" not in pixels["metrics"]
    assert "uint8 images" in pixels["omitted"]["total_variance_unclamped"]
    table = (tmp_path / "e" / "metrics.md").read_text()
    assert "| total variance, unclamped (the report's) |" in table
    assert "pixels has no total variance, unclamped (the report's) (given as uint8" in table
    # the array is saved as the NPZ it is recorded as, floats and all
    saved = tmp_path / "e" / "samples_drawn.npz"
    assert np.array_equal(load_unclamped(saved, load_samples(saved)[0]), floats[:, 0].numpy())
    assert images.value("drawn", "total_variance_unclamped") == unclamped


def test_a_model_s_samples_are_scored_unclamped_and_sample_keeps_them_on_request(tmp_path):
    run = reference_run()
    kept, plain = tmp_path / "kept.npz", tmp_path / "plain.npz"
    for npz, flags in ((kept, ["--unclamped"]), (plain, [])):
        argv = ["sample", str(run), "-n", "12", "--out", str(tmp_path / f"{npz.stem}.png"),
                "--npz", str(npz), "--device", "cpu", *flags]  # fmt: skip
        assert main(argv) == 0
    images, _ = load_samples(kept)
    floats = load_unclamped(kept, images)
    assert floats.shape == (12, 28, 28) and load_unclamped(plain, load_samples(plain)[0]) is None
    assert np.array_equal(images, load_samples(plain)[0])  # the images are the same either way
    model = dt.load(run, device="cpu")
    drawn = model.sample(12, seed=0, progress=False)[:, 0].numpy()
    assert np.array_equal(floats, drawn)  # as drawn, not clamped
    out = tmp_path / "e"
    dt.evaluate(
        {"model": model, "kept": kept, "plain": plain}, n_samples=12, out=out,
        tsne_reference=50, test_reference=50, n_boot=10, n_boot_set=4, device="cpu",
    )  # fmt: skip
    runs = json.loads((out / "metrics.json").read_text())["runs"]
    for label in ("model", "kept"):  # evaluate's own draw is the sample command's at seed 0
        value = runs[label]["metrics"]["total_variance_unclamped"]["value"]
        assert value == pytest.approx(numpy_total_variance(drawn), rel=1e-9)
    assert "sample --unclamped" in runs["plain"]["omitted"]["total_variance_unclamped"]
    saved = out / "samples_model.npz"
    assert np.array_equal(load_unclamped(saved, load_samples(saved)[0]), drawn)


SMALL = {"tsne_reference": 50, "test_reference": 50, "n_boot": 10, "n_boot_set": 4}


@pytest.mark.parametrize("tsne_samples", ["images", "unclamped"])
def test_the_joint_t_sne_embeds_what_tsne_samples_says(tsne_samples, tmp_path, monkeypatch):
    embedded = []

    def recording(arrays, seed, perplexity):
        embedded.extend(arrays)
        return joint_tsne(arrays, seed, perplexity)

    joint_tsne = set_scoring.joint_tsne
    monkeypatch.setattr(set_scoring, "joint_tsne", recording)
    floats = overshooting(20, seed=3)
    results = dt.evaluate(
        {"drawn": floats}, out=tmp_path / "e", tsne_samples=tsne_samples, device="cpu", **SMALL
    )
    test_images, drawn = embedded  # the 50 test images, then the set
    assert test_images.shape == (50, 1, 28, 28) and test_images.min() >= -0.5
    if tsne_samples == "unclamped":
        assert np.array_equal(drawn, floats.numpy().astype(np.float64))
    else:  # the images: round((x + 0.5) * 255) / 255 - 0.5, within [-0.5, 0.5]
        pixels = np.clip(np.round((floats.numpy().astype(np.float64) + 0.5) * 255), 0, 255)
        assert np.array_equal(drawn, pixels / 255 - 0.5)
    settings = json.loads((tmp_path / "e" / "metrics.json").read_text())["settings"]
    assert settings["tsne_samples"] == tsne_samples
    assert results.value("drawn", "kl_faithful") >= 0


def test_an_unclamped_t_sne_refuses_a_set_without_floats_before_writing(tmp_path):
    pixels = np.zeros((20, 28, 28), np.uint8)
    with pytest.raises(UserError) as refused:
        dt.evaluate({"px": pixels}, out=tmp_path / "e", tsne_samples="unclamped", **SMALL)
    assert str(refused.value) == (
        "tsne_samples='unclamped' embeds every set's samples as drawn, but set 'px' has none "
        "(given as uint8 images, which hold no values beyond [-0.5, 0.5]): give "
        "tsne_samples='images'"
    )
    assert not (tmp_path / "e").exists()
    with pytest.raises(UserError, match="tsne_samples='raw' must be one of images, unclamped"):
        EvaluationSettings(tsne_samples="raw")


def test_the_cli_names_its_flag_in_the_refusal(tmp_path, capsys):
    npz = tmp_path / "s.npz"
    write_samples(npz, [overshooting(20)], 20)
    argv = ["evaluate", "--npz", str(npz), "--tsne-samples", "unclamped", "--out",
            str(tmp_path / "e"), "--tsne-reference", "50", "--test-reference", "50"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --tsne-samples 'unclamped' embeds every set's samples as drawn")
    assert "sample --unclamped keeps the samples as drawn" in err
