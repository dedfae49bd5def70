"""``diffusiontools evaluate`` end to end on two NPZ sample sets: real test digits vs noise.

Real digits must beat noise on every classifier metric; metrics.json must hold every promised
metric with a finite value, its interval and its sample size; metrics.md one column per set.
Tiny sizes (32 samples, 300 reference images, few bootstrap resamples) keep it to seconds.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from diffusiontools.cli import main
from diffusiontools.data import load_mnist, to_model
from diffusiontools.evaluation import memorisation_summary, nearest_neighbour_distances
from diffusiontools.evaluation.frame_metrics import frame_statistics
from diffusiontools.evaluation.scores import HeldOutReference, memorisation_scores
from diffusiontools.outputs.samples_io import load_samples, save_samples
from diffusiontools.outputs.tables import ROWS

N = 32


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    """Evaluate held-out test digits (the last 64, outside the 300-image reference) vs noise."""
    folder = tmp_path_factory.mktemp("evaluate")
    data = load_mnist(None)
    save_samples(folder / "real.npz", data.test_images[-64:])
    noise = np.random.default_rng(0).integers(0, 256, (64, 28, 28), dtype=np.uint8)
    save_samples(folder / "noise.npz", torch.from_numpy(noise))
    out = folder / "out"
    args = ["evaluate", "--npz", str(folder / "real.npz"), str(folder / "noise.npz"),
            "--label", "real digits", "noise", "--n-samples", str(N), "--tsne-reference", "300",
            "--test-reference", "300", "--n-boot", "100", "--n-boot-set", "10", "--out", str(out),
            "--device", "cpu"]  # fmt: skip
    with threadpool_limits(1):  # BLAS threads only fight each other on a small shared machine
        assert main(args) == 0
    return out, json.loads((out / "metrics.json").read_text())


def test_every_metric_is_finite_with_interval_and_n(evaluation):
    _, results = evaluation
    assert list(results["runs"]) == ["real digits", "noise"]
    settings = results["settings"]
    assert settings["tsne_reference"] == 300 and settings["seed"] == 0
    assert len(settings["classifier_sha256"]) == 64
    for run in results["runs"].values():
        assert run["n_samples"] == N and sum(run["class_histogram"]) == N
        # No class was asked of these files, and they hold no unclamped samples: those two
        # metrics are left out, each with the reason.
        left_out = {"read_as_asked", "total_variance_unclamped"}
        assert set(run["metrics"]) == {key for key, _, _ in ROWS} - left_out
        assert "no class asked for" in run["omitted"]["read_as_asked"]
        assert "clamped uint8 images only" in run["omitted"]["total_variance_unclamped"]
        for key, entry in run["metrics"].items():
            assert math.isfinite(entry["value"]) and entry["n"] == N, key
            if key.startswith("kl_"):  # no bootstrap through a t-SNE fit, and it says so
                assert entry["ci"] is None and "t-SNE" in entry["note"]
            elif entry["ci"] is None:  # resamples that all agree (real digits' precision 1)
                assert "no interval: the" in entry["note"], key
            else:
                low, high = entry["ci"]
                assert math.isfinite(low) and low <= high and entry["n_boot"] >= 10, key
        assert math.isfinite(run["metrics"]["kid"]["std"])


def test_real_digits_beat_noise(evaluation):
    _, results = evaluation
    real = results["runs"]["real digits"]["metrics"]
    noise = results["runs"]["noise"]["metrics"]
    # 32 samples in 128 dimensions bias the Fréchet distance upwards (real: ~170), hence only 5x.
    assert real["frechet_distance"]["value"] * 5 < noise["frechet_distance"]["value"]
    assert real["recognisable_fraction"]["value"] >= 0.9
    # The classifier calls uniform noise an "8" with confidence ~1 (it never saw non-digits), so
    # recognisable fraction and confidence do not separate noise from digits; entropy does.
    assert real["class_entropy"]["value"] > noise["class_entropy"]["value"] + 1.0
    # Noise features sit in one spot that some real outlier's k-NN ball covers: precision can
    # read 1.0 for noise; recall (coverage) is what fails it.
    assert real["recall"]["value"] > noise["recall"]["value"] + 0.5
    assert real["kl_monte_carlo"]["value"] < noise["kl_monte_carlo"]["value"]


def test_table_and_figures(evaluation):
    out, results = evaluation
    lines = (out / "metrics.md").read_text().split("\n\n")[0].splitlines()  # the table
    assert lines[0] == "| metric | real digits | noise | test images |"
    assert all(line.count("|") == 5 for line in lines)
    # header, rule, n, metrics, histogram; no row for read_as_asked nor the unclamped total
    # variance, which no set has (NPZ files of uint8 images)
    assert len(lines) == 2 + 1 + len(ROWS) - 2 + 1
    assert not any(line.startswith("| read as the class asked for") for line in lines)
    assert not any(line.startswith("| total variance, unclamped") for line in lines)
    # the test images' own frame statistics beside the samples' (the 300 reference images)
    reference = frame_statistics(load_mnist(None).test_images[:300].numpy())
    assert results["reference"]["n"] == 300
    assert results["reference"]["values"]["frame_mean"] == pytest.approx(reference["frame_mean"])
    (row,) = [line for line in lines if line.startswith("| frame mean")]
    assert row.endswith(f"| {reference['frame_mean']:.2f} |")
    for name in ["tsne_test_labels", "tsne_real_digits", "tsne_noise", "samples_noise",
                 "class_histogram_real_digits", "memorisation_noise"]:  # fmt: skip
        assert (out / f"{name}.png").stat().st_size > 1000, name


def test_memorisation_scores_match_memorisation_summary():
    """The shared-baseline statistics equal ``memorisation_summary`` on the same images."""
    g = torch.Generator().manual_seed(0)
    train, test = torch.rand(200, 784, generator=g) - 0.5, torch.rand(50, 784, generator=g) - 0.5
    samples = torch.cat([train[:5], torch.rand(20, 784, generator=g) - 0.5])  # 5 exact copies
    summary = memorisation_summary(samples, train, test)
    test_d = nearest_neighbour_distances(test, train)[0].numpy()
    sample_d = nearest_neighbour_distances(samples, train)[0].numpy()
    ref = HeldOutReference.build(np.random.default_rng(0).random((50, 4)), test_d)
    scores = memorisation_scores(sample_d, ref, seed=0, n_boot=10)
    assert scores["memorisation_median_distance"]["value"] == pytest.approx(
        summary.median_sample_distance
    )
    assert scores["memorisation_ratio"]["value"] == pytest.approx(summary.ratio)
    assert scores["memorisation_below_test_p1"]["value"] == pytest.approx(
        summary.fraction_below_test_p1
    )


def test_too_few_samples_is_one_line_error(tmp_path, capsys):
    save_samples(tmp_path / "s.npz", to_model(torch.zeros(5, 28, 28, dtype=torch.uint8)))
    args = ["evaluate", "--npz", str(tmp_path / "s.npz"), "--n-samples", "5", "--out",
            str(tmp_path / "out")]  # fmt: skip
    assert main(args) == 2
    assert "--n-samples 5 is too few" in capsys.readouterr().err


def test_runs_are_sampled_saved_and_reconstructed(tmp_path):
    """Two tiny runs, Gaussian and cold pixel swap, sampled by ``evaluate`` itself; then the
    ``--reconstruction`` alias on the cold one."""
    ini = tmp_path / "tiny.ini"
    ini.write_text("[data]\nsubset = 128\n[model]\nn_hidden = 8, 8\n[diffusion]\nT = 20\n"
                   "[training]\nepochs = 1\nbatch_size = 64\nval_batches = 1\n"
                   "device = cpu\n")  # fmt: skip
    gauss, cold = tmp_path / "gauss", tmp_path / "cold"
    assert main(["train", str(ini), "--out", str(gauss)]) == 0
    cold_set = ["--set", "diffusion.kind=cold", "--set", "diffusion.degradation=pixel_swap"]
    assert main(["train", str(ini), "--out", str(cold), *cold_set, "--set", "diffusion.T=5"]) == 0
    out = tmp_path / "eval"
    args = ["evaluate", str(gauss), str(cold), "--n-samples", "16", "--tsne-reference", "100",
            "--test-reference", "100", "--n-boot", "20", "--n-boot-set", "5", "--out", str(out),
            "--device", "cpu"]  # fmt: skip
    with threadpool_limits(1):
        assert main(args) == 0
    runs = json.loads((out / "metrics.json").read_text())["runs"]
    assert runs["gauss"]["source"]["kind"] == "gaussian" and runs["gauss"]["source"]["epoch"] == 0
    assert runs["cold"]["source"]["cold_start"] == "test"
    for label in ("gauss", "cold"):
        images, meta = load_samples(out / f"samples_{label}.npz")
        assert images.shape == (16, 28, 28) and meta["label"] == label
    args = ["evaluate", str(cold), "--reconstruction", "--n-samples", "8", "--out", str(out)]
    assert main([*args, "--device", "cpu"]) == 0
    assert (out / "reconstruction_cold" / "reconstruction.json").is_file()


def test_an_earlier_evaluation_is_refused_and_replaced_only_with_overwrite(
    tmp_path, capsys, monkeypatch
):
    """./evaluation, the default, holds the last evaluate's results: a second evaluate refuses
    to write over them; --overwrite replaces that evaluation's files and leaves other files."""
    monkeypatch.chdir(tmp_path)
    save_samples(tmp_path / "digits.npz", load_mnist(None).test_images[:20])
    small = ["--tsne-reference", "50", "--test-reference", "50", "--n-boot", "5",
             "--n-boot-set", "3", "--device", "cpu"]  # fmt: skip
    argv = ["evaluate", "--npz", "digits.npz", *small]
    with threadpool_limits(1):
        assert main(argv) == 0
    folder = tmp_path / "evaluation"
    first = (folder / "metrics.json").read_text()
    (folder / "notes.txt").write_text("the user's own")
    capsys.readouterr()
    with threadpool_limits(1):
        assert main([*argv, "--seed", "1"]) == 2
    assert capsys.readouterr().err == (
        "error: evaluation/metrics.json already exists (and 6 more of the files it would "
        "write); choose another folder with --out DIR, or replace the evaluation there with "
        "--overwrite\n"
    )
    assert (folder / "metrics.json").read_text() == first
    with threadpool_limits(1):
        assert main([*argv, "--label", "test digits", "--overwrite"]) == 0
    assert list(json.loads((folder / "metrics.json").read_text())["runs"]) == ["test digits"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "class_histogram_test_digits.png",
        "memorisation_test_digits.png",
        "metrics.json",
        "metrics.md",
        "notes.txt",  # not evaluate's: kept
        "samples_test_digits.png",
        "tsne_test_digits.png",
        "tsne_test_labels.png",
    ]  # the replaced evaluation's digits figures are gone with it


def test_a_refused_evaluation_creates_no_folder(tmp_path, capsys):
    """The NPZ is read and checked before the output folder (two levels deep) is made."""
    save_samples(tmp_path / "s.npz", torch.zeros(12, 28, 28, dtype=torch.uint8))
    out = tmp_path / "new" / "out"
    argv = ["evaluate", "--npz", str(tmp_path / "s.npz"), "--n-samples", "13", "--out", str(out)]
    assert main(argv) == 2
    assert "holds 12 samples, fewer than --n-samples 13" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
