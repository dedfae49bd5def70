"""Issue #11, evaluation side: every input below with the outcome ``evaluate`` promises for it.

- library preconditions (t-SNE perplexity, mixture components, KID subsets, k-NN k) are checked
  or adapted before sklearn is called, never reached as a traceback;
- the run's own data settings, and memorisation against its training split only;
- ``--npz`` without ``--n-samples`` scores every image in the file, and says how many;
- intervals contain their own value and are as wide as the spread over disjoint sets;
- a degenerate set (copies of one image) gets its scores and a note, and loses no other set;
- no warning on a normal set; the Fréchet distance equals its closed form.

Tiny inputs throughout (tens of images, a few hundred reference images, few resamples).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits
from tiny_runs import copy_run, reference_run, single_thread, train_tiny  # noqa: F401

from diffusiontools.cli import main
from diffusiontools.data import load_mnist, to_model
from diffusiontools.evaluation import classifier_features, half_sample_ci, load_classifier
from diffusiontools.evaluation.feature_metrics import frechet_distance
from diffusiontools.evaluation.scores import (
    HeldOutReference,
    class_scores,
    feature_scores,
    pixel_scores,
)
from diffusiontools.outputs.samples_io import save_samples
from diffusiontools.training.run_config import load_config
from diffusiontools.training.training_data import load_training_data

SMALL = ["--tsne-reference", "50", "--test-reference", "50", "--n-boot", "20",
         "--n-boot-set", "5", "--device", "cpu"]  # fmt: skip


def evaluate_cli(args: list[str], out: Path, capsys) -> tuple[int, str, str]:
    """Run ``diffusiontools evaluate`` on one BLAS thread: (exit code, stdout, stderr)."""
    with threadpool_limits(1):
        code = main(["evaluate", *args, "--out", str(out)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(stderr: str, fragment: str) -> bool:
    """stderr holds one line "error: ..." with ``fragment`` (training may print around it)."""
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    return len(errors) == 1 and fragment in errors[0] and "Traceback" not in stderr


def mnist_test_images(first: int, count: int) -> torch.Tensor:
    return load_mnist(None).test_images[first : first + count]


# --- inputs refused in one line (exit 2), before any work ---------------------------------------

# (name, NPZ image count, extra flags, expected fragment of the one-line error)
REFUSED = [
    ("too few images in the NPZ", 5, [], "holds 5 samples; evaluate needs at least 10"),
    ("--n-samples above the file", 30, ["--n-samples", "40"],
     "holds 30 samples, fewer than --n-samples 40; give --n-samples 10..30"),
    # no --n-samples helps a file below the minimum: it says so, advising none (was "pass
    # --n-samples 4 or fewer", below the minimum of 10)
    ("--n-samples above a file below the minimum", 4, ["--n-samples", "10"],
     "holds 4 samples; evaluate needs at least 10 per set (the samples' Gaussian mixture has "
     "10 components)"),
    ("--n-samples below the mixture", 30, ["--n-samples", "5"], "--n-samples 5 is too few"),
    ("one half-sample", 30, ["--n-boot-set", "1"], "--n-boot-set 1 >= 2"),
    ("t-SNE reference below the mixture", 30, ["--tsne-reference", "5"], "--tsne-reference 5"),
    ("test reference above the test set", 30, ["--test-reference", "10001"], "--test-reference"),
    ("a seed numpy refuses", 30, ["--seed", "-1"], "--seed -1 must be between 0 and 4294967295"),
]  # fmt: skip


@pytest.mark.parametrize(
    "count, flags, fragment", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_refused_in_one_line(tmp_path, capsys, count, flags, fragment):
    save_samples(tmp_path / "s.npz", mnist_test_images(0, count))
    # the later flag wins in argparse, so SMALL's defaults are overridden by ``flags``
    code, _, err = evaluate_cli(["--npz", str(tmp_path / "s.npz"), *SMALL, *flags],
                                tmp_path / "out", capsys)  # fmt: skip
    assert code == 2 and one_line_error(err, fragment), err
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_more_than_10000_samples_a_set_are_refused(tmp_path, capsys):
    """Every set joins one t-SNE with the test images: at most the test set's 10,000 each."""
    big = tmp_path / "big.npz"
    save_samples(big, torch.zeros(10_001, 28, 28, dtype=torch.uint8))
    code, _, err = evaluate_cli(["--npz", str(big), *SMALL], tmp_path / "out", capsys)
    assert code == 2 and err == (
        f"error: {big} holds 10001 samples, more than evaluate scores per set (10000); give "
        "--n-samples 10..10000 to score its first ones\n"
    )
    run = reference_run()
    capsys.readouterr()  # its training's progress bars
    code, _, err = evaluate_cli([str(run), "--n-samples", "10001", *SMALL], tmp_path / "out",
                                capsys)  # fmt: skip
    assert code == 2 and err == (
        "error: --n-samples 10001 is more than evaluate scores per set: give 10..10000 (every "
        "set joins one t-SNE with the test images)\n"
    )
    assert not (tmp_path / "out").exists()


