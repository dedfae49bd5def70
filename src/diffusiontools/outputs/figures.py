"""All figures, drawn with matplotlib's object-oriented API.

Figures are ``matplotlib.figure.Figure`` objects, never pyplot's: no display is needed, pyplot's
list of open figures never grows, and importing diffusiontools leaves the caller's matplotlib
backend (a notebook's inline plots) as it was.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..data import to_uint8
from ..errors import UserError
from .tables import ROWS


def save_figure(fig: Figure, path: Path) -> None:
    """Write ``fig`` (creating folders); the PNG is rendered by Agg whatever the backend."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")


def figure_png(fig: Figure) -> bytes:
    """``fig`` as the PNG bytes :func:`save_figure` writes (Agg, 100 dpi, tight box)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """(N, H, W), (N, 1, H, W) or (N, 3, H, W) model-range or uint8 images -> one uint8 mosaic,
    (H', W') for gray images, (H', W', 3) for RGB ones.

    Model-range images are mapped with x -> round((x + 0.5) * 255), clamped (the original saved
    them without the +0.5 shift, at half brightness).
    """
    if images.dtype != torch.uint8:
        images = to_uint8(images)
    images = images.cpu()
    if images.dim() == 4 and images.shape[1] == 1:
        images = images[:, 0]  # (N, H, W)
    elif images.dim() == 4:
        images = images.permute(0, 2, 3, 1)  # (N, H, W, 3)
    images = images.numpy()
    n, h, w = images.shape[:3]
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    ncol = int(np.ceil(n / nrow))
    grid = np.zeros((ncol * (h + pad) + pad, nrow * (w + pad) + pad, *images.shape[3:]), np.uint8)
    for k, image in enumerate(images):
        r, c = divmod(k, nrow)
        grid[
            pad + r * (h + pad) : pad + r * (h + pad) + h,
            pad + c * (w + pad) : pad + c * (w + pad) + w,
        ] = image
    return grid


def sample_grid_figure(
    images: torch.Tensor, nrow: int | None = None, title: str | None = None
) -> Figure:
    """A figure of ``images`` (N, C, H, W) or (N, H, W) in model range or uint8, as one mosaic
    (grey for one channel)."""
    grid = image_grid(images, nrow)
    fig = Figure(figsize=(grid.shape[1] / 40, grid.shape[0] / 40 + (0.4 if title else 0)))
    ax = fig.subplots()
    ax.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def save_sample_grid(
    images: torch.Tensor, path: Path, nrow: int | None = None, title: str | None = None
) -> None:
    save_figure(sample_grid_figure(images, nrow, title), path)


class Shown:
    """A figure that a notebook displays inline (``_repr_png_``) without pyplot; ``save(path)``
    writes it, ``figure`` is the matplotlib Figure for further drawing."""

    def __init__(self, figure: Figure):
        self.figure = figure

    def _repr_png_(self) -> bytes:
        return figure_png(self.figure)

    def save(self, path: str | Path) -> Path:
        save_figure(self.figure, Path(path))
        return Path(path)


def show(images: torch.Tensor | np.ndarray, nrow: int | None = None, title: str | None = None):
    """Images as one grid, displayed inline when it is a notebook cell's value.

    images: (N, C, H, W) with C = 1 or 3, or (N, H, W), float in model range [-0.5, 0.5] (as
    ``sample`` returns them) or uint8 0..255 (as an NPZ holds them); ``nrow`` images per row
    (default about sqrt(N)). Returns a :class:`Shown` (``.save(path)``, ``.figure``).
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise UserError(f"show() takes a tensor or array of images, not {type(images).__name__}")
    shape = tuple(images.shape)
    if not (len(shape) == 3 or (len(shape) == 4 and shape[1] in (1, 3))):
        raise UserError(f"show() takes images (N, H, W) or (N, C, H, W) with C 1 or 3, not {shape}")
    if shape[0] == 0:
        raise UserError("show() was given no images (N = 0)")
    if images.dtype != torch.uint8 and not images.dtype.is_floating_point:
        raise UserError(
            f"show() takes uint8 0..255 or float [-0.5, 0.5] images, not {images.dtype}"
        )
    if images.dtype.is_floating_point and not bool(images.isfinite().all()):
        raise UserError("show() was given images with NaN or inf")
    return Shown(sample_grid_figure(images, nrow, title))


# The quality probe's columns of metrics.csv (training.eval_every) drawn beside the loss, with
# whether their axis is logarithmic; they are named as in metrics.json and labelled as in its table.
QUALITY_PANELS = (
    ("frechet_distance", True),
    ("class_entropy", False),
    ("recognisable_fraction", False),
    ("frame_mean", False),
    ("frame_above_5", False),
    ("mid_grey_fraction", False),
)


