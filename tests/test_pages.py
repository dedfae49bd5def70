"""``diffusiontools pages`` renders in a real browser: every image decodes, the table is there.

Two tiny runs (Gaussian and cold pixel swap, no sample grids kept, so the pages draw samples
and trajectories from their checkpoints) and an evaluation folder in the format ``evaluate``
writes. The pages are opened in headless Chromium through selenium; where Chromium, its driver
or selenium is missing (``.ci/run`` installs them), the browser test is skipped and says why.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import diffusiontools as dt
from diffusiontools.cli import main
from diffusiontools.evaluation.figures import save_tsne_by_label
from diffusiontools.evaluation.scores import score
from diffusiontools.outputs.tables import ROWS

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]  # fmt: skip


def fake_evaluation(folder: Path, runs: dict[str, Path], sources: dict | None = None) -> Path:
    """metrics.json with every metric of ``evaluate`` (value 1, interval [0.5, 1.5]) and one
    t-SNE figure per run, in the layout ``evaluate`` writes; each set's source records the
    run's latest checkpoint as evaluate does, unless ``sources`` gives it."""
    metrics = {key: score(1.0, (0.5, 1.5), 16, 10) for key, _, _ in ROWS}
    metrics["kid"]["std"] = 0.1
    sources = sources or {
        label: {"run_dir": str(run_dir), **dt.load(run_dir, device="cpu").record()}
        for label, run_dir in runs.items()
    }
    results = {
        "settings": {"seed": 0},
        "runs": {label: {"n_samples": 16, "source": sources[label],
                         "metrics": metrics, "class_histogram": [2, 2, 2, 2, 2, 2, 1, 1, 1, 1]}
                 for label in runs},
    }  # fmt: skip
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps(results))
    points, labels = np.random.default_rng(0).normal(size=(50, 2)), np.arange(50) % 10
    save_tsne_by_label(points, labels, folder / "tsne_test_labels.png")
    for label in runs:
        save_tsne_by_label(points, labels, folder / f"tsne_{label}.png")
    return folder


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    root = tmp_path_factory.mktemp("pages")
    ini = root / "tiny.ini"
    ini.write_text("[data]\nsubset = 256\n[model]\nn_hidden = 8, 8\n[diffusion]\nT = 20\n"
                   "[training]\nepochs = 2\nbatch_size = 64\nsave_every = 1\nval_batches = 1\n"
                   "device = cpu\n")  # fmt: skip
    gauss, cold = root / "gauss", root / "cold"
    assert main(["train", str(ini), "--out", str(gauss)]) == 0
    cold_set = ["--set", "diffusion.kind=cold", "--set", "diffusion.degradation=pixel_swap"]
    assert main(["train", str(ini), "--out", str(cold), *cold_set, "--set", "diffusion.T=20"]) == 0
    (gauss / "learning_curve.png").unlink()  # the page must redraw it from metrics.csv
    evaluation = fake_evaluation(root / "evaluation", {"gauss": gauss, "cold": cold})
    out = root / "html"
    args = ["pages", str(gauss), str(cold), "--eval", str(evaluation), "--out", str(out),
            "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    return out


def test_pages_are_self_contained(pages):
    assert sorted(p.name for p in pages.glob("*.html")) == ["cold.html", "comparison.html",
                                                             "gauss.html"]  # fmt: skip
    for page in pages.glob("*.html"):
        text = page.read_text()
        assert "<script" not in text and 'src="data:image/png;base64,' in text
        assert 'src="http' not in text and 'src="file' not in text
    gauss = (pages / "gauss.html").read_text()
    for caption in ["train and validation loss per epoch", "samples across training",
                    "reverse process", "t-SNE of the test set"]:  # fmt: skip
        assert caption in gauss, caption


def browser(profile: Path):
    """A headless Chromium driven by selenium, or a skip saying what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("chromium and chromium-driver are not installed (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(driver))


def test_pages_render_in_chromium(pages, tmp_path):
    from selenium.webdriver.common.by import By

    chrome = browser(tmp_path / "profile")
    try:
        for name, n_images, n_columns in [("gauss", 5, 2), ("comparison", 4, 3)]:
            chrome.get((pages / f"{name}.html").as_uri())
            images = chrome.find_elements(By.TAG_NAME, "img")
            assert len(images) >= n_images, name
            for image in images:  # a broken data URI decodes to naturalWidth 0
                assert chrome.execute_script("return arguments[0].naturalWidth", image) > 0
            header = chrome.find_elements(By.CSS_SELECTOR, "table thead th")
            assert len(header) == n_columns, name
            rows = chrome.find_elements(By.CSS_SELECTOR, "table tbody tr")
            assert len(rows) == len(ROWS) + 2, name  # n, metrics, class histogram
    finally:
        chrome.quit()


def test_a_folder_without_checkpoints_is_refused_and_nothing_is_written(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.ini").write_text("[training]\nepochs = 1\n")  # and nothing else
    out = tmp_path / "html"
    assert main(["pages", str(tmp_path / "run"), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'run'} holds no checkpoint yet (expected "
        f"{tmp_path / 'run' / 'checkpoints' / 'latest.pt'})\n"
    )
    assert not out.exists()


def test_pages_already_written_are_replaced_only_with_overwrite(pages, tmp_path, capsys):
    out = tmp_path / "html"
    shutil.copytree(pages, out)
    gauss = pages.parent / "gauss"
    before = (out / "gauss.html").read_text()
    capsys.readouterr()
    assert main(["pages", str(gauss), "--out", str(out), "--device", "cpu"]) == 2
    assert capsys.readouterr().err == (
        f"error: {out / 'gauss.html'} already exists (and 3 more of the files it would write); "
        "choose another folder with --out DIR, or replace the pages with --overwrite\n"
    )
    assert (out / "gauss.html").read_text() == before
    assert main(["pages", str(gauss), "--out", str(out), "--device", "cpu", "--overwrite"]) == 0
    assert (out / "gauss.html").read_text() != before  # without --eval: no metrics section


def test_the_former_name_report_writes_the_same_pages_and_says_it_is_now_pages(
    pages, tmp_path, monkeypatch, capsys
):
    gauss = pages.parent / "gauss"
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["pages", str(gauss), "--device", "cpu"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["report", str(gauss), "--out", "old", "--device", "cpu"]) == 0
    warned = capsys.readouterr().err.splitlines()
    assert [line for line in warned if line.startswith("warning")] == [
        "warning: `diffusiontools report` is now `diffusiontools pages`"
    ]
    written = sorted(p.relative_to(tmp_path / "pages") for p in (tmp_path / "pages").rglob("*"))
    assert written == sorted(p.relative_to(tmp_path / "old") for p in (tmp_path / "old").rglob("*"))
    assert [str(p) for p in written] == [
        "figures",
        "figures/gauss_epochs.png",
        "figures/gauss_learning_curve.png",
        "figures/gauss_trajectory.png",
        "gauss.html",
    ]


def test_the_page_names_the_checkpoint_the_evaluation_scored(pages):
    gauss = pages.parent / "gauss"
    page = (pages / "gauss.html").read_text()
    assert f"Scored: {gauss}, epoch 1, step 6, raw weights." in page


def test_an_evaluation_is_matched_by_the_run_it_scored_not_by_name(pages, tmp_path, capsys):
    """A cold run's page showed a Gaussian run's metrics when the label matched its folder
    name; a run resumed past the scored checkpoint showed its old metrics without a word."""
    gauss, cold = pages.parent / "gauss", pages.parent / "cold"
    named_cold = fake_evaluation(tmp_path / "named", {"cold": gauss})  # scored gauss, says cold
    capsys.readouterr()
    args = ["pages", str(cold), "--out", str(tmp_path / "html"), "--device", "cpu"]
    assert main([*args, "--eval", str(named_cold)]) == 2
    assert capsys.readouterr().err == (
        f"error: --eval {named_cold} scored {gauss}, none of {cold}: give an evaluation of "
        "these runs (diffusiontools evaluate RUN), or none\n"
    )
    replaced = {"gauss": {"run_dir": str(gauss), "epoch": 1, "step": 9}}
    gone = fake_evaluation(tmp_path / "gone", {"gauss": gauss}, replaced)
    args[1] = str(gauss)
    assert main([*args, "--eval", str(gone)]) == 2
    assert capsys.readouterr().err == (
        f"error: --eval {gone} scored {gauss} at epoch 1 (step 9), weights the run no longer "
        "holds (latest: epoch 1, step 6): evaluate the run again (diffusiontools evaluate "
        "RUN)\n"
    )
    assert not (tmp_path / "html").exists()
    kept = {"gauss": {"run_dir": str(gauss), "epoch": 0, "step": 3, "weights": "raw"}}
    earlier = fake_evaluation(tmp_path / "earlier", {"gauss": gauss}, kept)
    assert main([*args, "--eval", str(earlier)]) == 0
    page = (tmp_path / "html" / "gauss.html").read_text()
    assert f"Scored: {gauss}, epoch 0, step 3, raw weights." in page


def test_the_validation_legend_gives_the_image_counts_the_rows_used():
    """A resume may change training.val_batches: the legend covers every row, not the last."""
    from diffusiontools.outputs.figures import _image_counts

    assert _image_counts([64, 64, 192]) == "64-192 images, "
    assert _image_counts([32.0, 32.0]) == "32 images, "
    assert _image_counts([None, None]) == ""  # runs from before val_images was recorded


def test_samples_across_training_end_at_the_latest_checkpoint(tmp_path, monkeypatch):
    """A run stopped inside an epoch (training.max_steps) showed its kept epochs only; its
    curve was titled by the config's name, not the run's."""
    from tiny_runs import train_tiny

    from diffusiontools.evaluation import run_pages
    from diffusiontools.training import epoch_end

    titles = []
    drawn = epoch_end.learning_curve_figure
    monkeypatch.setattr(
        epoch_end, "learning_curve_figure", lambda h, title, r: titles.append(title) or drawn(h)
    )
    # 12 steps an epoch: epoch 0 is kept (save_every 5), the run stops at step 30 in epoch 2
    run = train_tiny(tmp_path / "stopped", "training.max_steps=30", "training.save_every=5")
    assert set(titles) == {"stopped (tiny)"}  # the run, its config
    shown = {}
    monkeypatch.setattr(
        run_pages, "save_image_rows", lambda rows, labels, *a, **k: shown.update(labels=labels)
    )
    run_pages.drawn_epochs(run, tmp_path, torch.device("cpu"))
    assert shown["labels"] == ["epoch 0", "epoch 2, step 30"]


def test_an_evaluation_of_a_run_since_overwritten_is_refused(pages, tmp_path, capsys):
    """A run evaluated, then replaced by --overwrite with another learning rate that stops at
    the same epoch and step: epoch and step alone matched, and the old metrics were shown."""
    run = tmp_path / "gauss"
    shutil.copytree(pages.parent / "gauss", run)
    evaluation = fake_evaluation(tmp_path / "ev", {"gauss": run})
    ini = pages.parent / "tiny.ini"
    retrain = ["train", str(ini), "--out", str(run), "--overwrite", "--set", "training.lr=0.01"]
    assert main(retrain) == 0
    capsys.readouterr()
    args = ["pages", str(run), "--eval", str(evaluation), "--out", str(tmp_path / "html")]
    assert main([*args, "--device", "cpu"]) == 2
    assert capsys.readouterr().err == (
        f"error: --eval {evaluation} scored {run} at epoch 1 (step 6), weights the run no longer "
        "holds (latest: epoch 1, step 6): evaluate the run again (diffusiontools evaluate RUN)\n"
    )
