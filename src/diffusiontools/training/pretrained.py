"""The report's models, shipped inside the package: ``dt.load("model1")`` works offline.

Each is an export folder (``diffusiontools export --format safetensors``: ``model.safetensors``
and ``diffusiontools.json``, which holds the resolved config, the data provenance, the epoch and
optimiser step) with the run's ``metrics.csv``, its training record, under
``diffusiontools/pretrained/NAME``. ``reproduce --scale report`` trains them to the epochs the
report analysed (docs/reproduction.md). The sha256 of each weights file is pinned in
``SHA256`` and checked on every load: a damaged or replaced file is refused, never sampled.

A name is looked up where no model of that name is on disk: ``./model1`` holding a run (or an
export) of the user's always wins over the shipped model, while a ``./model1`` holding only what
``diffusiontools sample model1`` wrote there (its ``samples/``) does not hide it.
"""

from __future__ import annotations

from pathlib import Path

from ..data.download import file_sha256
from ..errors import UserError
from . import run_folder
from .export import WEIGHTS
from .run_folder import RunFolder

# Shipped model -> the sha256 of its model.safetensors. A model is listed once its analysed
# checkpoint exists (reproduce --scale report) and its folder (OUT/models/NAME) is copied here.
SHA256: dict[str, str] = {
    "custom1": "6873b14d9b8a8f35425b0c6fcd7220cf4757b059de16a7d5648aa15910425adf",
    "custom2": "7b2adb5a350908b8337941e64addc80aa702d2656648b44d27987d39c4d42f22",
    "model1": "1d7ac4e23810c002eb2e17da17a9d38ed515808d5f63c1ad75c2c7246f39140e",
    "model2": "237cfad1a850aca4d82e7e25f245b188823cb3eec81402cf78d184bd0eca1ffb",
}


def pretrained_names() -> list[str]:
    """The names ``diffusiontools.load`` and ``diffusiontools sample`` take for shipped models."""
    return sorted(SHA256)


def pretrained_folder(name: str) -> Path:
    """The export folder of shipped model ``name``, its weights verified against ``SHA256``.

    Raises DiffusionToolsError for a name that is not shipped, or weights that are missing or
    whose sha256 differs (a damaged install).
    """
    if name not in SHA256:
        shipped = ", ".join(pretrained_names()) or "none yet"
        raise UserError(f"{name!r} is no shipped model; shipped: {shipped}")
    folder = run_folder.pretrained_root() / name
    weights = folder / WEIGHTS
    digest = file_sha256(weights) if weights.is_file() else "missing"
    if digest != SHA256[name]:
        raise UserError(
            f"the shipped model {name}'s weights {weights} have sha256 {digest}, not the pinned "
            f"{SHA256[name]}: the install is damaged; reinstall diffusiontools"
        )
    return folder


def model_folder(path_or_name: str | Path) -> Path:
    """``path_or_name`` as a folder to load: itself where it exists (and, for a shipped model's
    name, holds a run or an export), else the shipped model of that name, verified. Raises
    DiffusionToolsError where it is neither."""
    path = Path(path_or_name)
    if path.exists() and (str(path_or_name) not in SHA256 or holds_model(path)):
        return path
    if str(path_or_name) in SHA256:
        return pretrained_folder(str(path_or_name))
    shipped = ", ".join(pretrained_names()) or "none yet"
    raise UserError(
        f"run folder {path} does not exist, and no shipped model has that name (shipped: {shipped})"
    )


def holds_model(folder: Path) -> bool:
    """Whether ``folder`` holds a model of its own: a run (its config or checkpoints, even one
    that has not written its first checkpoint yet) or an export; not merely samples."""
    run = RunFolder(folder)
    return run.is_export or run.config.is_file() or run.checkpoints.is_dir() or folder.is_file()
