"""The report's Figure 9: a cold degradation at five strengths on four test images.

One row per image (test images 2, 1, 18, 4: MNIST's digits 1, 2, 3, 4; the first four, or as
many as there are, of a data set with fewer than 19 test images), labelled with its class name
(or "image" for unlabelled data), one column per t in (T, 0.75 T, 0.5 T, 0.25 T, 0), labelled
with t and the level the schedule gives it. Each
image keeps one random key across its row, so the row shows one random field growing with t
(for pixel swap: the same swap partners, further apart).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import Config
from ..data import load_data, to_model
from ..diffusion.cold import KEY_RANGE, ColdDiffusion, check_levels_fit
from .figures import save_image_rows
from .safe_writes import check_output_file, staged_outputs

FIGURE_IMAGES = (2, 1, 18, 4)  # MNIST test indices of the digits 1, 2, 3, 4
FIGURE_FRACTIONS = (1.0, 0.75, 0.5, 0.25, 0.0)


def figure_images(n_test: int) -> tuple[int, ...]:
    """The test images the figure shows: ``FIGURE_IMAGES`` where the test set holds them all,
    else its first four (all of a test set of fewer than four)."""
    if n_test > max(FIGURE_IMAGES):
        return FIGURE_IMAGES
    return tuple(range(min(len(FIGURE_IMAGES), n_test)))


def degradation_figure(config: Config, path: Path, seed: int = 0) -> Path:
    """Draw ``config``'s cold degradation and level schedule as the report's Figure 9 at ``path``.

    ``config.diffusion`` gives the degradation, its levels and T; ``config.data`` the data set
    whose test images are shown (:func:`figure_images`).
    Returns the path written. A ``path`` that is no image name (``IMAGE_FORMATS``), is a folder
    or lies where no folder can be created is refused before anything is drawn; the figure (and
    any folder it needs) appears only once drawn (``outputs.staged_outputs``).
    """
    check_output_file(path, "path", "the figure", image=True)
    process = ColdDiffusion.from_config(config)
    test = load_data(config.data)
    check_levels_fit(config, test.spec.width)  # the side npz and folder data say only now
    indices = figure_images(len(test.test_images))
    x0 = to_model(test.test_images[list(indices)])  # (4, C, H, W), fewer for a small test set
    keys = torch.randint(0, KEY_RANGE, (len(x0),), generator=torch.Generator().manual_seed(seed))
    ts = [round(f * process.T) for f in FIGURE_FRACTIONS]
    columns = [process.degrade(x0, torch.full((len(x0),), t), keys) for t in ts]  # each (4,C,H,W)
    rows = [torch.stack([column[i] for column in columns]) for i in range(len(x0))]
    names = test.spec.class_names
    labels = [
        f"test #{index}\nclass {names[int(test.test_labels[index])]}"
        if names and test.test_labels is not None
        else f"test image #{index}"
        for index in indices
    ]
    col_labels = [f"t={t}\nlevel={float(process.levels[t]):.3g}" for t in ts]
    title = f"{config.diffusion.degradation}, T={process.T}"
    with staged_outputs() as staging:
        save_image_rows(rows, labels, col_labels, staging.file(path), title=title)
    return Path(path)