def save_learning_curve(
    history: Sequence[dict], path: Path, title: str = "", reference: dict | None = None
) -> None:
    save_figure(learning_curve_figure(history, title, reference), path)


def _image_counts(counts: Sequence) -> str:
    """ "64 images, ", or "64-192 images, " where a resume changed training.val_batches."""
    n = sorted({int(c) for c in counts if c})
    if not n:
        return ""
    return f"{n[0]:,} images, " if len(n) == 1 else f"{n[0]:,}-{n[-1]:,} images, "


def _loss_panel(ax, history: Sequence[dict], title: str) -> None:
    epochs = [row["epoch"] for row in history]
    last = history[-1] if history else {}
    ema = last.get("val_loss_raw") is not None  # then val_loss is the EMA weights'
    images = _image_counts([row.get("val_images") for row in history])
    ax.plot(epochs, [row["train_loss"] for row in history], label="train (epoch mean, raw weights)")
    ax.plot(
        epochs,
        [row["val_loss"] for row in history],
        label=f"validation ({images}{'EMA' if ema else 'raw'} weights, fixed noise)",
    )
    if ema:
        raw = [(row["epoch"], row.get("val_loss_raw")) for row in history]
        raw = [(e, v) for e, v in raw if v is not None]
        ax.plot(*zip(*raw, strict=True), label=f"validation ({images}raw weights, fixed noise)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(f"learning curve {title}".strip())
    ax.legend()
    ax.grid(alpha=0.3)


def learning_curve_figure(
    history: Sequence[dict], title: str = "", reference: dict | None = None
) -> Figure:
    """Train and validation loss per epoch, log scale (the report's Figures 1, 3, 10, 12);
    ``history``: metrics.csv rows (``epoch``, ``train_loss``, ``val_loss``; where the run kept
    an EMA, ``val_loss`` is its weights' and ``val_loss_raw`` the raw weights'; ``val_images``:
    the validation images behind each).

    Where rows hold the quality probe's values (``QUALITY_PANELS``; None or absent on the epochs
    it did not run), one small panel per value to the right of the loss, with ``reference``
    (the test images' own values, by the same keys) as a dashed line.
    """
    labels = {key: name for key, name, _ in ROWS}
    quality = [
        (key, labels[key], log)
        for key, log in QUALITY_PANELS
        if any(row.get(key) is not None for row in history)
    ]
    if not quality:
        fig = Figure(figsize=(6, 4))
        _loss_panel(fig.subplots(), history, title)
        return fig
    fig = Figure(figsize=(15, 6), layout="constrained")
    grid = fig.add_gridspec(2, 4, width_ratios=(2, 1, 1, 1))
    _loss_panel(fig.add_subplot(grid[:, 0]), history, title)
    legend_drawn = False
    for k, (key, label, log) in enumerate(quality):
        ax = fig.add_subplot(grid[k // 3, 1 + k % 3])
        points = [(row["epoch"], row[key]) for row in history if row.get(key) is not None]
        ax.plot(*zip(*points, strict=True), "o-", markersize=3, label="samples")
        if reference and reference.get(key) is not None:
            ax.axhline(reference[key], color="grey", linestyle="--", label="test images")
            if not legend_drawn:  # once: the same two lines in every panel
                ax.legend(fontsize=7)
                legend_drawn = True
        if log and all(value > 0 for _, value in points):
            ax.set_yscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    return fig


def save_image_rows(
    rows: Sequence[torch.Tensor],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    path: Path,
    title: str = "",
) -> None:
    """A table of images: one row per entry of ``rows`` (each (K, C, H, W) or (K, H, W), C 1 or
    3), labelled.

    Used for the reverse-process trajectory, samples across epochs, degradation sweeps and
    ground-truth / direct / diffusion triplets.
    """
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig = Figure(figsize=(1.2 * n_cols, 1.25 * n_rows + 0.3))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, row in enumerate(rows):
        row = row if row.dtype == torch.uint8 else to_uint8(row)
        for c in range(n_cols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(row):
                ax.imshow(image_grid(row[c : c + 1], pad=0), cmap="gray", vmin=0, vmax=255)
            if r == 0 and c < len(col_labels):
                ax.set_title(col_labels[c], fontsize=8)
        middle = row.shape[-2] / 2  # the row's image height, halved
        axes[r][0].text(-4, middle, row_labels[r], fontsize=8, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, path)