def test_the_reference_defaults_take_the_test_images_there_are(tmp_path, capsys):
    """A newcomer's data holds 1,000 test images (the suite's, like the embedded subset): the
    defaults of --tsne-reference and --test-reference take all 1,000, where they asked for
    MNIST's 10,000 and refused the user's data; a value given is still checked against them."""
    npz = tmp_path / "digits.npz"
    save_samples(npz, mnist_test_images(0, 10))
    rest = ["--n-boot", "20", "--n-boot-set", "5", "--device", "cpu"]
    code, _, err = evaluate_cli(["--npz", str(npz), *rest], tmp_path / "out", capsys)
    assert code == 0, err
    assert "\x1b[A" not in err  # nested bars' cursor moves, debris in a log file
    settings = json.loads((tmp_path / "out" / "metrics.json").read_text())["settings"]
    assert (settings["tsne_reference"], settings["test_reference"]) == (1000, 1000)
    code, _, err = evaluate_cli(
        ["--npz", str(npz), "--tsne-reference", "1001", *rest], tmp_path / "again", capsys
    )
    assert (
        code == 2
        and err == "error: --tsne-reference 1001 must be between 10 and the 1000 test images\n"
    )


def test_the_sets_are_recorded_by_absolute_paths(tmp_path, capsys, monkeypatch):
    """A run and an NPZ given relative to the folder evaluate runs in: metrics.json and the
    samples NPZ name them absolutely, so the records still say which run and file they scored
    when read from elsewhere."""
    copy_run(reference_run(), tmp_path / "runs" / "tiny")
    save_samples(tmp_path / "digits.npz", mnist_test_images(0, 10))
    monkeypatch.chdir(tmp_path)
    args = ["runs/tiny", "--npz", "digits.npz", "--n-samples", "10", *SMALL]
    code, _, err = evaluate_cli(args, Path("ev"), capsys)
    assert code == 0, err
    runs = json.loads((tmp_path / "ev" / "metrics.json").read_text())["runs"]
    here = tmp_path.resolve()
    assert runs["tiny"]["source"]["run_dir"] == str(here / "runs" / "tiny")
    assert runs["digits"]["source"]["npz"] == str(here / "digits.npz")
    with np.load(tmp_path / "ev" / "samples_tiny.npz") as data:
        assert json.loads(str(data["meta"]))["run_dir"] == str(here / "runs" / "tiny")


# --- NPZ sizes: every image unless --n-samples, and the count said --------------------------


