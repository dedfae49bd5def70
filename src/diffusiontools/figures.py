"""All figures, drawn with matplotlib on the Agg backend (no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .data import to_uint8  # noqa: E402


def save_figure(fig, path: Path) -> None:
    """Write ``fig`` (creating folders) and free it: long evaluations draw many figures."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """(N, 1 or none, 28, 28) model-range or uint8 images -> one uint8 (H, W) mosaic.

    Model-range images are mapped with x -> round((x + 0.5) * 255), clamped (the original saved
    them without the +0.5 shift, at half brightness).
    """
    if images.dtype != torch.uint8:
        images = to_uint8(images)
    images = images.reshape(-1, 28, 28).cpu().numpy()
    n = len(images)
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    ncol = int(np.ceil(n / nrow))
    grid = np.zeros((ncol * (28 + pad) + pad, nrow * (28 + pad) + pad), dtype=np.uint8)
    for k, image in enumerate(images):
        r, c = divmod(k, nrow)
        grid[
            pad + r * (28 + pad) : pad + r * (28 + pad) + 28,
            pad + c * (28 + pad) : pad + c * (28 + pad) + 28,
        ] = image
    return grid


def save_sample_grid(
    images: torch.Tensor, path: Path, nrow: int | None = None, title: str | None = None
) -> None:
    grid = image_grid(images, nrow)
    fig, ax = plt.subplots(figsize=(grid.shape[1] / 40, grid.shape[0] / 40 + (0.4 if title else 0)))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    save_figure(fig, path)


def save_learning_curve(history: Sequence[dict], path: Path, title: str = "") -> None:
    """Train and validation loss per epoch, log scale (the report's Figures 1, 3, 10, 12)."""
    epochs = [row["epoch"] for row in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [row["train_loss"] for row in history], label="train (epoch mean)")
    ax.plot(epochs, [row["val_loss"] for row in history], label="validation (fixed noise)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(f"learning curve {title}".strip())
    ax.legend()
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def save_image_rows(
    rows: Sequence[torch.Tensor],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    path: Path,
    title: str = "",
) -> None:
    """A table of images: one row per entry of ``rows`` (each (K, ..., 28, 28)), labelled.

    Used for the reverse-process trajectory, samples across epochs, degradation sweeps and
    ground-truth / direct / diffusion triplets.
    """
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(1.2 * n_cols, 1.25 * n_rows + 0.3), squeeze=False
    )
    for r, row in enumerate(rows):
        row = row if row.dtype == torch.uint8 else to_uint8(row)
        for c in range(n_cols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(row):
                ax.imshow(row[c].reshape(28, 28).cpu().numpy(), cmap="gray", vmin=0, vmax=255)
            if r == 0 and c < len(col_labels):
                ax.set_title(col_labels[c], fontsize=8)
        axes[r][0].text(-4, 14, row_labels[r], fontsize=8, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, path)
