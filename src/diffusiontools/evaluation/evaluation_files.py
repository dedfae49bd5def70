"""What an evaluation writes into its folder: the files named (and an earlier evaluation's found,
refused or replaced), each set's figures, and metrics.json / metrics.md."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from sklearn.mixture import GaussianMixture

from ..data import DatasetSpec
from ..outputs.figures import save_sample_grid
from ..outputs.safe_writes import refuse_existing
from ..outputs.tables import markdown_table
from . import class_histogram
from .evaluation_data import EvaluationData
from .figures import save_class_histogram, save_memorisation_pairs, save_tsne_over_density
from .sample_sets import file_stem
from .scores import TV_UNCLAMPED
from .set_measures import MeasuredSet
from .set_scoring import JointEmbedding
from .settings import EvaluationSettings

GRID_SHOWN = 100  # samples drawn in each run's grid
PAIRS_SHOWN = 8  # closest sample / training-image pairs drawn
INTERVALS_NOTE = (
    "95%; set-level metrics (total variance, Fréchet distance, KID, precision, recall, class "
    "entropy): value ± 1.96 sd with sd from n_boot_set subsets of N/2 distinct samples "
    "(half-sampling); per-sample means and medians (confidence, recognisable fraction, read as "
    "the class asked for, memorisation): percentile bootstrap with n_boot resamples; KLs: none"
)
EVALUATION_FILES = ("metrics.json", "metrics.md", "tsne_test_labels.png")
SET_FILES = ("samples_{}.png", "tsne_{}.png", "class_histogram_{}.png", "memorisation_{}.png")


def evaluation_files(out_dir: Path, labels: list[str], npz_labels: list[str]) -> list[Path]:
    """Every file evaluate writes into ``out_dir`` for sets ``labels``, of which it draws or is
    given as images (and saves as samples_<label>.npz) those in ``npz_labels``."""
    files = [out_dir / name for name in EVALUATION_FILES]
    for label in labels:
        files += [out_dir / name.format(file_stem(label)) for name in SET_FILES]
    return files + [out_dir / f"samples_{file_stem(label)}.npz" for label in npz_labels]


def earlier_evaluation(out_dir: Path) -> list[Path]:
    """The files of the evaluation already in ``out_dir`` (those its metrics.json names)."""
    try:
        labels = list(json.loads((out_dir / "metrics.json").read_text())["runs"])
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [p for p in evaluation_files(out_dir, labels, labels) if p.exists()]


def files_replaced(
    out_dir: Path, labels: list[str], saved: list[str], inputs: list[Path], overwrite: bool
) -> list[Path]:
    """The files of an earlier evaluation in ``out_dir`` that this one (sets ``labels``, of which
    ``saved`` are written as NPZ) replaces; without ``overwrite``, refuses any of them and any
    file it would write. An NPZ among ``inputs`` (scored here) stays, earlier's or not."""
    earlier = earlier_evaluation(out_dir)
    if not overwrite:
        refuse_existing(
            [*earlier, *evaluation_files(out_dir, labels, saved)],
            "choose another folder with out=DIR, or replace the evaluation there with "
            "overwrite=True",
        )
    kept = {p.absolute() for p in inputs}
    return [p for p in earlier if p.absolute() not in kept]


def save_set_figures(
    measured: MeasuredSet,
    embedding: np.ndarray,
    test_gmm: GaussianMixture,
    n_test_points: int,
    train: torch.Tensor,
    spec: DatasetSpec,
    work: Path,
) -> None:
    """A set's sample grid, t-SNE points over the test images' density (``n_test_points``
    of them), class histogram (over ``spec.class_names``) and closest pairs to the training
    images ``train`` uint8 (M, C, H, W), into ``work``."""
    s, stem = measured.samples, file_stem(measured.samples.label)
    shown = min(GRID_SHOWN, len(s.images))
    save_sample_grid(
        torch.from_numpy(s.images[:shown]),
        work / f"samples_{stem}.png",
        title=f"{s.label}: {shown} of {len(s.images)} samples",
    )
    save_tsne_over_density(embedding, test_gmm, n_test_points, s.label, work / f"tsne_{stem}.png")
    if measured.probabilities is not None:  # None: unlabelled data, which has no classes
        histogram = class_histogram(measured.probabilities)
        save_class_histogram(
            histogram, s.label, work / f"class_histogram_{stem}.png", spec.class_names
        )
    closest = np.argsort(measured.distances, kind="stable")[:PAIRS_SHOWN]
    save_memorisation_pairs(
        torch.from_numpy(s.images[closest]),
        train[measured.nearest[closest]],
        measured.distances[closest],
        s.label,
        len(s.images),
        work / f"memorisation_{stem}.png",
    )


def run_record(measured: MeasuredSet, metrics: dict[str, dict]) -> dict:
    """One set's entry under metrics.json's ``runs`` (``class_histogram`` None: unlabelled
    data); ``omitted``: the metrics left out of this set's, and why (``read_as_asked`` of a
    labelled data set, where its asked classes are unknown; the unclamped total variance,
    where its samples as drawn are not there)."""
    p, samples = measured.probabilities, measured.samples
    omitted = {} if samples.clamped_only is None else {TV_UNCLAMPED: samples.clamped_only}
    if p is not None and samples.unasked is not None:
        omitted["read_as_asked"] = samples.unasked
    return {
        "n_samples": len(samples.images),
        "source": samples.source,
        "metrics": metrics,
        "omitted": omitted,
        "class_histogram": None if p is None else class_histogram(p).tolist(),
    }


def write_metrics(
    work: Path,
    settings: EvaluationSettings,
    data: EvaluationData,
    embedding: JointEmbedding,
    runs: dict[str, dict],
    reference_values: dict[str, float],
) -> dict:
    """metrics.json and metrics.md into ``work``: the settings, every set's ``runs`` entry and
    the test images' own ``reference_values``; returns the metrics.json dict."""
    results = {
        "settings": {
            **settings.record(data.classifier.record),
            "tsne_perplexity": embedding.perplexity,
            "n_boot": settings.n_boot,
            "n_boot_set": settings.n_boot_set,
            "intervals": INTERVALS_NOTE,
            "data": data.record(),
            "notes": embedding.notes,
        },
        "runs": runs,
        "reference": {
            "label": "test images",
            "n": settings.test_reference,
            "note": "the first test_reference test images themselves, on the metrics that "
            "need no reference set: what a generator of the data set's images should score",
            "values": reference_values,
        },
    }
    (work / "metrics.json").write_text(json.dumps(results, indent=2))
    (work / "metrics.md").write_text(markdown_table(results))
    return results