# (name, images in the NPZ, flags, images scored, t-SNE perplexity used). sklearn refuses a
# perplexity >= the points; below 91 points (30 * 3 + 1) it is lowered to (points - 1) / 3.
SIZES = [
    # 10 digits + 10 test images: was sklearn's perplexity ValueError traceback
    ("ten digits, tiny t-SNE", 10, ["--n-samples", "10", "--tsne-reference", "10"], 10, 19 / 3),
    ("all 40 images without --n-samples", 40, [], 40, (40 + 50 - 1) / 3),
    ("the first 20 with --n-samples 20", 40, ["--n-samples", "20", "--tsne-reference", "100"],
     20, 30.0),
]  # fmt: skip


@pytest.mark.parametrize(
    "count, flags, scored, perplexity", [s[1:] for s in SIZES], ids=[s[0] for s in SIZES]
)
def test_npz_sizes_and_perplexity(tmp_path, capsys, caplog, count, flags, scored, perplexity):
    save_samples(tmp_path / "digits.npz", mnist_test_images(100, count))
    out = tmp_path / "out"
    code, stdout, _ = evaluate_cli(["--npz", str(tmp_path / "digits.npz"), *SMALL, *flags],
                                   out, capsys)  # fmt: skip
    assert code == 0
    results = json.loads((out / "metrics.json").read_text())
    run = results["runs"]["digits"]
    assert run["n_samples"] == scored and run["source"]["npz_images"] == count
    assert sum(run["class_histogram"]) == scored
    assert f"digits: {scored} samples of {count} in" in stdout
    assert results["settings"]["tsne_perplexity"] == pytest.approx(perplexity)
    lowered = [note for note in results["settings"]["notes"] if "perplexity" in note]
    assert len(lowered) == (perplexity != 30.0)
    logged = [r.message for r in caplog.records if "perplexity" in r.getMessage()]
    assert logged == lowered  # the same note through ``logging``


