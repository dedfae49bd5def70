""" "Read as the class asked for": the fraction of a set's samples that the data set's classifier
reads as the class each was asked to be, where the set records it (a class-conditional model
sampled by evaluate or by sample, an NPZ with ``asked_classes`` or ``digit``), and left out with
its reason where it does not."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_runs import reference_run, single_thread, train_tiny  # noqa: F401  (autouse: one thread)

import diffusiontools as dt
from diffusiontools.cli import main
from diffusiontools.data import load_mnist, to_model
from diffusiontools.errors import UserError
from diffusiontools.evaluation import classifier_features, load_classifier
from diffusiontools.evaluation.asked_classes import recorded_asked
from diffusiontools.evaluation.class_metrics import read_as_asked
from diffusiontools.evaluation.scores import asked_scores
from diffusiontools.outputs.samples_io import load_samples, save_samples
from diffusiontools.outputs.tables import markdown_table, missing_notes

SMALL = {"tsne_reference": 60, "test_reference": 60, "n_boot": 20, "n_boot_set": 4}
SMALL_FLAGS = ["--tsne-reference", "60", "--test-reference", "60", "--n-boot", "20",
               "--n-boot-set", "4", "--device", "cpu"]  # fmt: skip
NO_RECORD = "its file records no class asked for per sample"


def test_a_sample_is_read_as_asked_where_the_argmax_is_its_class():
    probabilities = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.3, 0.6, 0.1]])
    asked = np.array([0, 0, 2, 1])  # the second is read as 1, asked as 0
    assert read_as_asked(probabilities, asked).tolist() == [True, False, True, True]
    entry = asked_scores(probabilities, asked, seed=0, n_boot=200)["read_as_asked"]
    assert entry["value"] == 0.75 and entry["n"] == 4 and entry["interval"] == "bootstrap"
    low, high = entry["ci"]  # resamples of 4 draws of 0/1: fractions in quarters
    assert 0.0 <= low < 0.75 < high == 1.0


def test_the_asked_classes_are_read_from_a_record_or_left_out_with_the_reason():
    listed, reason = recorded_asked({"asked_classes": [0, 1, 2, 0]}, 4, 3, "set 'a'")
    assert listed.tolist() == [0, 1, 2, 0] and reason is None
    one, _ = recorded_asked({"digit": 2, "labels": "all 2"}, 3, 10, "set 'a'")  # an older file
    assert one.tolist() == [2, 2, 2]
    _, reason = recorded_asked({"digit": None, "labels": None, "guidance": None}, 3, 10, "x")
    assert reason == "its samples were drawn unconditionally: no class was asked for"
    _, reason = recorded_asked({"labels": None, "guidance": 0.0}, 3, 10, "x")
    assert reason == "its samples were drawn with sampling.guidance = 0: no class was asked for"
    cycled, _ = recorded_asked({"labels": "cycled 0-2", "digit": None}, 7, 3, "x")  # older
    assert cycled.tolist() == [0, 1, 2, 0, 1, 2, 0]
    _, reason = recorded_asked({"labels": "cycled 0-9 "}, 3, 10, "x")  # a user's own meta
    assert reason == (
        f"{NO_RECORD} (meta 'asked_classes', which diffusiontools sample writes for a "
        "class-conditional model, 'digit' or 'labels'; its 'labels' = 'cycled 0-9 ' is not "
        "'cycled 0-K')"
    )
    with pytest.raises(UserError, match=r"asked classes 0..9, but .* has classes 0..2"):
        recorded_asked({"labels": "cycled 0-9"}, 12, 3, "x")
    with pytest.raises(
        UserError, match=r"set 'a' records meta 'asked_classes' that is not a list of 4"
    ):
        recorded_asked({"asked_classes": [0, 1, 2]}, 4, 3, "set 'a'")
    with pytest.raises(UserError, match=r"asked classes 0..3, but .* has classes 0..2"):
        recorded_asked({"asked_classes": [0, 3, 1, 1]}, 4, 3, "set 'a'")
    huge = 2**70  # beyond int64: refused in words, not an OverflowError
    with pytest.raises(UserError, match=rf"asked classes {huge}..{huge}, but .* classes 0..2"):
        recorded_asked({"asked_classes": [huge] * 4}, 4, 3, "set 'a'")
    with pytest.raises(UserError, match=r"set 'a' records meta 'digit' = '3', not a class index"):
        recorded_asked({"digit": "3"}, 4, 3, "set 'a'")


def test_a_cycle_of_other_classes_than_the_datas_is_refused():
    cycled, _ = recorded_asked({"labels": "cycled 0-9"}, 3, 10, "x")  # fewer images than classes
    assert cycled.tolist() == [0, 1, 2]
    for labels, shown in [("cycled 0-0", "0"), ("cycled 0-99", "99"), ("cycled 0-09", "09")]:
        with pytest.raises(UserError) as e:
            recorded_asked({"labels": labels}, 10, 10, "set 'a'")
        assert str(e.value) == (
            f"set 'a' records meta 'labels' = {labels!r}, asked classes 0..{shown}, but the "
            "data set it is scored against has classes 0..9: score it against its own data"
        )
    long = "9" * 5000  # beyond int()'s 4,300 digits: refused in words, not a ValueError
    with pytest.raises(UserError, match=r"'labels' = 'cycled 0-9999.*has classes 0..9"):
        recorded_asked({"labels": f"cycled 0-{long}"}, 10, 10, "set 'a'")
    _, reason = recorded_asked({"labels": "cycled 0-\u0669"}, 10, 10, "x")  # an Arabic-Indic 9
    assert reason.startswith(NO_RECORD)
    _, reason = recorded_asked({"labels": "cycled 0-9"}, 10, 0, "x")
    assert reason == "the data set has no classes to ask for"


def test_every_cell_without_a_value_says_why_below_the_table():
    """A "–" cell and a "not computed" one are explained; a metric no set has (no row) needs
    no note."""
    entry = {"value": 0.5, "ci": None}
    failed = {"value": None, "ci": None, "note": "grid sum; not computed: 9 distinct points"}
    results = {
        "runs": {
            "cond": {
                "n_samples": 4,
                "metrics": {"read_as_asked": entry, "kl_faithful": entry},
                "class_histogram": None,
            },
            "mine": {
                "n_samples": 4,
                "metrics": {"kl_faithful": failed},
                "class_histogram": None,
                "omitted": {"read_as_asked": "no class was asked for", "frame_mean": "never"},
            },
        }
    }
    notes = [
        "mine has no read as the class asked for (no class was asked for).",
        "mine, KL, report's grid sum: grid sum; not computed: 9 distinct points.",
    ]
    assert missing_notes(results) == notes
    page = markdown_table(results)
    assert "| read as the class asked for | 0.500 (no CI) | – |" in page
    assert "| KL, report's grid sum | 0.500 (no CI) | not computed |" in page
    assert page.endswith("".join(f"\n{note}\n" for note in notes))


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("conditional") / "run", "training.epochs=1",
                      "model.num_classes=10")  # fmt: skip


def test_sample_records_the_class_each_sample_was_asked_to_be(conditional_run, tmp_path):
    cycled, seven, plain = tmp_path / "cycled.npz", tmp_path / "seven.npz", tmp_path / "plain.npz"
    grid = ["--out", str(tmp_path / "grid.png"), "--overwrite", "-n", "12"]
    assert main(["sample", str(conditional_run), *grid, "--npz", str(cycled)]) == 0
    assert main(["sample", str(conditional_run), *grid, "--npz", str(seven), "--digit", "7"]) == 0
    assert main(["sample", str(reference_run()), *grid, "--npz", str(plain)]) == 0
    assert load_samples(cycled)[1]["asked_classes"] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert load_samples(seven)[1]["asked_classes"] == [7] * 12
    assert "asked_classes" not in load_samples(plain)[1]  # an unconditional model asks none


def test_evaluate_scores_a_conditional_model_as_its_samples_were_asked(conditional_run, tmp_path):
    out = tmp_path / "eval"
    sets = {"cond": dt.load(conditional_run), "plain": dt.load(reference_run())}
    result = dt.evaluate(sets, n_samples=20, out=out, **SMALL)
    metrics = result.metrics
    cond, plain = metrics["runs"]["cond"], metrics["runs"]["plain"]
    entry = cond["metrics"]["read_as_asked"]
    assert entry["n"] == 20 and entry["interval"] == "bootstrap" and 0 <= entry["value"] <= 1
    assert cond["omitted"] == {} and "asked_classes" not in cond["source"]
    assert "read_as_asked" not in plain["metrics"]
    reason = "its samples were drawn unconditionally: no class was asked for"
    assert plain["omitted"] == {"read_as_asked": reason}
    with pytest.raises(UserError, match=f"set 'plain' has no read_as_asked: {reason}"):
        result.value("plain", "read_as_asked")
    # The samples saved record their asked classes: scored again from the file, the same value.
    assert load_samples(out / "samples_cond.npz")[1]["asked_classes"] == [i % 10 for i in range(20)]
    again = dt.evaluate({"cond": out / "samples_cond.npz"}, out=tmp_path / "again", **SMALL)
    assert again.metrics["runs"]["cond"]["metrics"]["read_as_asked"] == entry


def read_correctly(n: int) -> tuple[torch.Tensor, np.ndarray]:
    """The first n MNIST test images (uint8 (n, 1, 28, 28)) beyond the 60 reference images that
    the shipped classifier reads as their labels, and those labels (n,)."""
    data = load_mnist(None)
    images, labels = data.test_images[60:], data.test_labels[60:].numpy()
    _, probabilities = classifier_features(load_classifier("cpu"), to_model(images), "cpu")
    right = np.flatnonzero(np.argmax(probabilities, axis=1) == labels)[:n]
    assert len(right) == n  # the classifier reads over 95% of test digits right
    return images[right], labels[right]


def test_the_cli_shows_the_fraction_read_as_asked_and_leaves_out_files_without_a_record(
    tmp_path, capsys
):
    """24 test digits the classifier reads right, the first 20 scored (--n-samples 20), of
    which 15 asked as their own label and 5 as the next one: 15 / 20 read as asked. The same
    images without a record: left out."""
    images, labels = read_correctly(24)
    asked = labels.copy()
    asked[15:20] = (labels[15:20] + 1) % 10
    save_samples(tmp_path / "asked.npz", images, asked_classes=asked.tolist())
    save_samples(tmp_path / "old.npz", images)  # a file of a version that recorded no classes
    out = tmp_path / "eval"
    args = ["evaluate", "--npz", str(tmp_path / "asked.npz"), str(tmp_path / "old.npz"),
            "--n-samples", "20", "--out", str(out), *SMALL_FLAGS]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    entry = metrics["runs"]["asked"]["metrics"]["read_as_asked"]
    assert entry["value"] == 0.75 and entry["n"] == 20 and entry["interval"] == "bootstrap"
    assert entry["ci"][0] < 0.75 < entry["ci"][1]
    old = metrics["runs"]["old"]
    assert "read_as_asked" not in old["metrics"]
    assert old["omitted"]["read_as_asked"].startswith(NO_RECORD)
    # The test images asked as their labels: the classifier's accuracy on the 60 of them.
    reference = metrics["reference"]["values"]["read_as_asked"]
    assert 0.9 <= reference <= 1.0
    (row,) = [line for line in (out / "metrics.md").read_text().splitlines()
              if line.startswith("| read as the class asked for |")]  # fmt: skip
    low, high = entry["ci"]
    assert (
        row
        == f"| read as the class asked for | 0.750 [{low:.3f}, {high:.3f}] | – | {reference:.3f} |"
    )
