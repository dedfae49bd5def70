"""The evaluation's figures: t-SNE maps (the report's Figures 5, 6 and 14), class histograms and
memorisation pairs. Every title states how many images the figure shows.

Kept apart from ``outputs/figures.py`` (training and sampling figures), so the evaluation
command can change without touching the training code path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from ..outputs.figures import save_figure, save_image_rows
from .report_metrics import GRID_LIMIT, GRID_POINTS, grid_log_densities


def save_tsne_by_label(
    embedding: np.ndarray,
    labels: np.ndarray,
    path: Path,
    class_names: Sequence[str] = tuple("0123456789"),
) -> None:
    """Test-set t-SNE points (K, 2) coloured by class (K,), one of ``class_names`` (MNIST's
    digits by default) — the report's Figure 5."""
    n_classes = len(class_names)
    fig = Figure(figsize=(6, 6))
    ax = fig.subplots()
    points = ax.scatter(
        embedding[:, 0],
        embedding[:, 1],
        c=labels,
        cmap="tab10" if n_classes <= 10 else "tab20",
        s=3,
        vmin=-0.5,
        vmax=n_classes - 0.5,
    )
    colorbar = fig.colorbar(points, ax=ax, ticks=range(n_classes), label="class")
    colorbar.ax.set_yticklabels(class_names)
    ax.set_title(f"t-SNE of {len(embedding)} test images, coloured by label", fontsize=9)
    ax.set_aspect("equal")
    save_figure(fig, path)


def save_tsne_over_density(
    sample_embedding: np.ndarray, test_gmm, n_test: int, label: str, path: Path
) -> None:
    """Samples' t-SNE points (N, 2) over the contours of the test set's fitted mixture density,
    on the report's 201x201 grid over [-100, 100]^2 (the report's Figures 6 and 14)."""
    axis = np.linspace(-GRID_LIMIT, GRID_LIMIT, GRID_POINTS)
    log_density = grid_log_densities(test_gmm, GRID_LIMIT, GRID_POINTS)
    density = np.exp(log_density).reshape(GRID_POINTS, GRID_POINTS)
    fig = Figure(figsize=(6, 6))
    ax = fig.subplots()
    ax.contour(axis, axis, density, levels=12, cmap="Blues", linewidths=0.8)
    ax.scatter(
        sample_embedding[:, 0], sample_embedding[:, 1], s=6, c="tab:red", label=f"{label} samples"
    )
    ax.set_title(
        f"{label}: t-SNE of {len(sample_embedding)} samples over the density of "
        f"{n_test} test images",
        fontsize=9,
    )
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=8)
    save_figure(fig, path)


def save_class_histogram(
    histogram: np.ndarray, label: str, path: Path, class_names: Sequence[str]
) -> None:
    """Predicted-class counts (K,) of one sample set, with the uniform count for reference;
    bars named by ``class_names`` (K,)."""
    n, n_classes = int(np.sum(histogram)), len(histogram)
    fig = Figure(figsize=(max(5, 0.4 * n_classes), 3))
    ax = fig.subplots()
    ax.bar(range(n_classes), histogram, color="tab:blue")
    ax.axhline(n / n_classes, color="grey", linestyle="--", linewidth=1, label="uniform")
    long = max(map(len, class_names), default=0) > 2  # e.g. CIFAR's "automobile"
    ax.set_xticks(range(n_classes), class_names, rotation=45 if long else 0, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("samples")
    ax.set_title(f"{label}: classifier's class counts over {n} samples", fontsize=9)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def save_memorisation_pairs(
    samples: torch.Tensor,
    neighbours: torch.Tensor,
    distances: np.ndarray,
    label: str,
    n_total: int,
    path: Path,
) -> None:
    """The closest samples uint8 (P, C, H, W) above their nearest training images
    (P, C, H, W)."""
    cols = [f"d={d:.2f}" for d in distances]
    title = (
        f"{label}: the {len(samples)} of {n_total} samples closest to a training image "
        "(L2, [-0.5, 0.5] units)"
    )
    save_image_rows([samples, neighbours], ["sample", "nearest train"], cols, path, title=title)