def test_the_embedded_fallback_warns_once(tmp_path, capsys, caplog, monkeypatch):
    """Without MNIST files, evaluate reads the data once and says so once (the test reference
    and the training split were read separately, and each read warned)."""
    save_samples(tmp_path / "digits.npz", mnist_test_images(0, 10))
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("DIFFUSIONTOOLS_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with caplog.at_level("WARNING", logger="diffusiontools"):
        code, _, err = evaluate_cli(["--npz", str(tmp_path / "digits.npz"), *SMALL],
                                    tmp_path / "out", capsys)  # fmt: skip
    assert code == 0, err
    warned = [r for r in caplog.records if r.getMessage().startswith("MNIST not found in ")]
    assert len(warned) == 1


# --- data settings and memorisation against the training split ---------------------------------


@pytest.fixture(scope="module")
def run_and_split():
    """The tiny reference run (data.subset 256: 205 training, 51 validation images)."""
    run = reference_run()
    config = load_config(run / "config.ini", [])
    return run, load_training_data(config, torch.device("cpu"))


def test_memorisation_uses_the_runs_training_split(tmp_path, capsys, run_and_split):
    """Training-split images are at distance 0 from the reference; validation images, which the
    model never saw, are not (before: all 60,000 images, validation included, were the
    reference, so both read 0)."""
    run, split = run_and_split
    save_samples(tmp_path / "train.npz", split.train[:12])
    save_samples(tmp_path / "val.npz", split.val[:12])
    out = tmp_path / "out"
    args = [str(run), "--npz", str(tmp_path / "train.npz"), str(tmp_path / "val.npz"),
            "--n-samples", "12", *SMALL]  # fmt: skip
    code, _, _ = evaluate_cli(args, out, capsys)
    assert code == 0
    results = json.loads((out / "metrics.json").read_text())
    data = results["settings"]["data"]
    assert (data["n_train_split"], data["n_val_split"]) == (205, 51)
    assert data["settings"]["subset"] == 256 and "checkpoint" in data["settings"]["from"]
    assert "205 images of the training split" in data["memorisation_reference"]
    median = {label: run["metrics"]["memorisation_median_distance"]["value"]
              for label, run in results["runs"].items()}  # fmt: skip
    assert median["train"] == 0.0
    assert median["val"] > 1.0  # [-0.5, 0.5] units; MNIST neighbours are ~4 apart
    assert results["runs"]["reference"]["n_samples"] == 12


# (name, second run's --set override or None, flags, expected one-line error fragment)
DATA_REFUSED = [
    ("runs with different data settings", "data.subset=200", [], "different [data] settings"),
    # Only the keys given are named (--data-dir beside a run is where its data lie now).
    ("--set beside a run", None, ["--set", "data.subset=100"], "settings data.subset=100 differ"),
]


@pytest.mark.parametrize(
    "override, flags, fragment", [d[1:] for d in DATA_REFUSED], ids=[d[0] for d in DATA_REFUSED]
)
def test_data_settings_refused(tmp_path, capsys, run_and_split, override, flags, fragment):
    run, _ = run_and_split
    runs = [str(run)]
    if override is not None:
        runs.append(str(train_tiny(tmp_path / "other", override, "training.epochs=1")))
    code, _, err = evaluate_cli([*runs, "--n-samples", "10", *SMALL, *flags], tmp_path / "o",
                                capsys)  # fmt: skip
    assert code == 2 and one_line_error(err, fragment), err


# --- a degenerate set keeps its scores and loses no other set -----------------------------------


def test_degenerate_set_is_scored_beside_a_normal_one(tmp_path, capsys):
    """30 copies of one training image beside 30 test digits: one metrics.json with both."""
    data = load_mnist(None)
    save_samples(tmp_path / "copies.npz", data.train_images[:1].repeat(30, 1, 1))
    save_samples(tmp_path / "digits.npz", data.test_images[-30:])
    out = tmp_path / "out"
    npz = ["--npz", str(tmp_path / "copies.npz"), str(tmp_path / "digits.npz")]
    code, _, _ = evaluate_cli([*npz, *SMALL], out, capsys)
    assert code == 0
    runs = json.loads((out / "metrics.json").read_text())["runs"]
    copies, digits = runs["copies"]["metrics"], runs["digits"]["metrics"]
    expected = {  # metric: (value, absolute tolerance) of 30 identical images
        "total_variance": (0.0, 1e-12),
        "recall": (0.0, 0.0),
        "class_entropy": (0.0, 0.0),
        "memorisation_median_distance": (0.0, 0.0),  # it IS a training image
        "memorisation_below_test_p1": (1.0, 0.0),
    }
    for key, (value, tolerance) in expected.items():
        assert copies[key]["value"] == pytest.approx(value, abs=tolerance), key
        if copies[key]["ci"] is None:  # every resample of 30 copies gave the same value
            assert "no interval: the" in copies[key]["note"], key
        else:
            low, high = copies[key]["ci"]
            assert low <= copies[key]["value"] <= high, key
    for key in ("kl_faithful", "kl_grid_normalised", "kl_monte_carlo"):
        # t-SNE puts copies of one image on a few points: no 10-component mixture fits them
        assert copies[key]["value"] is None and "not computed" in copies[key]["note"], key
        assert math.isfinite(digits[key]["value"]), key
    assert all(entry["value"] is not None for entry in digits.values())
    assert "not computed" in (out / "metrics.md").read_text()


# --- intervals: contain their value, as wide as the spread over disjoint sets --------------------

N_SETS, SET_SIZE, N_REFERENCE, N_HALF = 20, 100, 300, 20
# interval sd (half-width / 1.96) over the sd of the value across the 20 disjoint sets, measured
# with these exact sizes and seeds. Half-sampling is exact to first order (ratio 1); where the
# first-order term vanishes (samples distributed like the reference: Fréchet distance, KID,
# near-uniform class entropy of real digits) the second-order term is estimated 3x in variance,
# so those ratios sit near sqrt(3) = 1.73: conservative. Recall's union-of-balls coverage is the
# one that reads narrow (0.71 here; 0.86 with 1,000 reference images). The observed sd over 20
# sets is itself uncertain by about +-16%, hence the ranges.
EXPECTED_SD_RATIO = {  # metric: (measured ratio, allowed range)
    "frechet_distance": (1.88, (1.0, 2.5)),
    "kid": (1.42, (1.0, 2.5)),
    "precision": (1.23, (0.7, 1.6)),
    "recall": (0.71, (0.5, 1.4)),
    "total_variance": (1.06, (0.7, 1.4)),
    "class_entropy": (1.61, (1.0, 2.5)),
}


@pytest.fixture(scope="module")
def disjoint_sets():
    """Scores of 20 disjoint sets of 100 MNIST training images, through the real classifier,
    against the first 300 test images."""
    data = load_mnist(None)
    order = torch.randperm(len(data.train_images), generator=torch.Generator().manual_seed(1))
    images = data.train_images[order[: N_SETS * SET_SIZE]]  # (2000, 28, 28) uint8
    classifier = load_classifier("cpu")
    features, probabilities = classifier_features(classifier, to_model(images), "cpu")
    test_features, _ = classifier_features(
        classifier, to_model(data.test_images[:N_REFERENCE]), "cpu"
    )
    reference = HeldOutReference.build(test_features, np.zeros(N_REFERENCE))
    scores = []
    with threadpool_limits(1):
        for i in range(N_SETS):
            rows = slice(i * SET_SIZE, (i + 1) * SET_SIZE)
            x = images[rows].numpy().astype(np.float64) / 255 - 0.5
            scores.append({
                **feature_scores(features[rows], reference, seed=i, n_boot=N_HALF),
                **pixel_scores(x, None, seed=i, n_boot=N_HALF),
                **class_scores(probabilities[rows], seed=i, n_boot=50, n_boot_set=N_HALF),
            })  # fmt: skip
    return scores


@pytest.mark.parametrize("key", list(EXPECTED_SD_RATIO))
def test_interval_width_matches_spread_over_disjoint_sets(disjoint_sets, key):
    values = np.array([s[key]["value"] for s in disjoint_sets])
    intervals = np.array([s[key]["ci"] for s in disjoint_sets])  # (20, 2)
    assert all(s[key]["interval"] == "half_sample" for s in disjoint_sets)
    # every interval contains its own value (the bootstrap's Fréchet interval often did not)
    assert np.all((intervals[:, 0] <= values) & (values <= intervals[:, 1])), key
    interval_sd = np.mean(intervals[:, 1] - intervals[:, 0]) / (2 * 1.96)
    ratio = interval_sd / values.std(ddof=1)
    _, (low, high) = EXPECTED_SD_RATIO[key]
    assert low <= ratio <= high, f"{key}: interval sd / observed sd = {ratio:.2f}"


def test_half_sampling_of_a_mean_is_the_standard_error():
    """For a mean the delete-d jackknife is exact: sd = s / sqrt(N), here for N = 101 (odd, so
    the factor m / (N - m) = 50 / 51 matters) with 4000 half-samples (sd within ~2%)."""
    values = np.random.default_rng(3).exponential(size=101)
    value, (low, high) = half_sample_ci(np.mean, values, n_half=4000, seed=0)
    assert value == values.mean()
    standard_error = values.std(ddof=1) / np.sqrt(len(values))
    assert (high - low) / (2 * 1.96) == pytest.approx(standard_error, rel=0.05)
    assert (low + high) / 2 == pytest.approx(value, abs=1e-12)  # centred on the value
    # a constant set has no spread, and a bounded metric is clipped to its range
    assert half_sample_ci(np.mean, np.ones(20), n_half=5)[1] == (1.0, 1.0)
    assert half_sample_ci(np.mean, values, n_half=50, bounds=(0.0, 1.0))[1][1] == 1.0


@pytest.mark.parametrize("key", ["mean_confidence", "recognisable_fraction"])
def test_per_sample_means_keep_the_bootstrap(disjoint_sets, key):
    assert all(s[key]["interval"] == "bootstrap" for s in disjoint_sets)
    for s in disjoint_sets:  # a set read as digits throughout has no spread: no interval
        if s[key]["ci"] is None:
            assert "no interval: the" in s[key]["note"] and s[key]["value"] == 1.0
        else:
            assert s[key]["ci"][0] <= s[key]["value"] <= s[key]["ci"][1]


# --- no warnings on a normal set; the Fréchet distance in closed form ---------------------------


def test_normal_set_emits_no_warning(tmp_path, capsys):
    """scipy's "matrix is singular" (59 of the 128 features are 0 on every test image) and
    numpy's "covariance is not symmetric positive-semidefinite" (float32 t-SNE points) used to
    fire on every set; now any warning is an error here."""
    save_samples(tmp_path / "digits.npz", mnist_test_images(200, 40))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code, _, err = evaluate_cli(["--npz", str(tmp_path / "digits.npz"), *SMALL],
                                    tmp_path / "out", capsys)  # fmt: skip
    assert code == 0, err


def test_frechet_distance_closed_form_with_dead_features():
    """Diagonal covariances: |mu_a - mu_b|^2 + sum(v_a + v_b - 2 sqrt(v_a v_b)). Four rows of
    orthogonal +-1 contrasts give exactly diagonal sample covariances, variance 4 s^2 / 3; the
    last two features are 0 in both sets (dead), the third only in set b (singular both)."""
    contrasts = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=np.float64)
    s_a, s_b = np.array([1.0, 2.0, 0.5]), np.array([3.0, 0.5, 0.0])
    mu_a, mu_b = np.array([0.0, 1.0, 2.0, 0.0, 0.0]), np.array([1.0, -1.0, 2.5, 0.0, 0.0])
    a = np.pad(contrasts * s_a, ((0, 0), (0, 2))) + mu_a  # (4, 5)
    b = np.pad(contrasts * s_b, ((0, 0), (0, 2))) + mu_b
    v_a, v_b = 4 * s_a**2 / 3, 4 * s_b**2 / 3
    expected = ((mu_a - mu_b) ** 2).sum() + (v_a + v_b - 2 * np.sqrt(v_a * v_b)).sum()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-12)
        assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-12)
    assert expected == pytest.approx(1 + 4 + 0.25 + 4 / 3 * (4 + 2.25 + 0.25), rel=1e-12)


def test_resamples_that_do_not_vary_give_no_interval_not_a_zero_width_one():
    """n_boot_set = 2 half-samples of a set whose metric they cannot move (one class: entropy
    0) printed [0.000, 0.000] as a 95% interval."""
    from diffusiontools.evaluation.scores import bootstrapped, half_sampled
    from diffusiontools.outputs.tables import cell

    ones = np.ones(20)
    flat = half_sampled(lambda v: float(v.std()), ones, seed=0, n_boot=2)
    assert flat["value"] == 0.0 and flat["ci"] is None
    assert "no interval: the 2 resamples all gave 0" in flat["note"]
    assert cell(flat, 3) == "0.000 (no CI)"
    same = bootstrapped(np.mean, ones, seed=0, n_boot=5)
    assert same["ci"] is None and cell(same, 2) == "1.00 (no CI)"
    spread = bootstrapped(np.mean, np.arange(20.0), seed=0, n_boot=50)
    assert spread["ci"][0] < 9.5 < spread["ci"][1]


def test_a_value_that_rounds_to_zero_shows_no_minus_sign():
    """A Monte Carlo grid "KL" of -0.0001 (an estimate, it can dip below 0) showed "-0.000"."""
    from diffusiontools.outputs.tables import cell

    entry = {"value": -0.0001, "ci": [-0.0004, 0.0012]}
    assert cell(entry, 3) == "0.000 [0.000, 0.001]"
    assert cell({"value": -0.0006, "ci": None}, 3) == "-0.001 (no CI)"
